"""Hotspots that count problems: one point per problem, the calls as their own part.

A run with ``count="problems"`` (:class:`clustering.selection.HotspotQuery`) first
selects requests as a ticket run does (services, window, status, areas), then collapses
them by ``problem_id`` (:mod:`clustering.problems`) into one row per problem:

- position, address, service and area codes of the problem's first selected request;
- ``status`` open while one of its selected requests is open;
- ``expected_datetime`` the earliest due time of its open requests (so the problem is
  overdue when one of them is);
- ``requested_datetime`` its first call (the age), ``last_requested`` its last call
  (recency), ``calls`` the selected requests.

DBSCAN, the summaries and the priority then work on these rows, so ``count`` is the
number of problems and a hotspot's ``calls`` sum the calls. Requests without a
``problem_id`` (stored before problems, or written without the rule) count as problems
of their own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: Columns added to a problem row besides the request columns.
PROBLEM_EXTRA = ("problem_id", "calls", "last_requested", "request_ids")


def problem_ids_of(requests: pd.DataFrame) -> pd.Series:
    """Each request's ``problem_id``, its own id where it has none."""
    own = requests["service_request_id"].astype(str)
    if "problem_id" not in requests.columns:
        return own.rename("problem_id")
    pid = requests["problem_id"]
    if pid.isna().any():  # (as objects only then: a window has many requests)
        pid = pid.astype(object).where(pid.notna(), own)
    return pid.astype(str).rename("problem_id")


def sorted_lists(keys: pd.Series, values: pd.Series) -> pd.Series:
    """The ``values`` of each key as a sorted list of text, by key.

    What ``values.astype(str).groupby(keys).agg(sorted)`` gives, without a Python call per
    group: one sort of the pairs, then the sorted values cut at the key boundaries (a run
    of 80,000 problems spent seconds in the per-group calls).

    Parameters
    ----------
    keys
        Group keys (no missing values), aligned with ``values``.
    values
        Values, turned into text.

    Returns
    -------
    pandas.Series
        Indexed by the distinct keys in sorted order; each value a list of ``str`` in
        code-point order.

    Examples
    --------
    >>> sorted_lists(pd.Series(["b", "a", "b"]), pd.Series(["z", "y", "x"])).to_dict()
    {'a': ['y'], 'b': ['x', 'z']}
    """
    if len(keys) == 0:
        return pd.Series([], dtype=object)
    firsts, lists = _sorted_runs(keys, values)
    return pd.Series(lists.to_pylist(), index=pd.Index(firsts.to_pylist(), dtype=object),
                     dtype=object)


def joined_lists(keys: pd.Series, values: pd.Series, sep: str = "; ") -> pd.Series:
    """What ``sorted_lists(keys, values).map(sep.join)`` gives, joined by Arrow: no Python
    string per value, one per key.

    Examples
    --------
    >>> joined_lists(pd.Series(["b", "a", "b"]), pd.Series(["z", "y", "x"])).to_dict()
    {'a': 'y', 'b': 'x; z'}
    """
    if len(keys) == 0:
        return pd.Series([], dtype=object)
    firsts, lists = _sorted_runs(keys, values)
    return pd.Series(pc.binary_join(lists, pa.scalar(sep, pa.large_string())).to_pylist(),
                     index=pd.Index(firsts.to_pylist(), dtype=object), dtype=object)


def _sorted_runs(keys: pd.Series, values: pd.Series) -> tuple[pa.Array, pa.LargeListArray]:
    """The distinct keys in byte order and, for each, its values sorted (as text)."""
    k = pa.array(keys.astype("str"), type=pa.large_string())
    v = pa.array(values.astype("str"), type=pa.large_string())
    # Arrow sorts text by its UTF-8 bytes: the code-point order ``sorted`` uses
    order = pc.sort_indices(pa.table({"k": k, "v": v}),
                            sort_keys=[("k", "ascending"), ("v", "ascending")])
    k = k.take(order)
    changes = pc.not_equal(k.slice(1), k.slice(0, len(k) - 1)).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, changes])
    firsts = k.take(pa.array(starts))
    del k, changes
    v = v.take(order)
    if isinstance(v, pa.ChunkedArray):  # (a store's Arrow-backed column)
        v = v.combine_chunks()
    offsets = pa.array(np.r_[starts, len(v)], type=pa.int64())
    return firsts, pa.LargeListArray.from_arrays(offsets, v)


