"""Problems, not tickets: repeat calls about one problem share a ``problem_id``.

The rule
--------
Requests are grouped by their *problem key*: the service's problem group where the
catalogue names one (``problem_group`` in ``<city>.services.toml``), else the service
name. Each key has a distance ``d`` (metres, converted to the city CRS) and a time gap
``g`` (:class:`ProblemRule`). Two requests ``s`` and ``r`` of one key with
``t_s <= t_r`` (``t`` = ``requested_datetime``) are *linked* when

1. the distance between them is at most ``d`` (``dx² + dy² <= d²`` in CRS units),
2. ``t_r - t_s <= g``, and
3. ``s`` is still open at ``t_r`` or was closed no more than ``g`` before it
   (``closed_datetime`` of ``s`` is empty or ``t_r - closed_s <= g``).

When ``t_s == t_r`` either may play ``s``: the pair is linked if the conditions hold
one way round. A *problem* is a connected component of the links (single linkage): a
chain A–B–C is one problem even when A and C are far apart. Both thresholds are
inclusive. The rule looks at pairs of requests only, never at a problem's state, so the
components, and therefore the problems, do not depend on the order of the rows.

A problem's id is the ``service_request_id`` of its first request (earliest
``requested_datetime``, ties by the smaller id in code-point order): a function of the
component alone, so an incremental update gives the same ids as a recomputation.
Requests without a position or a time are problems of their own.

Finding the links is exact (no approximate neighbour search): per key, requests are put
in square cells of side ``d`` sorted by time, and each request looks only at the 3x3
cells around it and, in each, at the requests whose time lies in ``[t_r - g, t_r]``
(two binary searches). Links are merged at once in a union-find, so memory is O(n)
whatever the number of neighbours.

Incremental updates
-------------------
The stores (``geo/store``) cannot import this package, so they are handed a
:class:`ProblemAssigner` (it has the shape of :class:`geo.ingest.sink.ProblemAssigner`)
by their caller — the ingest and geocode commands, the demo — and call it inside the
write, in the same transaction (PostGIS) or the same snapshot (embedded) as the batch.
The store gathers the *context*: the new and changed requests, every stored request
within the widest reach (``d`` and ``g``) of one of them, and every request of the
problems those belong to (and of the old problems of changed requests). No link leaves
that context, so its components are exactly the city's components there; everything
else keeps its ``problem_id``. :func:`assign_problems` on the whole city and the
incremental path give equal ids, which the tests check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
from numba import njit

from geo.ingest.sink import PROBLEM_INPUT
from hotspot311.errors import InputError, describe
from hotspot311.schema import UNSPECIFIED_SERVICE
from layers.profile import CityProfile
from layers.services import ProblemDefaults, load_problem_defaults

_NAT: Final = np.iinfo(np.int64).min


@dataclass(frozen=True)
class ProblemRule:
    """Distance and time gap of one problem key.

    Attributes
    ----------
    distance_m
        Largest distance between two linked requests, in metres (> 0).
    gap_days
        Largest time between two linked requests, in days (> 0).
    """

    distance_m: float
    gap_days: float

    def validate(self, where: str = "problem rule") -> ProblemRule:
        """Check both values.

        Raises
        ------
        InputError
            Naming each bad value and what is allowed.
        """
        problems = []
        if not (isinstance(self.distance_m, int | float) and 0 < self.distance_m <= 10_000):
            problems.append(f"{where}: distance got {describe(self.distance_m)} m; "
                            "allowed: more than 0 and at most 10,000")
        if not (isinstance(self.gap_days, int | float) and 0 < self.gap_days <= 3660):
            problems.append(f"{where}: gap got {describe(self.gap_days)} days; "
                            "allowed: more than 0 and at most 3,660")
        if problems:
            raise InputError(problems)
        return self


@dataclass(frozen=True)
class ProblemRules:
    """The rule of every problem key of a city.

    Attributes
    ----------
    crs_unit_m
        Metres per unit of the city CRS.
    default
        Rule of a key the catalogue does not name.
    rules
        Problem key → rule.
    groups
        Service name → problem key (a service absent here is its own key).
    """

    crs_unit_m: float
    default: ProblemRule = ProblemRule(30.0, 14.0)
    rules: Mapping[str, ProblemRule] = field(default_factory=dict)
    groups: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_city(cls, profile: CityProfile, *, distance_m: float | None = None,
                 gap_days: float | None = None) -> ProblemRules:
        """The catalogue's rules, optionally overridden for every key (one run).

        Parameters
        ----------
        profile
            The city (catalogue and CRS unit).
        distance_m, gap_days
            Replace the distance / gap of every key when given.

        Returns
        -------
        ProblemRules
            Validated rules.
        """
        found: ProblemDefaults = load_problem_defaults(profile)
        default = ProblemRule(found.distance_m, found.gap_days)
        rules = {k: ProblemRule(d, g) for k, (d, g) in found.rules.items()}
        if distance_m is not None or gap_days is not None:
            def over(rule: ProblemRule) -> ProblemRule:
                return ProblemRule(rule.distance_m if distance_m is None else distance_m,
                                   rule.gap_days if gap_days is None else gap_days)
            default = over(default)
            rules = {k: over(v) for k, v in rules.items()}
        out = cls(crs_unit_m=profile.crs_unit_m, default=default, rules=rules,
                  groups=dict(found.groups))
        return out.validate()

    def validate(self) -> ProblemRules:
        """Check every rule (see :meth:`ProblemRule.validate`)."""
        self.default.validate("problem rule (default)")
        for key, rule in self.rules.items():
            rule.validate(f"problem rule {key!r}")
        return self

    def key_of(self, service: str) -> str:
        """The problem key of a service name."""
        return self.groups.get(service, service)

    def rule_of(self, key: str) -> ProblemRule:
        """The rule of a problem key (the default when the catalogue has none)."""
        return self.rules.get(key, self.default)

    def reach(self) -> tuple[float, pd.Timedelta]:
        """The widest distance (CRS units) and gap of any key: a store's search reach."""
        every = [self.default, *self.rules.values()]
        d = max(r.distance_m for r in every) / self.crs_unit_m
        g = max(r.gap_days for r in every)
        return d, pd.Timedelta(days=g)


