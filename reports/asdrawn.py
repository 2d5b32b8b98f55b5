"""Areas as drawn today, or as drawn on each request's date.

A store joins every request to the *active* generation of each layer (the newest in
force today). After a redistricting that mixes two maps in a district's year-on-year
figures. With ``request-date``, each request gets instead the area of the generation in
force on its local request date (the newest generation whose ``valid_from`` is on or
before that date; when none is in force yet, the earliest, as
:func:`layers.registry.active_generations` decides). Points are located with the same
join as the embedded store (:func:`geo.joins.locate`: a point on a shared edge gets the
lowest code), in the areas each store returns, so both stores give the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from geo.joins import build_index, locate
from geo.store.base import Store
from hotspot311.errors import InputError, describe
from layers.registry import Generation

TODAY: Final = "today"
REQUEST_DATE: Final = "request-date"
AS_DRAWN: Final = (TODAY, REQUEST_DATE)


def check_as_drawn(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`AS_DRAWN`.

    Raises
    ------
    InputError
        Naming the value and what is allowed.
    """
    if mode not in AS_DRAWN:
        raise InputError(f"as_drawn: got {describe(mode)}; allowed: {', '.join(AS_DRAWN)}")
    return mode


def generation_on(gens: Sequence[Generation], day: date) -> Generation:
    """The generation of one layer in force on ``day`` (see the module docstring).

    Examples
    --------
    >>> g = [Generation("d", 1, "D", date(2016, 1, 1), "a", "c", "n", 2),
    ...      Generation("d", 2, "D", date(2024, 1, 1), "b", "c", "n", 2)]
    >>> [generation_on(g, d).generation for d in (date(2023, 12, 31), date(2024, 1, 1))]
    [1, 2]
    """
    ordered = sorted(gens, key=lambda g: (g.valid_from or date.min, g.generation))
    in_force = [g for g in ordered if (g.valid_from or date.min) <= day]
    return in_force[-1] if in_force else ordered[0]


def as_drawn(requests: pd.DataFrame, store: Store, *, mode: str, timezone: str,
             keys: Sequence[str] | None = None) -> pd.DataFrame:
    """``requests`` with layer columns as drawn ``today`` or on each request's date.

    Parameters
    ----------
    requests
        Stored requests with ``requested_datetime``, city ``x``/``y`` and layer columns.
    store
        The store they came from (its generations and areas).
    mode
        ``today`` (the stored joins, returned as they are) or ``request-date``.
    timezone
        City time zone (request dates are local dates).
    keys
        Layers to redraw (default: every stored layer with more than one generation);
        ``x``/``y`` are needed only when one of them has more than one generation
        (see :func:`redrawn_layers`).

    Returns
    -------
    pandas.DataFrame
        A copy with the layer columns replaced; ``attrs["as_drawn"]`` holds the
        description of :func:`describe_as_drawn`.

    Raises
    ------
    InputError
        For an unknown ``mode``, or a ``requests`` frame without ``x``/``y`` when a
        layer is redrawn.
    """
    check_as_drawn(mode)
    out = requests.copy()
    out.attrs["as_drawn"] = describe_as_drawn(store, mode)
    if mode == TODAY or out.empty:
        return out
    by_key = _generations(store)
    wanted = _redrawn(by_key, keys)
    if not wanted:
        return out
    missing = [c for c in ("x", "y", "requested_datetime") if c not in out.columns]
    if missing:
        raise InputError(f"requests: missing {missing}; as drawn on the request date needs "
                         "the city x/y of each request")
    days = pd.to_datetime(out["requested_datetime"], utc=True).dt.tz_convert(timezone)
    day = days.dt.date.to_numpy()
    x = out["x"].to_numpy(dtype="float64")
    y = out["y"].to_numpy(dtype="float64")
    for key in wanted:
        gens = by_key[key]
        chosen = np.array([generation_on(gens, d).generation for d in sorted(set(day))])
        lookup = dict(zip(sorted(set(day)), chosen, strict=True))
        gen_of_row = np.array([lookup[d] for d in day], dtype=np.int64)
        codes = np.full(len(out), None, dtype=object)
        for number in np.unique(gen_of_row):
            rows = gen_of_row == number
            index = build_index(store.areas(key, int(number)))
            codes[rows] = locate(x[rows], y[rows], index)
        out[key] = codes
    return out


def describe_as_drawn(store: Store, mode: str) -> str:
    """One line for sheet headers, naming the generations behind each redrawn layer.

    Examples: ``areas as drawn today (council_district: generation 2 of 2, in force
    from 2024-01-01)``, ``areas as drawn on each request's date (council_district:
    generation 1 before 2024-01-01, generation 2 from 2024-01-01)``.
    """
    check_as_drawn(mode)
    by_key = _generations(store)
    several = {k: v for k, v in by_key.items() if len(v) > 1}
    active = store.active()
    if mode == TODAY:
        parts = [f"{k}: generation {active[k].generation} of {len(v)}, in force from "
                 f"{active[k].valid_from or 'always'}" for k, v in several.items()]
        head = "areas as drawn today"
    else:
        parts = []
        for k, v in several.items():
            ordered = sorted(v, key=lambda g: (g.valid_from or date.min, g.generation))
            parts.append(f"{k}: " + ", ".join(
                f"generation {g.generation} from {g.valid_from or 'the start'}" for g in ordered))
        head = "areas as drawn on each request's date"
    return f"{head} ({'; '.join(parts)})" if parts else f"{head} (every layer has one map)"


def redrawn_layers(store: Store, keys: Sequence[str] | None = None) -> list[str]:
    """The layers (of ``keys``, default all) that ``request-date`` redraws: those with
    more than one generation. Only they need each request's city x/y.

    Parameters
    ----------
    store
        The store (its generations).
    keys
        Layer keys to consider (default: every stored layer).

    Returns
    -------
    list of str
        The keys with more than one stored generation, in the order given.
    """
    return _redrawn(_generations(store), keys)


def _generations(store: Store) -> dict[str, list[Generation]]:
    """The store's generations per layer key."""
    by_key: dict[str, list[Generation]] = {}
    for gen in store.generations():
        by_key.setdefault(gen.key, []).append(gen)
    return by_key


def _redrawn(by_key: dict[str, list[Generation]], keys: Sequence[str] | None) -> list[str]:
    """The keys (default: all of ``by_key``) with more than one generation."""
    return [k for k in (keys if keys is not None else by_key) if len(by_key.get(k, ())) > 1]
