"""Problems: the link rule on hand-made cases, the real dumping points, and an
independent brute force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from clustering.problems import (
    ProblemAssigner,
    ProblemRule,
    ProblemRules,
    assign_problems,
    problem_summary,
)
from hotspot311.errors import InputError
from layers.profile import load_profile

DUMPING = (Path(__file__).resolve().parents[2] / "data" / "philadelphia" / "requests"
           / "illegal-dumping-2024-points.csv")
DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-03-01 08:00", tz="UTC")

#: Metric CRS units (1 unit = 1 m), 30 m and 14 days for every service.
RULES = ProblemRules(crs_unit_m=1.0, default=ProblemRule(30.0, 14.0))


def frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (id, service, x, y, days after T0, closed days after T0 or None)."""
    return pd.DataFrame({
        "service_request_id": [r[0] for r in rows],
        "service_name": [r[1] for r in rows],
        "x": [float(r[2]) for r in rows],
        "y": [float(r[3]) for r in rows],
        "requested_datetime": pd.to_datetime([T0 + r[4] * DAY for r in rows], utc=True),
        "closed_datetime": pd.to_datetime(
            [T0 + r[5] * DAY if r[5] is not None else pd.NaT for r in rows], utc=True),
    })


def ids(rows: list[tuple], rules: ProblemRules = RULES) -> dict[str, str]:
    f = frame(rows)
    return dict(zip(f["service_request_id"], assign_problems(f, rules), strict=True))


def test_chain_joins_ends_that_are_far_apart() -> None:
    got = ids([("A", "Light", 0, 0, 0, None), ("B", "Light", 25, 0, 1, None),
               ("C", "Light", 50, 0, 2, None), ("D", "Light", 200, 0, 1, None)])
    assert got == {"A": "A", "B": "A", "C": "A", "D": "D"}


def test_thresholds_are_inclusive() -> None:
    # 18² + 24² = 30² exactly; 14 days exactly
    got = ids([("A", "Light", 0, 0, 0, None), ("B", "Light", 18, 24, 14, None),
               ("C", "Light", 100, 0, 0, None), ("D", "Light", 130.001, 0, 0, None),
               ("E", "Light", 300, 0, 0, None), ("F", "Light", 300, 0, 14.0001, None)])
    assert got["B"] == "A"
    assert got["D"] == "D"  # just over the distance
    assert got["F"] == "F"  # just over the gap


def test_two_services_at_one_spot_are_two_problems() -> None:
    got = ids([("A", "Light", 0, 0, 0, None), ("B", "Pothole", 0, 0, 0, None)])
    assert got == {"A": "A", "B": "B"}


def test_a_catalogue_group_makes_two_services_one_key() -> None:
    rules = ProblemRules(crs_unit_m=1.0, default=ProblemRule(30.0, 14.0),
                         rules={"lights": ProblemRule(10.0, 5.0)},
                         groups={"Street Light": "lights", "Alley Light": "lights"})
    got = ids([("A", "Street Light", 0, 0, 0, None), ("B", "Alley Light", 5, 0, 1, None),
               ("C", "Alley Light", 25, 0, 2, None)], rules)
    assert got == {"A": "A", "B": "A", "C": "C"}  # group rule: 10 m, so C is on its own


def test_problem_reopens_after_the_gap() -> None:
    rows = [("A", "Light", 0, 0, 0, 1), ("B", "Light", 0, 0, 10, 11),  # closed, called again
            ("C", "Light", 0, 0, 40, None), ("D", "Light", 5, 0, 41, None)]
    assert ids(rows) == {"A": "A", "B": "A", "C": "C", "D": "C"}


def test_request_closed_long_before_does_not_link() -> None:
    # B's closing time (bad data: before it was requested) is 21 days before C
    rows = [("B", "Light", 0, 0, 5, -15), ("C", "Light", 0, 0, 6, None)]
    assert ids(rows) == {"B": "B", "C": "C"}
    # at the same time either may be the earlier one: C is open, so they link
    rows = [("B", "Light", 0, 0, 6, -15), ("C", "Light", 0, 0, 6, None)]
    assert ids(rows) == {"B": "B", "C": "B"}
    rows = [("B", "Light", 0, 0, 5, -5), ("C", "Light", 0, 0, 6, None)]
    assert ids(rows) == {"B": "B", "C": "B"}