def problem_labels(x: np.ndarray, y: np.ndarray, t: np.ndarray, closed: np.ndarray, *,
                   distance: float, gap: int) -> np.ndarray:
    """Components of the link graph of one problem key (see the module docstring).

    Parameters
    ----------
    x, y
        Positions in CRS units (finite).
    t, closed
        Request and closing times as int64 nanoseconds; ``closed`` holds
        ``numpy.iinfo(int64).min`` where the request is open.
    distance
        Link distance in CRS units.
    gap
        Link gap in nanoseconds.

    Returns
    -------
    numpy.ndarray
        int64 label per request: the smallest index of its component.

    Examples
    --------
    >>> t = np.array([0, 1, 2], dtype=np.int64) * 86_400 * 10**9
    >>> closed = np.full(3, np.iinfo(np.int64).min)
    >>> problem_labels(np.array([0.0, 20.0, 40.0]), np.zeros(3), t, closed,
    ...                distance=25.0, gap=2 * 86_400 * 10**9).tolist()
    [0, 0, 0]
    """
    n = len(x)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    cx = np.floor(x / distance).astype(np.int64)
    cy = np.floor(y / distance).astype(np.int64)
    cx -= cx.min() - 1
    cy -= cy.min() - 1
    width = int(cy.max()) + 2
    cell = cx * width + cy
    # sort by (cell, t) through one int64 key: the cell, then the rank of t
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(t)] = np.arange(n, dtype=np.int64)  # equal times: any order will do
    order = np.argsort(cell * n + rank)  # keys are distinct
    return _link(cell[order], x[order], y[order], t[order], closed[order], order,
                 float(distance) ** 2, np.int64(gap), np.int64(width))


