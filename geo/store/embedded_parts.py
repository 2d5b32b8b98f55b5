"""The embedded store's requests as immutable parts with deletion files.

A snapshot holds its requests in one or more GeoParquet *parts* (``requests-000007.parquet``),
listed in order in the snapshot's ``manifest.json`` under ``request_parts``. A part is never
rewritten: a later snapshot hard-links it. Each part carries a ``_row`` column (its row
positions, 0, 1, …) so that a filtered scan still knows which rows it returned. The rows
of a part that a later write superseded (an update, a changed ``problem_id``) are listed by
position in the part's *deletion file* (``requests-000007.deleted.npy``, sorted int32
positions, written anew in the snapshot that adds to it). This is what Delta Lake's deletion
vectors and Iceberg's position deletes do: a write costs the rows it writes, not the store.

The live rows are every part's rows minus its deleted positions, in part order then row
order. :class:`RequestParts` is the one way to read them; every reader of requests goes
through it. A store written before parts existed has one ``requests.parquet`` and no
``request_parts`` entry: it reads as one part (no ``_row`` column, no deletions) and its next
write rewrites it as a part (:func:`needs_migration`).

Compaction (:func:`compaction_plan`) keeps parts and deleted rows bounded: small parts are
merged when there are many of them, and a part is rewritten without its deleted rows when
they are at least half of it. Both happen inside an ordinary snapshot write.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import shapely
from geopandas.io.arrow import _arrow_to_geopandas

#: Manifest key listing the parts, in order.
PARTS_KEY: Final = "request_parts"
#: Manifest key of the next part number.
NEXT_KEY: Final = "request_part_next"
#: The single requests file of the layout before parts.
LEGACY_FILE: Final = "requests.parquet"
#: Row position column stored in every part.
ROW: Final = "_row"
#: Part index column added by :meth:`RequestParts.table` with ``positions=True``.
PART: Final = "_part"
#: Rows per Parquet row group of a part.
ROW_GROUP: Final = 65_536
#: A part with fewer live rows is small; small parts are merged when there are more than
#: :data:`MAX_SMALL_PARTS` of them.
SMALL_ROWS: Final = 131_072
MAX_SMALL_PARTS: Final = 8
#: A part whose deleted rows reach this share of it is rewritten without them.
MAX_DELETED_SHARE: Final = 0.5


class UnreadablePart(Exception):
    """A part or deletion file that cannot be read; ``path`` names it."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


@dataclass(frozen=True)
class Part:
    """One part of a snapshot's requests.

    Attributes
    ----------
    file
        File name inside the snapshot directory.
    rows
        Rows in the file.
    deleted
        How many of them are superseded (listed in :attr:`deletion_file`).
    """

    file: str
    rows: int
    deleted: int = 0

    @property
    def live(self) -> int:
        """Rows not superseded."""
        return self.rows - self.deleted

    @property
    def deletion_file(self) -> str | None:
        """Name of the deletion file, ``None`` when no row is deleted."""
        if not self.deleted:
            return None
        return self.file.removesuffix(".parquet") + ".deleted.npy"

    def to_dict(self) -> dict[str, Any]:
        """The manifest entry."""
        return {"file": self.file, "rows": self.rows, "deleted": self.deleted}

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> Part:
        """From a manifest entry."""
        return cls(str(entry["file"]), int(entry["rows"]), int(entry.get("deleted", 0)))


def parts_of(manifest: dict[str, Any], directory: Path | None) -> list[Part]:
    """The parts of a snapshot (a legacy ``requests.parquet`` as one part).

    Parameters
    ----------
    manifest
        The snapshot's manifest.
    directory
        The snapshot directory (``None``: no snapshot yet).

    Returns
    -------
    list of Part
        In read order; empty when the snapshot holds no requests.
    """
    if PARTS_KEY in manifest:
        return [Part.from_dict(e) for e in manifest[PARTS_KEY]]
    if directory is None or not (directory / LEGACY_FILE).exists():
        return []
    path = directory / LEGACY_FILE
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except (OSError, ValueError, pa.ArrowException) as err:
        raise UnreadablePart(path) from err
    return [Part(LEGACY_FILE, rows)]