def test_order_does_not_matter() -> None:
    rng = np.random.default_rng(7)
    rows = [(f"R{i:03d}", ["Light", "Pothole"][i % 2], float(rng.integers(0, 300)),
             float(rng.integers(0, 300)), float(rng.integers(0, 60)),
             None if i % 3 else float(rng.integers(0, 70))) for i in range(300)]
    base = ids(rows)
    for seed in range(3):
        shuffled = [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))]
        assert ids(shuffled) == base
    assert len(set(base.values())) < len(rows)


def test_rows_without_a_position_are_their_own_problem() -> None:
    f = frame([("A", "Light", 0, 0, 0, None), ("B", "Light", 0, 0, 0, None)])
    f.loc[1, "x"] = np.nan
    assert assign_problems(f, RULES).tolist() == ["A", "B"]


def test_missing_columns_and_bad_rules_are_named() -> None:
    with pytest.raises(InputError, match="closed_datetime"):
        assign_problems(frame([("A", "L", 0, 0, 0, None)]).drop(columns="closed_datetime"),
                        RULES)
    with pytest.raises(InputError, match=r"distance got -5 m"):
        ProblemRules(crs_unit_m=1.0, default=ProblemRule(-5, 14)).validate()
    with pytest.raises(InputError, match=r"problem rule 'x': gap got 0 days"):
        ProblemRules(crs_unit_m=1.0, rules={"x": ProblemRule(5, 0)}).validate()


def test_catalogue_rules_for_philadelphia() -> None:
    rules = ProblemRules.for_city(load_profile("philadelphia"))
    assert rules.rule_of("Street Light Outage") == ProblemRule(30.0, 30.0)
    assert rules.rule_of("Street Defect") == ProblemRule(20.0, 14.0)
    assert rules.rule_of("Illegal Dumping") == ProblemRule(50.0, 14.0)
    over = ProblemRules.for_city(load_profile("philadelphia"), gap_days=3)
    assert over.rule_of("Illegal Dumping") == ProblemRule(50.0, 3.0)


# --- the real 2024 dumping points ------------------------------------------------------
@pytest.fixture(scope="module")
def dumping() -> pd.DataFrame:
    profile = load_profile("philadelphia")
    raw = pd.read_csv(DUMPING)
    x, y = Transformer.from_crs("EPSG:4326", profile.crs, always_xy=True).transform(
        raw["X"].to_numpy(), raw["Y"].to_numpy())
    return pd.DataFrame({
        "service_request_id": [f"D{i:05d}" for i in range(len(raw))],
        "service_name": "Illegal Dumping",
        "x": x, "y": y,
        "requested_datetime": pd.Timestamp("2024-01-01", tz="UTC")
        + pd.to_timedelta(raw["T"].to_numpy(), unit="D"),
        "closed_datetime": pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]"),
        "lon": raw["X"], "lat": raw["Y"],
    })


def ns(values: pd.Series) -> np.ndarray:
    """Times as int64 nanoseconds (NaT: int64 min)."""
    return np.asarray(pd.DatetimeIndex(values).asi8)


def _earlier_neighbour(f: pd.DataFrame, metres: float, days: float) -> np.ndarray:
    """Whether each request has an earlier one within ``metres`` and ``days`` (KD-tree)."""
    from sklearn.neighbors import KDTree

    xy = f[["x", "y"]].to_numpy()
    t = ns(f["requested_datetime"])
    near = KDTree(xy).query_radius(xy, metres / 0.3048006096012192)
    gap = int(days * 86_400e9)
    return np.array([any(j != i and 0 <= t[i] - t[j] <= gap for j in nb)
                     for i, nb in enumerate(near)])


def test_dumping_neighbour_figures(dumping: pd.DataFrame) -> None:
    assert len(dumping) == 22_156
    assert round(100 * _earlier_neighbour(dumping, 30, 7).mean(), 1) == 21.6
    assert round(100 * _earlier_neighbour(dumping, 50, 14).mean()) == 34
    shared = dumping.duplicated(["lon", "lat"]).sum()
    assert shared == 7_195


