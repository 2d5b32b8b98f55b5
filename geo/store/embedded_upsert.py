"""The embedded store's upsert on parts: a write costs the rows it writes.

:func:`match_stored` finds the stored versions of a batch's ids (reading only the key
columns); :func:`problem_rewrites` brings ``problem_id`` up to date reading only the
columns the problem rule's search needs for every row and the full rows of its context
(:mod:`geo.store.problem_ids`); :func:`plan_parts` turns the fresh rows and the superseded
positions into one new part, grown deletion files and any compaction
(:func:`geo.store.embedded_parts.compaction_plan`), as files for the next snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo.ingest.model import TEXT
from geo.ingest.sink import ProblemAssigner
from geo.store import problem_ids
from geo.store.embedded_parts import (
    PART,
    ROW,
    Part,
    RequestParts,
    compaction_plan,
    new_part_name,
    part_table,
    renumbered,
    with_parts,
)

KEY_COLUMNS = ("service_request_id", "updated_datetime", "row_hash")
#: Types of :func:`match_stored`'s columns: text Arrow-backed, and ``row_hash`` nullable
#: (a stored null would otherwise make the column float64 and lose the hashes' bits).
_KEY_TYPES = {pa.string(): TEXT, pa.large_string(): TEXT, pa.uint64(): pd.UInt64Dtype()}
#: Column of :func:`match_stored`'s rows: the position of the incoming row with that id.
INCOMING = "_incoming"
_WHERE = tuple(dict.fromkeys(["x", "y", "requested_datetime", "problem_id",
                              *problem_ids.PROBLEM_COLUMNS]))


@dataclass
class PartsWrite:
    """What a write does to the requests: the next manifest and the files it adds.

    Attributes
    ----------
    manifest
        The manifest listing the new parts.
    files
        File name → Arrow table (a part) or position array (a deletion file).
    """

    manifest: dict[str, Any]
    files: dict[str, Any] = field(default_factory=dict)


def read_stored(view: RequestParts, *, problems: bool) -> pa.Table:
    """What a write reads of every live row, in one pass: the key columns, and the
    columns the problem rule reads when ``problems``; with positions (never the geometry
    or the other columns)."""
    columns = [*KEY_COLUMNS, *(_WHERE if problems else ())]
    # few service names: read as a dictionary, decoded for the context rows alone
    return view.table(columns, positions=True,
                      read_dictionary=["service_name"] if problems else ())


def match_stored(keys: pa.Table, ids: pd.Series) -> pd.DataFrame:
    """The rows of ``keys`` (from :func:`read_stored`) whose id is in ``ids``: key
    columns, positions, and :data:`INCOMING`, the position in ``ids`` of the row's id.

    One Arrow hash look-up built on ``ids`` (the batch, usually far smaller than the
    store); the ids stay Arrow-backed text, with no Python string per matched row.
    """
    keys = keys.select([*KEY_COLUMNS, PART, ROW])
    column = keys.column("service_request_id")
    at = pc.index_in(column, value_set=text_array(ids).cast(column.type))
    hit = at.is_valid()
    rows = keys.filter(hit).to_pandas(types_mapper=_KEY_TYPES.get)
    rows[INCOMING] = np.asarray(pc.drop_null(at).to_numpy(zero_copy_only=False),
                                dtype=np.int64)
    return rows


def ids_in(values: pd.Series, ids: pd.Series) -> np.ndarray:
    """Boolean mask over ``values``: which are in ``ids`` (request ids; missing never is).

    One Arrow hash look-up: pandas' ``isin`` on Arrow-backed text builds a Python object
    per value of ``ids`` (8 s for a backfill's 250,000-row batches).

    Examples
    --------
    >>> ids_in(pd.Series(["a", "b", None]), pd.Series(["b", "c"])).tolist()
    [False, True, False]
    """
    hit = pc.is_in(text_array(values), value_set=text_array(ids))
    return np.asarray(pc.fill_null(hit, False).to_numpy(zero_copy_only=False), dtype=bool)


def text_array(values: pd.Series) -> pa.Array:
    """Text as one Arrow ``large_string`` array (no Python object per value when the
    series is Arrow-backed already).

    Parameters
    ----------
    values
        Text, missing values as ``None``/NaN; other objects are converted with ``str``.

    Returns
    -------
    pyarrow.Array
        One ``large_string`` array, not chunked.

    Examples
    --------
    >>> text_array(pd.Series(["a", None])).to_pylist()
    ['a', None]
    """
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # text mixed with other objects
        array = pa.array([None if pd.isna(v) else str(v) for v in values],
                         type=pa.large_string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.large_string())


def position_keys(part: np.ndarray, row: np.ndarray) -> np.ndarray:
    """One int64 per (part, row) pair."""
    return (np.asarray(part, dtype=np.int64) << 32) | np.asarray(row, dtype=np.int64)


def problem_rewrites(view: RequestParts, where: pa.Table, superseded: pd.DataFrame,
                     fresh: pd.DataFrame, assigner: ProblemAssigner
                     ) -> tuple[pd.Series, pa.Table] | None:
    """New ``problem_id`` of the fresh rows, and the stored rows whose id changes.

    Parameters
    ----------
    view
        The stored parts.
    where
        From :func:`read_stored` with ``problems``.
    superseded
        :data:`PART`/:data:`ROW` of the stored rows this write replaces.
    fresh
        The written rows (:data:`geo.store.problem_ids.PROBLEM_COLUMNS` but ``problem_id``).
    assigner
        The city's problem rule.

    Returns
    -------
    tuple or None
        ``problem_id`` of ``fresh`` (indexed like it), and the full stored rows to write
        again with their new ``problem_id`` (with :data:`PART`/:data:`ROW`). ``None`` when
        the whole city must be recomputed (an unchanged request has no ``problem_id``, or
        the write changes half of the store or more).
    """
    if "problem_id" not in where.column_names:
        return None
    gone = np.isin(position_keys(where.column(PART).to_numpy(), where.column(ROW).to_numpy()),
                   position_keys(superseded[PART].to_numpy(), superseded[ROW].to_numpy()))
    old_ids = where.column("problem_id").filter(pa.array(gone))
    kept = where.filter(pa.array(~gone))
    kept_ids = kept.column("problem_id")
    if kept_ids.null_count or 2 * len(fresh) >= kept.num_rows + len(fresh):
        return None
    fresh_where = pd.DataFrame({"x": fresh["x"].to_numpy(dtype="float64"),
                                "y": fresh["y"].to_numpy(dtype="float64"),
                                "requested_datetime": fresh["requested_datetime"]})
    mask = problem_ids.stored_context(kept.select(["x", "y", "requested_datetime"]).to_pandas(),
                                      kept_ids, fresh_where, old_ids, assigner)
    in_context = kept.filter(pa.array(mask))
    positions = in_context.select([PART, ROW])
    stored_ctx = _decoded(in_context.select(list(problem_ids.PROBLEM_COLUMNS))).to_pandas()
    fresh_ctx = fresh[[c for c in problem_ids.PROBLEM_COLUMNS if c != "problem_id"]].copy()
    fresh_ctx["problem_id"] = None
    context = pd.concat([stored_ctx.astype({"problem_id": object}),
                         fresh_ctx.reset_index(drop=True)], ignore_index=True)
    changed_ids = problem_ids.reassign(context, np.ones(len(context), dtype=bool), assigner)
    n = len(stored_ctx)
    fresh_ids = pd.Series(None, index=range(len(fresh)), dtype=object)
    on_fresh = changed_ids[changed_ids.index >= n]
    fresh_ids[on_fresh.index - n] = on_fresh.to_numpy(dtype=object)
    on_stored = changed_ids[changed_ids.index < n]
    rows = positions.take(pa.array(on_stored.index.to_numpy()))
    again = view.take(rows)
    again = again.set_column(again.schema.get_field_index("problem_id"), "problem_id",
                             pa.array(on_stored.to_numpy(dtype=object), type=pa.string()))
    again = again.append_column(PART, rows.column(PART)).append_column(ROW, rows.column(ROW))
    return pd.Series(fresh_ids.to_numpy(), index=fresh.index, dtype=object), again


def _decoded(table: pa.Table) -> pa.Table:
    """``table`` with dictionary-encoded columns as plain text."""
    for i, column in enumerate(table.columns):
        if pa.types.is_dictionary(column.type):
            table = table.set_column(i, table.field(i).name,
                                     pc.cast(column, column.type.value_type))
    return table


def plan_parts(view: RequestParts | None, manifest: dict[str, Any], fresh: gpd.GeoDataFrame,
               superseded: pd.DataFrame, again: pa.Table | None = None) -> PartsWrite:
    """The files and manifest of a write that adds ``fresh`` and supersedes rows.

    Parameters
    ----------
    view
        The stored parts (``None``: none yet).
    manifest
        The manifest to extend.
    fresh
        Written rows, aligned (canonical columns, ``problem_id`` set).
    superseded
        :data:`PART`/:data:`ROW` of the stored rows replaced (by ``fresh`` or ``again``).
    again
        Stored rows written again (a changed ``problem_id``), with their positions.

    Returns
    -------
    PartsWrite
        One new part with ``fresh`` and ``again``; deletion files of the parts that lost
        rows; compacted parts where :func:`compaction_plan` asks for it.
    """
    parts = list(view.parts) if view is not None else []
    table = part_table(fresh)
    if again is not None and again.num_rows:
        extra = again.drop_columns([PART, ROW])
        table = renumbered(pa.concat_tables([table.drop_columns([ROW]), extra],
                                            promote_options="permissive"))
    deleted: dict[int, np.ndarray] = {}
    if len(superseded):
        by_part = superseded.groupby(PART)[ROW]
        for i, rows in by_part:
            assert view is not None  # superseded rows are stored rows
            index = int(i)  # type: ignore[arg-type]
            deleted[index] = np.union1d(view.deleted(index), rows.to_numpy(dtype=np.int64))
    out = PartsWrite(dict(manifest))
    tables: dict[int, pa.Table] = {}
    for i, positions in deleted.items():
        parts[i] = Part(parts[i].file, parts[i].rows, len(positions))
    if table.num_rows:
        name, out.manifest = new_part_name(out.manifest)
        parts.append(Part(name, table.num_rows))
        tables[len(parts) - 1] = table
    for group in compaction_plan(parts):
        merged = pa.concat_tables(
            [_live(view, parts, tables, deleted, i) for i in group],
            promote_options="permissive")
        first = min(group)
        if merged.num_rows:
            name, out.manifest = new_part_name(out.manifest)
            parts[first] = Part(name, merged.num_rows)
            tables[first] = renumbered(merged)
        else:  # every row superseded: the part goes
            parts[first] = Part("", 0)
            tables.pop(first, None)
        for i in group:
            deleted.pop(i, None)
            if i != first:
                parts[i] = Part("", 0)  # dropped below
                tables.pop(i, None)
    keep = [i for i, p in enumerate(parts) if p.file]
    final = [parts[i] for i in keep]
    for i in keep:
        if i in tables:
            out.files[parts[i].file] = tables[i]
        elif i in deleted:
            gone = parts[i].deletion_file
            assert gone is not None
            out.files[gone] = deleted[i]
    out.manifest = with_parts(out.manifest, final)
    return out


def _live(view: RequestParts | None, parts: Sequence[Part], tables: dict[int, pa.Table],
          deleted: dict[int, np.ndarray], i: int) -> pa.Table:
    """All columns of part ``i``'s live rows (after this write's deletions)."""
    if i in tables:
        return tables[i].drop_columns([ROW])
    assert view is not None
    table = _read_whole(view, i)
    gone = deleted.get(i, view.deleted(i))
    if len(gone):
        keep = np.ones(parts[i].rows, dtype=bool)
        keep[gone] = False
        table = table.filter(pa.array(keep))
    return table


def _read_whole(view: RequestParts, i: int) -> pa.Table:
    """Every row of part ``i`` (deleted ones too), all columns, in file order."""
    sole = RequestParts(view.directory, [Part(view.parts[i].file, view.parts[i].rows)])
    return sole.table()


def full_write(manifest: dict[str, Any], frame: gpd.GeoDataFrame) -> PartsWrite:
    """Every request as one new part, replacing every part (a full rewrite)."""
    out = PartsWrite(dict(manifest))
    if not len(frame):
        out.manifest = with_parts(out.manifest, [])
        return out
    name, out.manifest = new_part_name(out.manifest)
    out.files[name] = part_table(frame)
    out.manifest = with_parts(out.manifest, [Part(name, len(frame))])
    return out


__all__ = ["INCOMING", "KEY_COLUMNS", "PartsWrite", "full_write", "ids_in", "match_stored",
           "plan_parts", "position_keys", "problem_rewrites", "read_stored", "text_array"]
