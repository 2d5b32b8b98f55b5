"""Keeping ``problem_id`` up to date inside a store write, for both stores.

The rule itself is in :mod:`clustering.problems`, which the stores cannot import; the
caller hands the write a :class:`geo.ingest.sink.ProblemAssigner`. This module decides
which stored requests must be looked at again (the *context*) so that an incremental
update gives the ids a recomputation of the whole city would:

- the written (new or changed) requests;
- every stored request within the assigner's reach of one of them, and all requests of
  the problems those belong to;
- all requests of the problem a changed request belonged to before (it may split).

No link joins a request of the context to one outside it (a link between two unchanged
requests existed before, so both were in one problem already), so the components inside
the context are the city's components. When an unchanged request has no ``problem_id``
(written without an assigner, or stored before problems existed) the whole city is the
context.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo.ingest.sink import PROBLEM_INPUT, ProblemAssigner

#: Columns an assigner reads, and the stored id.
PROBLEM_COLUMNS: Final = (*PROBLEM_INPUT, "problem_id")


def context_mask(frame: pd.DataFrame, changed: np.ndarray, old_ids: pd.Series,
                 assigner: ProblemAssigner) -> np.ndarray:
    """Which rows of ``frame`` (every stored request, after the write) to recompute.

    Parameters
    ----------
    frame
        Every stored request with :data:`PROBLEM_COLUMNS`; written rows carry their
        previous ``problem_id`` or none.
    changed
        Boolean mask over ``frame``: the rows this write inserted or updated.
    old_ids
        The ``problem_id`` written rows had before the write (updated rows only).
    assigner
        The city's problem rule.

    Returns
    -------
    numpy.ndarray
        Boolean mask over ``frame``.
    """
    ids = frame["problem_id"].to_numpy(dtype=object)
    unchanged = ~changed
    if pd.isna(ids[unchanged]).any() or 2 * int(changed.sum()) >= len(frame):
        return np.ones(len(frame), dtype=bool)
    where = frame[["x", "y", "requested_datetime"]]  # only what the search reads
    near = assigner.near(where[unchanged], where[changed])
    affected = set(ids[unchanged][near]) | set(old_ids.dropna())
    return np.asarray(changed | pd.Series(ids).isin(affected).to_numpy(), dtype=bool)


def stored_context(kept: pd.DataFrame, kept_ids: pa.Array, changed: pd.DataFrame,
                   old_ids: pa.Array, assigner: ProblemAssigner) -> np.ndarray:
    """:func:`context_mask` over the unchanged rows, with the ids kept as Arrow text.

    For a store that reads only what the rule needs: the unchanged rows' ``x``, ``y``
    and ``requested_datetime`` and their ``problem_id`` (every one set), never a Python
    object per stored row.

    Parameters
    ----------
    kept
        ``x``, ``y``, ``requested_datetime`` of the stored rows the write keeps.
    kept_ids
        Their ``problem_id`` (no nulls).
    changed
        ``x``, ``y``, ``requested_datetime`` of the written rows.
    old_ids
        The ``problem_id`` the written rows had before (updated rows only).
    assigner
        The city's problem rule.

    Returns
    -------
    numpy.ndarray
        Boolean mask over ``kept``: the rows in the context (the written rows always
        are).
    """
    near = assigner.near(kept, changed)
    affected = pa.chunked_array(
        [pc.unique(pc.filter(kept_ids, pa.array(near))).cast(pa.string()),
         pc.drop_null(old_ids).cast(pa.string())], type=pa.string())
    if len(affected) == 0:
        return np.zeros(len(kept), dtype=bool)
    hit = pc.is_in(kept_ids, value_set=pc.unique(affected))
    return np.asarray(pc.fill_null(hit, False).to_numpy(zero_copy_only=False), dtype=bool)


def reassign(frame: pd.DataFrame, mask: np.ndarray, assigner: ProblemAssigner) -> pd.Series:
    """New ``problem_id`` of the rows of ``mask`` whose id changes.

    Parameters
    ----------
    frame
        As for :func:`context_mask`.
    mask
        From :func:`context_mask`.
    assigner
        The city's problem rule.

    Returns
    -------
    pandas.Series
        Indexed like ``frame``, only the rows whose id differs from the stored one.
    """
    context = frame[mask]
    fresh = assigner.assign(context)
    old = context["problem_id"]
    differs = old.isna().to_numpy() | (old.astype(object).to_numpy() != fresh.to_numpy())
    return fresh[differs]


def update_frame(frame: pd.DataFrame, changed: np.ndarray, old_ids: pd.Series,
                 assigner: ProblemAssigner | None) -> pd.DataFrame:
    """``frame`` with ``problem_id`` up to date (see the module docstring).

    Without an assigner the written rows lose their ``problem_id`` (the next write with
    one recomputes the city).

    Parameters
    ----------
    frame, changed, old_ids, assigner
        As for :func:`context_mask`.

    Returns
    -------
    pandas.DataFrame
        A copy of ``frame``.
    """
    out = frame.copy()
    if "problem_id" not in out.columns:
        out["problem_id"] = None
    out["problem_id"] = out["problem_id"].astype(object)
    if assigner is None:
        out.loc[changed, "problem_id"] = None
        return out
    if len(out) == 0:
        return out
    mask = context_mask(out, changed, old_ids, assigner)
    fresh = reassign(out, mask, assigner)
    out.loc[fresh.index, "problem_id"] = fresh.to_numpy(dtype=object)
    return out


def rebuild_frame(frame: pd.DataFrame, assigner: ProblemAssigner) -> tuple[pd.DataFrame, int]:
    """Every ``problem_id`` recomputed; also the number of rows whose id changed."""
    out = frame.copy()
    if "problem_id" not in out.columns:
        out["problem_id"] = None
    fresh = reassign(out, np.ones(len(out), dtype=bool), assigner)
    out["problem_id"] = out["problem_id"].astype(object)
    out.loc[fresh.index, "problem_id"] = fresh.to_numpy(dtype=object)
    return out, len(fresh)