def test_dumping_problem_counts(dumping: pd.DataFrame) -> None:
    profile = load_profile("philadelphia")
    catalogue = assign_problems(dumping, ProblemRules.for_city(profile))  # 50 m / 14 days
    tight = assign_problems(dumping, ProblemRules.for_city(profile, distance_m=30,
                                                             gap_days=7))
    assert catalogue.nunique() == 14_437
    assert tight.nunique() == 17_306
    # in time order, a request with an earlier neighbour (every request is open here)
    # joins a problem already there: at most the requests without one start a problem
    assert tight.nunique() <= len(dumping) - _earlier_neighbour(dumping, 30, 7).sum()
    summary = problem_summary(dumping.assign(problem_id=catalogue))
    assert summary.loc[0, "problems"] == 14_437


def _brute_force(f: pd.DataFrame, metres: float, days: float, unit_m: float) -> np.ndarray:
    """Problems by testing every pair (independent of the grid and the union-find)."""
    x, y = f["x"].to_numpy(), f["y"].to_numpy()
    t = ns(f["requested_datetime"])
    c = ns(f["closed_datetime"])
    d = metres / unit_m
    gap = round(days * 86_400e9)
    dt = t[:, None] - t[None, :]  # t_r - t_s, r = row
    closed_ok = (c[None, :] == np.iinfo(np.int64).min) | (t[:, None] - c[None, :] <= gap)
    close = (x[:, None] - x[None, :]) ** 2 + (y[:, None] - y[None, :]) ** 2 <= d * d
    linked = close & (dt >= 0) & (dt <= gap) & closed_ok
    np.fill_diagonal(linked, False)
    r, s = np.nonzero(linked)
    graph = coo_matrix((np.ones(len(r)), (r, s)), shape=(len(f), len(f)))
    return connected_components(graph, directed=True, connection="weak")[1]


def test_brute_force_agrees_on_a_sample(dumping: pd.DataFrame) -> None:
    profile = load_profile("philadelphia")
    rng = np.random.default_rng(16)
    # a dense corner of the city so that many pairs link: the 2,000 points nearest a
    # busy spot, with some closed so the closing rule is exercised
    centre = dumping[["x", "y"]].median().to_numpy()
    dist = np.hypot(dumping["x"] - centre[0], dumping["y"] - centre[1])
    sample = dumping.iloc[np.argsort(dist.to_numpy())[:2000]].reset_index(drop=True)
    closed = sample["requested_datetime"] + pd.to_timedelta(rng.integers(0, 20, 2000), unit="D")
    sample["closed_datetime"] = closed.where(rng.random(2000) < 0.5)
    for metres, days in ((50, 14), (30, 7), (120, 30)):
        rules = ProblemRules.for_city(profile, distance_m=metres, gap_days=days)
        got = assign_problems(sample, rules)
        want = _brute_force(sample, metres, days, profile.crs_unit_m)
        # same partition: a one-to-one map between labels
        pairs = pd.DataFrame({"got": got.to_numpy(), "want": want}).drop_duplicates()
        assert pairs["got"].is_unique and pairs["want"].is_unique
        assert pairs["got"].nunique() < len(sample)


def test_near_is_a_superset_of_the_links(dumping: pd.DataFrame) -> None:
    assigner = ProblemAssigner(ProblemRules.for_city(load_profile("philadelphia")))
    stored, changed = dumping.iloc[:20_000], dumping.iloc[20_000:]
    near = assigner.near(stored, changed)
    both = pd.concat([stored, changed])
    pid = assigner.assign(both)
    linked_problems = set(pid.iloc[20_000:])
    # every stored request that shares a problem with a new one through a direct link
    # lies near; and the near mask is small
    d, g = assigner.reach()
    sx, sy = stored["x"].to_numpy(), stored["y"].to_numpy()
    st = ns(stored["requested_datetime"])
    want = np.zeros(len(stored), dtype=bool)
    for x, y, t in zip(changed["x"], changed["y"],
                       ns(changed["requested_datetime"]), strict=True):
        want |= ((sx - x) ** 2 + (sy - y) ** 2 <= d * d) & (np.abs(st - t) <= g.value)
    assert (near == want).all()
    assert want.any() and linked_problems