def needs_migration(manifest: dict[str, Any], directory: Path | None) -> bool:
    """Whether the snapshot is in the layout before parts (one ``requests.parquet``)."""
    return (PARTS_KEY not in manifest and directory is not None
            and (directory / LEGACY_FILE).exists())


def referenced_files(manifest: dict[str, Any]) -> list[str]:
    """Every part and deletion file a manifest lists."""
    out: list[str] = []
    for part in parts_of(manifest, None):
        out.append(part.file)
        if part.deletion_file:
            out.append(part.deletion_file)
    return out


def with_parts(manifest: dict[str, Any], parts: Sequence[Part]) -> dict[str, Any]:
    """A copy of ``manifest`` listing ``parts``."""
    out = dict(manifest)
    out[PARTS_KEY] = [p.to_dict() for p in parts]
    return out


def new_part_name(manifest: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A fresh part file name, and the manifest with its counter moved on."""
    number = int(manifest.get(NEXT_KEY, 0))
    out = dict(manifest)
    out[NEXT_KEY] = number + 1
    return f"requests-{number:06d}.parquet", out


def read_deleted(path: Path) -> np.ndarray:
    """Sorted positions from a deletion file (no pickles)."""
    try:
        return np.asarray(np.load(path, allow_pickle=False), dtype=np.int64)
    except (OSError, ValueError) as err:
        raise UnreadablePart(path) from err


def write_deleted(path: Path, positions: np.ndarray) -> None:
    """Write a deletion file (sorted, unique int32 positions)."""
    with open(path, "wb") as out:
        np.save(out, np.unique(np.asarray(positions, dtype=np.int64)).astype(np.int32),
                allow_pickle=False)


def part_table(frame: gpd.GeoDataFrame) -> pa.Table:
    """A frame as the Arrow table of a part (GeoParquet metadata, ``_row`` last).

    When every geometry is a 2-D point (every stored request), the WKB is written by
    :func:`point_wkb` from the coordinates; otherwise geopandas encodes it. Both give
    the same table.
    """
    from geopandas.io.arrow import _geopandas_to_arrow

    body = frame.drop(columns=[ROW], errors="ignore")
    table = _points_to_arrow(body)
    if table is None:
        table = _geopandas_to_arrow(body, index=False)
    return table.append_column(ROW, pa.array(np.arange(table.num_rows, dtype=np.int32)))


#: One 2-D point in little-endian WKB: byte order 1, geometry type 1, x, y (21 bytes).
_POINT_WKB: Final = np.dtype([("order", "u1"), ("kind", "<u4"), ("x", "<f8"), ("y", "<f8")])


def point_wkb(x: np.ndarray, y: np.ndarray) -> pa.BinaryArray:
    """Little-endian WKB of 2-D points as an Arrow binary array, built in NumPy (what
    ``shapely.to_wkb`` gives for ``shapely.points(x, y)``, without a geometry per point).

    Examples
    --------
    >>> import shapely
    >>> point_wkb(np.array([1.5]), np.array([-2.0]))[0].as_py() == shapely.to_wkb(
    ...     shapely.Point(1.5, -2.0))
    True
    """
    n = len(x)
    rows = np.empty(n, dtype=_POINT_WKB)
    rows["order"], rows["kind"], rows["x"], rows["y"] = 1, 1, x, y
    offsets = np.arange(0, (n + 1) * _POINT_WKB.itemsize, _POINT_WKB.itemsize, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets),
                                                  pa.py_buffer(rows.view(np.uint8))])


def _points_to_arrow(frame: gpd.GeoDataFrame) -> pa.Table | None:
    """What geopandas' GeoParquet conversion gives for ``frame`` (no index), with the
    WKB from :func:`point_wkb`; ``None`` unless the one geometry column holds only
    non-empty 2-D points."""
    from geopandas.io._geoarrow import construct_wkb_array
    from geopandas.io.arrow import _create_metadata, _encode_metadata

    columns = frame.columns[np.asarray(frame.dtypes == "geometry")]
    if len(columns) != 1 or frame.attrs or not len(frame):
        return None
    name = columns[0]
    geoms = np.asarray(frame[name].array)
    if not ((shapely.get_type_id(geoms) == 0).all() and not shapely.is_empty(geoms).any()
            and not shapely.has_z(geoms).any()):
        return None
    xy = shapely.get_coordinates(geoms)
    attrs = pd.DataFrame(frame.copy(deep=False))
    attrs[name] = None
    table = pa.Table.from_pandas(attrs, preserve_index=False)
    field, _ = construct_wkb_array(geoms[:0], field_name=name, crs=frame[name].crs)
    table = table.set_column(list(frame.columns).index(name), field,
                             point_wkb(xy[:, 0], xy[:, 1]))
    geo = _create_metadata(frame, schema_version=None, geometry_encoding={name: "WKB"},
                           write_covering_bbox=None)
    return table.replace_schema_metadata({**(table.schema.metadata or {}),
                                          b"geo": _encode_metadata(geo)})


def renumbered(table: pa.Table) -> pa.Table:
    """``table`` (rows of parts, ``_row`` possibly present) with a fresh ``_row``."""
    if ROW in table.column_names:
        table = table.drop_columns([ROW])
    return table.append_column(ROW, pa.array(np.arange(table.num_rows, dtype=np.int32)))


def write_part(path: Path, table: pa.Table) -> None:
    """Write a part file (the table from :func:`part_table` or :func:`renumbered`), in
    row groups of :data:`ROW_GROUP` rows (a look-up by position reads only its groups).

    Only text columns other than the request id are dictionary-encoded: codes, names and
    statuses repeat, while ids, times, coordinates and hashes do not, and Arrow's attempt
    at a dictionary for them costs more than the rest of the write (written 1.8x faster,
    and smaller, on the 1M requests of ``bench/ingest_join.py``)."""
    dictionary = [f.name for f in table.schema
                  if (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
                  and f.name != "service_request_id"]
    pq.write_table(table, path, row_group_size=ROW_GROUP, use_dictionary=dictionary)


class RequestParts:
    """The live requests of one snapshot: the one reader of the parts.

    Parameters
    ----------
    directory
        The snapshot directory.
    parts
        Its parts (:func:`parts_of`).
    hold
        Open every file now and keep it open, so that reads see this snapshot even after
        it is removed (:meth:`geo.store.embedded.EmbeddedStore.request_reader`); such a
        reader takes no filter.
    """

    def __init__(self, directory: Path, parts: Sequence[Part], *, hold: bool = False) -> None:
        self.directory = directory
        self.parts = list(parts)
        self._deleted: dict[int, np.ndarray] = {}
        self._handles: list[Any] = []
        self._lock = threading.Lock()
        self._schema: pa.Schema | None = None
        if hold:
            for i, part in enumerate(self.parts):
                path = directory / part.file
                try:
                    self._handles.append(pa.OSFile(str(path)))
                except (OSError, pa.ArrowException) as err:
                    raise UnreadablePart(path) from err
                self.deleted(i)

    # --- what is stored ------------------------------------------------------------
    @property
    def count(self) -> int:
        """Live rows."""
        return sum(p.live for p in self.parts)

    def deleted(self, i: int) -> np.ndarray:
        """Deleted positions of part ``i`` (sorted)."""
        if i not in self._deleted:
            name = self.parts[i].deletion_file
            self._deleted[i] = (np.zeros(0, dtype=np.int64) if name is None
                                else read_deleted(self.directory / name))
        return self._deleted[i]

    def live_mask(self, i: int) -> np.ndarray | None:
        """Boolean mask of part ``i``'s live rows, ``None`` when all are live."""
        gone = self.deleted(i)
        if not len(gone):
            return None
        mask = np.ones(self.parts[i].rows, dtype=bool)
        mask[gone] = False
        return mask

    @property
    def schema(self) -> pa.Schema:
        """The parts' schemas unified (``_row`` left out), first part's order first."""
        if self._schema is None:
            schemas = [self._part_schema(i) for i in range(len(self.parts))]
            unified = pa.unify_schemas(schemas, promote_options="permissive")
            if ROW in unified.names:
                unified = unified.remove(unified.get_field_index(ROW))
            self._schema = unified
        return self._schema

    def _part_schema(self, i: int) -> pa.Schema:
        path = self.directory / self.parts[i].file
        try:
            if self._handles:
                with self._lock:
                    return pq.read_schema(self._handles[i])
            return pq.read_schema(path)
        except (OSError, ValueError, pa.ArrowException) as err:
            raise UnreadablePart(path) from err

    # --- reading ---------------------------------------------------------------------
    def table(self, columns: Sequence[str] | None = None, *,
              filter: ds.Expression | None = None,
              positions: bool = False, read_dictionary: Sequence[str] = ()) -> pa.Table:
        """Live rows of the parts, in part then row order.

        Parameters
        ----------
        columns
            Columns to return (those stored; ``None``: all but ``_row``).
        filter
            Arrow expression applied while scanning (row groups ruled out by their
            statistics are skipped).
        positions
            Add :data:`PART` (part index) and :data:`ROW` (position in the part).
        read_dictionary
            Text columns to read dictionary-encoded.

        Returns
        -------
        pyarrow.Table
            One table of the unified schema's types.
        """
        schema = self.schema
        wanted = [c for c in (schema.names if columns is None else dict.fromkeys(columns))
                  if c in schema.names]
        pieces = [self._read_part(i, wanted, filter, positions, read_dictionary)
                  for i in range(len(self.parts))]
        fields = [schema.field(c) for c in wanted]
        if positions:
            fields += [pa.field(PART, pa.int32()), pa.field(ROW, pa.int32())]
        target = pa.schema(fields, metadata=schema.metadata)
        if not pieces:
            return target.empty_table()
        out = [_conform(p, target, read_dictionary) for p in pieces]
        if len(out) == 1:
            return out[0]
        return pa.concat_tables(out, promote_options="permissive")

    def _read_part(self, i: int, wanted: list[str], filt: ds.Expression | None,
                   positions: bool, read_dictionary: Sequence[str]) -> pa.Table:
        part = self.parts[i]
        path = self.directory / part.file
        mask = self.live_mask(i)
        try:
            names = set(self._part_schema(i).names)
            has_row = ROW in names
            cols = [c for c in wanted if c in names]
            need_row = has_row and (mask is not None or positions)
            read = cols + ([ROW] if need_row else [])
            if filt is None:
                dictionary = [c for c in read_dictionary if c in cols]
                if self._handles:
                    with self._lock:
                        table = pq.ParquetFile(self._handles[i],
                                               read_dictionary=dictionary).read(columns=read)
                else:
                    table = pq.ParquetFile(path, read_dictionary=dictionary).read(columns=read)
                rows = (table.column(ROW).to_numpy() if need_row
                        else np.arange(table.num_rows, dtype=np.int32))
            else:
                if self._handles:
                    raise ValueError("a held reader reads without filters")
                if not has_row and (mask is not None or positions):
                    raise ValueError(f"{part.file}: no {ROW} column for a filtered read")
                table = ds.dataset(str(path), format="parquet").to_table(
                    columns=read, filter=filt)
                rows = table.column(ROW).to_numpy() if need_row else None
        except (OSError, pa.ArrowException) as err:
            raise UnreadablePart(path) from err
        except ValueError as err:
            if "reads without filters" in str(err) or f"no {ROW} column" in str(err):
                raise
            raise UnreadablePart(path) from err
        if mask is not None and rows is not None:
            keep = mask[rows]
            if not keep.all():
                table = table.filter(pa.array(keep))
                rows = rows[keep]
        if ROW in table.column_names:
            table = table.drop_columns([ROW])
        if positions and rows is not None:
            table = table.append_column(PART, pa.array(np.full(len(rows), i, dtype=np.int32)))
            table = table.append_column(ROW, pa.array(np.asarray(rows, dtype=np.int32)))
        return table

    def take(self, rows: pa.Table, columns: Sequence[str] | None = None) -> pa.Table:
        """Rows named by :data:`PART`/:data:`ROW` pairs (any order), all or some columns.

        Returns
        -------
        pyarrow.Table
            In the order of ``rows``.
        """
        schema = self.schema
        wanted = [c for c in (schema.names if columns is None else columns) if c in schema.names]
        part = rows.column(PART).to_numpy()
        row = rows.column(ROW).to_numpy()
        pieces, where = [], []
        for i in np.unique(part):
            sel = np.flatnonzero(part == i)
            path = self.directory / self.parts[int(i)].file
            try:
                names = set(self._part_schema(int(i)).names)
                cols = [c for c in wanted if c in names]
                table = _take_rows(pq.ParquetFile(path), row[sel], cols)
            except (OSError, ValueError, pa.ArrowException) as err:
                raise UnreadablePart(path) from err
            pieces.append(table)
            where.append(sel)
        target = pa.schema([schema.field(c) for c in wanted], metadata=schema.metadata)
        if not pieces:
            return target.empty_table()
        out = pa.concat_tables([_conform(p, target, ()) for p in pieces],
                               promote_options="permissive")
        order = np.argsort(np.concatenate(where), kind="stable")
        return out.take(pa.array(order))

    def frame(self) -> gpd.GeoDataFrame:
        """Every live row as a GeoDataFrame (what ``geopandas.read_parquet`` gives)."""
        return _arrow_to_geopandas(self.table())


def _take_rows(file: pq.ParquetFile, rows: np.ndarray, columns: list[str]) -> pa.Table:
    """Rows at positions ``rows`` of a Parquet file, reading only their row groups."""
    meta = file.metadata
    sizes = np.array([meta.row_group(g).num_rows for g in range(meta.num_row_groups)],
                     dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    group = np.searchsorted(starts, rows, side="right") - 1
    chosen = np.unique(group)
    table = file.read_row_groups([int(g) for g in chosen], columns=columns)
    offset = np.zeros(len(sizes), dtype=np.int64)
    offset[chosen] = np.concatenate([[0], np.cumsum(sizes[chosen])[:-1]])
    return table.take(pa.array(rows - starts[group] + offset[group]))


def _conform(table: pa.Table, target: pa.Schema, dictionary: Sequence[str]) -> pa.Table:
    """``table`` with ``target``'s columns, order and types (missing columns as nulls)."""
    columns = []
    for field in target:
        if field.name in table.column_names:
            column = table.column(field.name)
            if column.type != field.type and field.name not in dictionary:
                column = pc.cast(column, field.type)
            columns.append(column)
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    names = list(target.names)
    return pa.Table.from_arrays(columns, names=names).replace_schema_metadata(target.metadata)


def compaction_plan(parts: Sequence[Part]) -> list[list[int]]:
    """Groups of part indexes to rewrite as one part each (without deleted rows).

    - a part whose deleted rows are :data:`MAX_DELETED_SHARE` or more of it, alone;
    - when more than :data:`MAX_SMALL_PARTS` parts hold fewer than :data:`SMALL_ROWS`
      live rows, all of those together.

    The cost of a compaction is the rows of the parts it rewrites, never the whole store
    unless the store is one such part.

    Examples
    --------
    >>> compaction_plan([Part("a", 1000, 600), Part("b", 10)])
    [[0]]
    >>> compaction_plan([Part(str(i), 10) for i in range(10)])
    [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]
    """
    groups: list[list[int]] = []
    taken: set[int] = set()
    for i, p in enumerate(parts):
        if p.rows and p.deleted >= MAX_DELETED_SHARE * p.rows:
            groups.append([i])
            taken.add(i)
    small = [i for i, p in enumerate(parts) if p.live < SMALL_ROWS and i not in taken]
    if len(small) > MAX_SMALL_PARTS:
        groups.append(small)
    return groups


__all__ = ["LEGACY_FILE", "PART", "PARTS_KEY", "ROW", "Part", "RequestParts", "UnreadablePart",
           "compaction_plan", "needs_migration", "new_part_name", "part_table", "parts_of",
           "read_deleted", "referenced_files", "renumbered", "with_parts", "write_deleted",
           "write_part"]
