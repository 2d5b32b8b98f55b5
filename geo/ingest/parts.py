"""Requests in Parquet parts (the year/month layout of ``join --engine dask --output``) as
ingest input.

``join --engine dask --output DIR`` and ``export requests --format parquet`` write
requests in the canonical schema with what hotspot311 derives from them: ``x``/``y``, a
geometry, one code column per boundary layer, ``extra`` (the source's other columns as
JSON) and, in the year/month layout, ``year``/``month``. Reading such a part back for an
ingest (:func:`read_part`) keeps what a source gives — the canonical fields and the
columns held in ``extra``, unpacked under their own names — and leaves out what the
store derives again (coordinates in the city CRS, geometry, layer codes, flags, batch,
hashes, partition keys). So a part goes through the same mapping and validation as any
file, and ingesting the parts of requests already stored changes nothing.

:func:`expand_paths` turns a directory in the year/month layout into its part files, in
year and month order (a later month wins a tie, as a later file does).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from geo.ingest.mapping import ColumnMapping, apply_mapping
from geo.ingest.readers import ROW_COLUMN, Format, RawBatch
from geo.ingest.sink import BatchSink
from geo.ingest.validate import ValidatedBatch, validate
from hotspot311.errors import InputError
from hotspot311.schema import DERIVED_FIELDS, STORE_FIELDS

__all__ = ["PART_SUFFIXES", "expand_paths", "is_part", "prepare_part", "read_part"]

#: Suffixes of Parquet parts.
PART_SUFFIXES: Final = (".parquet", ".geoparquet")
#: Columns a part carries that the store derives again (``extra`` is unpacked instead).
DERIVED: Final = frozenset(DERIVED_FIELDS) - {"extra"} | frozenset(STORE_FIELDS) | {
    "geometry", "year", "month", "row_hash"}
_PARTITION: Final = re.compile(r"^(year|month)=(-?\d+)$")


def is_part(path: str | Path) -> bool:
    """Whether ``path`` names a Parquet part (by its suffix)."""
    return Path(path).suffix.lower() in PART_SUFFIXES


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; a directory becomes its Parquet parts, in year/month order.

    Raises
    ------
    InputError
        If a directory holds no Parquet part.
    """
    out: list[Path] = []
    for item in paths:
        path = Path(item)
        if not path.is_dir():
            out.append(path)
            continue
        found = [p for p in path.rglob("*") if p.is_file() and is_part(p)]
        if not found:
            raise InputError(f"path: directory {path} holds no .parquet parts (expected the "
                             "year=YYYY/month=M/ layout of join --engine dask --output)")
        out.extend(sorted(found, key=lambda p: _part_key(p, path)))
    return out


def _part_key(path: Path, root: Path) -> tuple[Any, ...]:
    """Sort key: year and month from ``year=``/``month=`` folders (numbers), then the name."""
    parts = path.relative_to(root).parts
    numbers = {m.group(1): int(m.group(2)) for p in parts[:-1] if (m := _PARTITION.match(p))}
    digits = [int(d) for d in re.findall(r"\d+", parts[-1])]
    return (numbers.get("year", 0), numbers.get("month", 0), str(Path(*parts[:-1])), digits,
            parts[-1])


def read_part(path: str | Path, *, drop: Collection[str] = ()) -> RawBatch:
    """Read a Parquet part as text, the way a CSV file is read.

    Parameters
    ----------
    path
        The part.
    drop
        More columns to leave out (the profile's layer keys: their codes are derived).

    Returns
    -------
    RawBatch
        One text column per source column (times in ISO 8601 with their offset), with
        the columns held in ``extra`` unpacked, and ``lon``/``lat`` from the point
        geometry when the part has no such columns; format ``csv``, encoding ``parquet``.

    Raises
    ------
    InputError
        When the file cannot be read as Parquet.
    """
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"{path}: cannot be read as Parquet ({err})") from err
    leave = DERIVED | set(drop)
    keep = [c for c in table.column_names if c not in leave and c != ROW_COLUMN]
    frame = pd.DataFrame({c: _text(table.column(c)) for c in keep}, index=range(table.num_rows))
    if "extra" in frame.columns:
        unpacked = _unpack(frame.pop("extra"), set(frame.columns))
        frame = pd.concat([frame, unpacked], axis=1)
    if not {"lon", "lat"} & set(frame.columns) and b"geo" in (table.schema.metadata or {}):
        frame["lon"], frame["lat"] = _lonlat(path)
    frame.insert(0, ROW_COLUMN, range(1, len(frame) + 1))
    return RawBatch(frame=frame, format=Format.CSV, encoding="parquet", path=path)


def _lonlat(path: Path) -> tuple[list[str | None], list[str | None]]:
    """``lon``/``lat`` (WGS84, as text) of a GeoParquet part's point geometry (parts of
    GeoParquet input to ``join`` carry no lon/lat columns)."""
    import geopandas as gpd
    import shapely

    geoms = gpd.read_parquet(path, columns=["geometry"]).geometry
    if geoms.crs is not None:
        geoms = geoms.to_crs("EPSG:4326")
    values = geoms.to_numpy()
    usable = ~(shapely.is_missing(values) | shapely.is_empty(values))
    lon = np.full(len(values), np.nan)
    lat = np.full(len(values), np.nan)
    lon[usable] = shapely.get_x(values[usable])
    lat[usable] = shapely.get_y(values[usable])
    return ([None if not np.isfinite(v) else repr(float(v)) for v in lon],
            [None if not np.isfinite(v) else repr(float(v)) for v in lat])


def _text(column: pa.ChunkedArray) -> list[str | None]:
    """Values as text: times ISO 8601 (with offset), numbers as Python prints them."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        values = column.to_pandas()
        return [None if pd.isna(v) else v.isoformat() for v in values]
    if pa.types.is_floating(kind):
        return [None if v is None or not np.isfinite(v) else repr(float(v))
                for v in column.to_pylist()]
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
    return [None if v is None else str(v) for v in column.to_pylist()]


def _unpack(extra: pd.Series, taken: set[str]) -> pd.DataFrame:
    """The JSON objects of ``extra`` as columns (keys that clash with a column stay out)."""
    records = [json.loads(v) if isinstance(v, str) and v else {} for v in extra]
    keys: dict[str, None] = {}
    for record in records:
        for key in record:
            if key not in taken:
                keys.setdefault(key, None)
    return pd.DataFrame(
        {k: [None if r.get(k) is None else str(r[k]) for r in records] for k in keys},
        index=extra.index,
    )


def prepare_part(
    path: str | Path,
    store: BatchSink,
    *,
    mapping: ColumnMapping | None = None,
    now: datetime | None = None,
) -> tuple[ValidatedBatch, dict[str, object]]:
    """Read, map and validate a Parquet part (:func:`geo.ingest.pipeline.prepare` for parts).

    Returns
    -------
    tuple
        The validated batch and the batch record fields.
    """
    path = Path(path)
    raw = read_part(path, drop=store.profile.layer_keys)
    mapped = apply_mapping(raw.frame, mapping or ColumnMapping(), fmt=raw.format)
    started = now or datetime.now(UTC)
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:10]
    batch_id = f"{started:%Y%m%dT%H%M%SZ}-{digest}"  # as geo.ingest.pipeline names batches
    batch = validate(mapped, profile=store.profile, batch_id=batch_id, source_file=path.name,
                     now=started)
    info: dict[str, object] = {"batch_id": batch_id, "source_file": str(path),
                               "format": "parquet", "encoding": raw.encoding}
    return batch, info