def collapse(requests: pd.DataFrame, *, ids: str = "list") -> pd.DataFrame:
    """One row per problem of ``requests`` (see the module docstring).

    Parameters
    ----------
    requests
        Selected requests (``service_request_id``, ``status``, ``requested_datetime``,
        ``x``/``y`` and any others; ``problem_id`` when stored).
    ids
        ``request_ids`` as a sorted ``"list"``, as that list joined by ``"; "``
        (``"text"``), or left out (``"none"``: a run that does not show them need not
        hold a Python string per request).

    Returns
    -------
    pandas.DataFrame
        The request columns of each problem's first selected request, with ``status``
        and ``expected_datetime`` as above, plus ``problem_id``, ``calls``,
        ``last_requested`` and ``request_ids`` (as ``ids`` says). ``service_request_id``
        holds the problem id.
    """
    if ids not in ("list", "text", "none"):
        raise ValueError(f"ids: {ids!r} is not one of 'list', 'text', 'none'")
    frame = pd.DataFrame(requests).reset_index(drop=True)
    frame["problem_id"] = problem_ids_of(frame).to_numpy()
    if frame.empty:
        for c in PROBLEM_EXTRA[1:]:
            if c != "request_ids" or ids != "none":
                frame[c] = pd.Series([], dtype=object)
        return frame
    # one Arrow sort by problem, first call, id (stable, missing times last, as pandas'
    # sort_values): each problem's rows in a run, its first request at the run's start
    keys = pa.table({"p": pa.array(frame["problem_id"], type=pa.large_string()),
                     "t": pa.array(frame["requested_datetime"]),
                     "i": pa.array(frame["service_request_id"].astype(str),
                                   type=pa.large_string())})
    order = pc.sort_indices(keys, sort_keys=[("p", "ascending"), ("t", "ascending"),
                                             ("i", "ascending")])
    problem = keys.column("p").take(order)
    del keys
    starts = np.flatnonzero(np.r_[True, pc.not_equal(
        problem.slice(1), problem.slice(0, len(problem) - 1)).to_numpy(zero_copy_only=False)])
    del problem
    rows = order.to_numpy()
    out = frame.take(rows[starts]).set_index("problem_id")
    is_open = frame["status"].eq("open").to_numpy(dtype=bool)[rows]
    out["status"] = np.where(np.logical_or.reduceat(is_open, starts), "open", "closed")
    if "expected_datetime" in frame.columns:
        out["expected_datetime"] = _pick_in_runs(frame["expected_datetime"], rows, starts,
                                                 "min", where=is_open).set_axis(out.index)
    out["calls"] = np.diff(np.r_[starts, len(rows)])
    out["last_requested"] = _pick_in_runs(frame["requested_datetime"], rows, starts,
                                          "max").set_axis(out.index)
    if ids != "none":
        of = sorted_lists if ids == "list" else joined_lists
        listed = of(frame["problem_id"], frame["service_request_id"])
        out["request_ids"] = listed.reindex(out.index.astype(str)).to_numpy()
    out = out.reset_index()
    out["service_request_id"] = out["problem_id"]
    return out


def _pick_in_runs(values: pd.Series, rows: np.ndarray, starts: np.ndarray, how: str, *,
                  where: np.ndarray | None = None) -> pd.Series:
    """The ``how`` (``"min"`` or ``"max"``) of ``values`` in each run of ``rows`` (runs
    begin at ``starts``), skipping missing values and rows not ``where``; as pandas'
    groupby gives it (dtype kept), one value per run, indexed from 0."""
    picked = pd.Series(values.array.take(rows))
    if where is not None:
        picked = picked.where(where)
    run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(rows)]))
    return picked.groupby(run, sort=True).agg(how)


#: The member columns a problem work list is made from.
_LIST_SOURCES = ("rank", "hotspot_id", "problem_id", "service_request_id", "service_name",
                 "address", "status", "requested_datetime", "expected_datetime", "lat", "lon")


def work_list_by_problem(members: pd.DataFrame, *, now: pd.Timestamp) -> pd.DataFrame:
    """Crew work list with one line per problem, all its request ids on the line.

    Parameters
    ----------
    members
        ``HotspotResult.members`` of a problem run (requests with ``hotspot_id``,
        ``rank`` and ``problem_id``).
    now
        Reference time for ages and overdue.

    Returns
    -------
    pandas.DataFrame
        ``rank``, ``hotspot_id``, ``problem_id``, ``calls``, ``request_ids`` (joined by
        ``;``), ``service_name``, ``address``, ``status``, ``first_requested``,
        ``last_requested``, ``age_days``, ``due_datetime``, ``overdue``, ``lat``, ``lon``;
        in rank order, oldest problem first. Closing the line's job closes every
        request listed on it.
    """
    shown = [c for c in _LIST_SOURCES if c in members.columns]  # not the x/y, area codes
    rows = members.loc[members["hotspot_id"].notna(), shown]
    problems = collapse(rows.drop(columns=["problem_id"], errors="ignore").assign(
        problem_id=problem_ids_of(rows).array), ids="text")
    del rows  # (a copy of the clustered members: not held through the sort below)
    now_ts = pd.Timestamp(now)
    due = (problems["expected_datetime"] if "expected_datetime" in problems
           else pd.Series(pd.NaT, index=problems.index))
    out = pd.DataFrame({
        "rank": problems["rank"].astype(int),
        "hotspot_id": problems["hotspot_id"],
        "problem_id": problems["problem_id"],
        "calls": problems["calls"].astype(int),
        "request_ids": problems["request_ids"],
        "service_name": problems["service_name"],
        "address": problems["address"],
        "status": problems["status"],
        "first_requested": problems["requested_datetime"],
        "last_requested": problems["last_requested"],
        "age_days": ((now_ts - problems["requested_datetime"]).dt.total_seconds()
                     / 86400).round(1),
        "due_datetime": due,
        "overdue": problems["status"].eq("open") & (due < now_ts),
        "lat": problems["lat"],
        "lon": problems["lon"],
    })
    del problems, due
    return out.sort_values(["rank", "first_requested", "problem_id"]).reset_index(drop=True)