@njit(cache=True, nogil=True)
def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True)
def _link(cell: np.ndarray, x: np.ndarray, y: np.ndarray, t: np.ndarray, closed: np.ndarray,
          order: np.ndarray, d2: float, gap: np.int64, width: np.int64) -> np.ndarray:
    n = len(cell)
    parent = np.arange(n)
    # distinct cells and where each starts in the sorted arrays
    starts = np.empty(n + 1, dtype=np.int64)
    keys = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        if i == 0 or cell[i] != cell[i - 1]:
            keys[m] = cell[i]
            starts[m] = i
            m += 1
    starts[m] = n
    keys = keys[:m]
    nat = np.iinfo(np.int64).min
    lo = np.empty(9, dtype=np.int64)  # per neighbour cell: window start, window end, end
    hi = np.empty(9, dtype=np.int64)
    end = np.empty(9, dtype=np.int64)
    for c in range(m):
        # the 3x3 neighbour cells, found once per cell
        for q in range(9):
            k = keys[c] + (q // 3 - 1) * width + (q % 3 - 1)
            p = np.searchsorted(keys, k)
            if p < m and keys[p] == k:
                lo[q] = starts[p]
                hi[q] = starts[p]
                end[q] = starts[p + 1]
            else:
                lo[q] = 0
                hi[q] = 0
                end[q] = 0
        # points of the cell in time order: each window [t_i - gap, t_i] only moves on
        for i in range(starts[c], starts[c + 1]):
            ti = t[i]
            ri = _find(parent, i)
            for q in range(9):
                while lo[q] < end[q] and t[lo[q]] < ti - gap:
                    lo[q] += 1
                if hi[q] < lo[q]:
                    hi[q] = lo[q]
                while hi[q] < end[q] and t[hi[q]] <= ti:
                    hi[q] += 1
                for j in range(lo[q], hi[q]):
                    if j == i:
                        continue
                    ex = x[i] - x[j]
                    ey = y[i] - y[j]
                    if ex * ex + ey * ey > d2:
                        continue
                    if closed[j] != nat and ti - closed[j] > gap:
                        continue
                    rj = _find(parent, j)
                    if ri != rj:
                        if ri < rj:
                            parent[rj] = ri
                        else:
                            parent[ri] = rj
                            ri = rj
    # label: the smallest original index of the component
    label = np.full(n, np.iinfo(np.int64).max)
    for i in range(n):
        r = _find(parent, i)
        if order[i] < label[r]:
            label[r] = order[i]
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[order[i]] = label[_find(parent, i)]
    return out


def _ns(values: pd.Series) -> np.ndarray:
    """Times as int64 nanoseconds since the epoch, NaT as int64 min."""
    times = pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns")
    return np.asarray(times.asi8, dtype=np.int64)


def problem_groups(requests: pd.DataFrame, rules: ProblemRules) -> np.ndarray:
    """A component number per request (int64; equal numbers = one problem).

    Parameters
    ----------
    requests
        Needs the columns of :data:`PROBLEM_INPUT` (``x``/``y`` in the city CRS).
    rules
        The city's rules.

    Returns
    -------
    numpy.ndarray
        For each row, the position (0-based) of one row of its problem.
    """
    _check_columns(requests)
    n = len(requests)
    label = np.arange(n, dtype=np.int64)
    if n == 0:
        return label
    service_codes, names = pd.factorize(requests["service_name"])
    service_keys = [rules.key_of(str(s)) for s in names] + [rules.key_of(UNSPECIFIED_SERVICE)]
    key_codes, uniques = pd.factorize(pd.Index(service_keys))
    codes = np.asarray(key_codes, dtype=np.int64)[service_codes]  # missing (-1): the last
    x = requests["x"].to_numpy(dtype="float64")
    y = requests["y"].to_numpy(dtype="float64")
    t = _ns(requests["requested_datetime"])
    closed = _ns(requests["closed_datetime"])
    usable = np.isfinite(x) & np.isfinite(y) & (t != _NAT)
    for k, key in enumerate(uniques):
        rows = np.flatnonzero((codes == k) & usable)
        if len(rows) < 2:
            continue
        rule = rules.rule_of(str(key))
        sub = problem_labels(
            x[rows], y[rows], t[rows], closed[rows],
            distance=rule.distance_m / rules.crs_unit_m,
            gap=round(rule.gap_days * 86_400 * 1e9),
        )
        label[rows] = rows[sub]
    return label


def assign_problems(requests: pd.DataFrame, rules: ProblemRules) -> pd.Series:
    """The ``problem_id`` of every request (see the module docstring for the rule).

    Parameters
    ----------
    requests
        Needs the columns of :data:`PROBLEM_INPUT` (``x``/``y`` in the city CRS).
    rules
        The city's rules (:meth:`ProblemRules.for_city`).

    Returns
    -------
    pandas.Series
        Text, indexed like ``requests``: the id of each problem's first request.

    Raises
    ------
    InputError
        When a needed column is missing.
    """
    label = problem_groups(requests, rules)
    if len(label) == 0:
        return pd.Series([], index=requests.index, dtype=object, name="problem_id")
    ids = _id_array(requests["service_request_id"])
    t = _ns(requests["requested_datetime"])
    # first request of each component: earliest time (NaT last), then smallest id
    t_key = np.where(t == _NAT, np.iinfo(np.int64).max, t)
    first, tied = _earliest(label, t_key)
    if tied.any():
        # ties at the earliest time: the smallest id among the tied requests; Arrow
        # sorts text by code point, as Python does, and much faster
        rows = np.flatnonzero(tied[label] & (t_key == t_key[first[label]]))
        table = pa.table({"g": label[rows], "id": ids.take(pa.array(rows)),
                          "row": rows}).sort_by([("g", "ascending"), ("id", "ascending"),
                                                 ("row", "ascending")])
        g_sorted = table.column("g").to_numpy()
        lead = np.r_[True, g_sorted[1:] != g_sorted[:-1]]
        first[g_sorted[lead]] = table.column("row").to_numpy()[lead]
    return pd.Series(pd.array(ids.take(pa.array(first[label])), dtype="str"),
                     index=requests.index, name="problem_id")


def _id_array(values: pd.Series) -> pa.Array:
    """Request ids as an Arrow text array (no Python string per row when they are one)."""
    if isinstance(values.array, pd.arrays.ArrowStringArray):
        return pa.array(values)
    return pa.array(values.astype(str).to_numpy(dtype=object), type=pa.large_string())


@njit(cache=True, nogil=True)
def _earliest(label: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per label (a row position): the row with the earliest ``t`` (the first such row)
    and whether another row of the label has that same time."""
    n = len(label)
    first = np.full(n, -1, dtype=np.int64)
    tied = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        g = label[i]
        f = first[g]
        if f < 0 or t[i] < t[f]:
            first[g] = i
            tied[g] = False
        elif t[i] == t[f]:
            tied[g] = True
    return first, tied


@dataclass(frozen=True)
class ProblemAssigner:
    """What a store calls, inside a write, to keep ``problem_id`` up to date.

    Has the shape of :class:`geo.ingest.sink.ProblemAssigner`.

    Parameters
    ----------
    rules
        The city's rules.
    """

    rules: ProblemRules

    def reach(self) -> tuple[float, pd.Timedelta]:
        """Widest link distance (CRS units) and gap."""
        return self.rules.reach()

    def near(self, stored: pd.DataFrame, changed: pd.DataFrame) -> np.ndarray:
        """Which stored rows lie within the reach of a changed row (a superset of those
        linked to one).

        Parameters
        ----------
        stored, changed
            ``x``, ``y``, ``requested_datetime``.

        Returns
        -------
        numpy.ndarray
            Boolean mask over ``stored``.
        """
        d, g = self.reach()
        if stored.empty or changed.empty:
            return np.zeros(len(stored), dtype=bool)
        sx = stored["x"].to_numpy(dtype="float64")
        sy = stored["y"].to_numpy(dtype="float64")
        st = _ns(stored["requested_datetime"])
        cx = changed["x"].to_numpy(dtype="float64")
        cy = changed["y"].to_numpy(dtype="float64")
        ct = _ns(changed["requested_datetime"])
        ok = np.isfinite(cx) & np.isfinite(cy) & (ct != _NAT)
        return _near(sx, sy, st, cx[ok], cy[ok], ct[ok], float(d), np.int64(g.value))

    def assign(self, frame: pd.DataFrame) -> pd.Series:
        """``problem_id`` of every row of a context (see :func:`assign_problems`)."""
        return assign_problems(frame, self.rules)


def _near(sx: np.ndarray, sy: np.ndarray, st: np.ndarray, cx: np.ndarray, cy: np.ndarray,
          ct: np.ndarray, d: float, gap: np.int64) -> np.ndarray:
    """Stored rows within ``d`` and ``gap`` of a changed row (grid of side ``d``)."""
    out = np.zeros(len(sx), dtype=bool)
    if len(cx) == 0:
        return out
    gx = np.floor(cx / d).astype(np.int64)
    gy = np.floor(cy / d).astype(np.int64)
    ox, oy = int(gx.min()) - 2, int(gy.min()) - 2
    width = int(gy.max()) - oy + 3
    cell = (gx - ox) * width + (gy - oy)
    order = np.lexsort((ct, cell))
    with np.errstate(invalid="ignore"):
        qx = np.floor(sx / d)
        qy = np.floor(sy / d)
    usable = np.isfinite(qx) & np.isfinite(qy) & (st != _NAT)
    usable &= (st >= ct.min() - gap) & (st <= ct.max() + gap)
    # only stored rows in a cell next to a changed row's cell go to the exact test
    near_cells = np.unique((cell[:, None] + (np.arange(-1, 2)[:, None] * width
                                             + np.arange(-1, 2)).ravel()).ravel())
    sx_cell = np.where(usable, (np.where(usable, qx, 0).astype(np.int64) - ox) * width
                       + (np.where(usable, qy, 0).astype(np.int64) - oy), -1)
    in_range = usable & (qy - oy >= 0) & (qy - oy < width)
    usable = in_range & np.isin(sx_cell, near_cells)
    rows = np.flatnonzero(usable)
    _near_kernel(qx[rows].astype(np.int64) - ox, qy[rows].astype(np.int64) - oy, sx[rows],
                 sy[rows], st[rows], cell[order], cx[order], cy[order], ct[order], d * d, gap,
                 np.int64(width), rows, out)
    return out


@njit(cache=True, nogil=True)
def _near_kernel(qx: np.ndarray, qy: np.ndarray, sx: np.ndarray, sy: np.ndarray,
                 st: np.ndarray, cell: np.ndarray, cx: np.ndarray, cy: np.ndarray,
                 ct: np.ndarray, d2: float, gap: np.int64, width: np.int64,
                 rows: np.ndarray, out: np.ndarray) -> None:
    for i in range(len(qx)):
        if qy[i] < -1 or qy[i] > width:
            continue
        found = False
        for dx in range(-1, 2):
            if found:
                break
            for dy in range(-1, 2):
                gy = qy[i] + dy
                if gy < 0 or gy >= width:
                    continue
                k = (qx[i] + dx) * width + gy
                a = np.searchsorted(cell, k, side="left")
                b = np.searchsorted(cell, k, side="right")
                if a == b:
                    continue
                lo = a + np.searchsorted(ct[a:b], st[i] - gap, side="left")
                hi = a + np.searchsorted(ct[a:b], st[i] + gap, side="right")
                for j in range(lo, hi):
                    ex = sx[i] - cx[j]
                    ey = sy[i] - cy[j]
                    if ex * ex + ey * ey <= d2:
                        found = True
                        break
                if found:
                    break
        if found:
            out[rows[i]] = True


def _check_columns(requests: pd.DataFrame) -> None:
    missing = [c for c in PROBLEM_INPUT if c not in requests.columns]
    if missing:
        raise InputError(f"requests: missing columns {missing} for problems; "
                         f"needed: {', '.join(PROBLEM_INPUT)}")


def problem_summary(requests: pd.DataFrame) -> pd.DataFrame:
    """Requests and problems per service type.

    Parameters
    ----------
    requests
        With ``service_name`` and ``problem_id``.

    Returns
    -------
    pandas.DataFrame
        ``service_name``, ``requests``, ``problems``, ``calls_per_problem``, sorted by
        requests (most first), then name.
    """
    if requests.empty:
        return pd.DataFrame(columns=["service_name", "requests", "problems",
                                     "calls_per_problem"])
    by = requests.groupby(requests["service_name"].astype(object), dropna=False)
    out = pd.DataFrame({"requests": by.size(), "problems": by["problem_id"].nunique()})
    out["calls_per_problem"] = (out["requests"] / out["problems"].clip(lower=1)).round(2)
    out = out.reset_index().sort_values(["requests", "service_name"],
                                        ascending=[False, True], kind="stable")
    return out.reset_index(drop=True)

