"""Request files as a partitioned dask-geopandas frame, joined to every layer per partition.

For histories too big for one process: a directory or glob of request files (CSV,
Parquet or GeoParquet) is read as a ``dask_geopandas.GeoDataFrame`` with the points in
the city CRS (``x``, ``y`` and a point geometry), joined partition by partition with the
same :func:`geo.joins.locate` as the single-machine join (so every code is the same), and
written as GeoParquet partitioned by year and month of ``requested_datetime``
(``year=YYYY/month=M/part.N.parquet``).

The files must already be in the canonical schema (as ``hotspot311 export requests``
writes it): CSV and Parquet with ``lon``/``lat`` in WGS84, GeoParquet with a point
geometry in any CRS. Mapping and validation of raw city files stay in
:mod:`geo.ingest`; the embedded store keeps its single GeoParquet snapshot (it is not
replaced by this partitioned output).

The layer indexes go into the task graph once, as one key that every partition's task
depends on: each worker fetches them once and keeps them while the graph runs, and a lost
worker gets them again from the graph.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from geo.joins import AreaIndex, locate
from hotspot311.errors import InputError
from layers import geometry

if TYPE_CHECKING:
    import dask_geopandas

__all__ = ["join_partitioned", "read_partitioned", "source_files", "write_by_month"]

SUFFIXES: Final = {".csv": "csv", ".parquet": "parquet", ".geoparquet": "parquet"}
#: Bytes of CSV per partition.
CSV_BLOCKSIZE: Final = "64MB"


def source_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """Expand a directory, a glob or a list into request files of one kind.

    Parameters
    ----------
    source
        A directory (its ``*.csv``, ``*.parquet`` and ``*.geoparquet`` files), a glob such
        as ``"cases/*.csv"``, a file, or a list of these.

    Returns
    -------
    list of pathlib.Path
        The files, sorted.

    Raises
    ------
    InputError
        If nothing matches, or the files mix CSV with Parquet, or a suffix is not one of
        ``.csv``, ``.parquet``, ``.geoparquet``.
    """
    items = [source] if isinstance(source, str | Path) else list(source)
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found.extend(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
        elif any(ch in str(item) for ch in "*?["):
            found.extend(Path(p) for p in glob.glob(str(item)))
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"source: {str(item)!r} is not a file, a directory or a glob")
    if not found:
        raise InputError(f"source: no .csv, .parquet or .geoparquet files in {items!r}")
    bad = sorted({p.suffix for p in found if p.suffix.lower() not in SUFFIXES})
    if bad:
        raise InputError(f"source: suffixes {bad} are not allowed; allowed: {sorted(SUFFIXES)}")
    kinds = {SUFFIXES[p.suffix.lower()] for p in found}
    if len(kinds) > 1:
        raise InputError(f"source: mixes CSV and Parquet files ({len(found)} files); "
                         "give one kind at a time")
    return sorted(set(found))


def read_partitioned(
    source: str | Path | Sequence[str | Path],
    *,
    crs: Any,
    blocksize: str | int = CSV_BLOCKSIZE,
) -> dask_geopandas.GeoDataFrame:
    """Read request files as a dask-geopandas frame with points in the city CRS.

    Parameters
    ----------
    source
        See :func:`source_files`.
    crs
        The city's projected CRS (``profile.crs``); ``x``, ``y`` and ``geometry`` are in it.
    blocksize
        Bytes of CSV per partition (Parquet keeps one partition per file or row group).

    Returns
    -------
    dask_geopandas.GeoDataFrame
        The files' columns (CSV as text) plus ``x``, ``y`` and a point ``geometry``; rows
        without usable coordinates get NaN and an empty geometry (no area).

    Raises
    ------
    InputError
        As for :func:`source_files`; when CSV or Parquet files lack ``lon``/``lat``.
    """
    import dask.dataframe as dd
    import dask_geopandas

    files = source_files(source)
    kind = SUFFIXES[files[0].suffix.lower()]
    if kind == "csv":
        frame = dd.read_csv([str(p) for p in files], dtype=str, blocksize=blocksize,
                            keep_default_na=False, na_values=[""])
    else:
        frame = _read_parquet(files)
    if isinstance(frame, dask_geopandas.GeoDataFrame):
        meta = _with_points(frame._meta, crs)
        return frame.map_partitions(_with_points, crs, meta=meta)
    missing = [c for c in ("lon", "lat") if c not in frame.columns]
    if missing:
        raise InputError(f"source: columns {missing} are missing in {files[0]}; CSV and "
                         "Parquet files need lon and lat (WGS84), GeoParquet a geometry")
    meta = _with_points(frame._meta, crs)
    out = frame.map_partitions(_with_points, crs, meta=meta)
    return dask_geopandas.from_dask_dataframe(out, geometry="geometry")


def _read_parquet(files: list[Path]) -> Any:
    """GeoParquet (geo metadata present) as dask-geopandas, else plain dask."""
    import dask.dataframe as dd
    import dask_geopandas
    import pyarrow.parquet as pq

    if b"geo" in (pq.read_schema(files[0]).metadata or {}):
        return dask_geopandas.read_parquet([str(p) for p in files])
    return dd.read_parquet([str(p) for p in files])


def _with_points(part: pd.DataFrame, crs: Any) -> gpd.GeoDataFrame:
    """Add ``x``, ``y`` and a point geometry in ``crs`` to one partition."""
    if isinstance(part, gpd.GeoDataFrame) and part.geometry.name in part:
        geoms = part.geometry
        if geoms.crs is not None and pyproj.CRS(geoms.crs) != pyproj.CRS(crs):
            geoms = geoms.to_crs(crs)
        values = geoms.to_numpy()
        empty = shapely.is_missing(values) | shapely.is_empty(values)
        x = np.full(len(part), np.nan)
        y = np.full(len(part), np.nan)
        x[~empty] = shapely.get_x(values[~empty])
        y[~empty] = shapely.get_y(values[~empty])
        out = pd.DataFrame(part.drop(columns=part.geometry.name))
    else:
        lon = pd.to_numeric(part["lon"], errors="coerce").to_numpy(dtype="float64")
        lat = pd.to_numeric(part["lat"], errors="coerce").to_numpy(dtype="float64")
        to_city = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        x, y = to_city.transform(lon, lat)
        x = np.where(np.isfinite(x), x, np.nan)
        y = np.where(np.isfinite(y), y, np.nan)
        out = pd.DataFrame(part)
    out = out.assign(x=x, y=y)
    points = geometry.points(x, y)
    points[~(np.isfinite(x) & np.isfinite(y))] = None
    return gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(points, index=out.index, crs=crs))


def join_partitioned(
    frame: dask_geopandas.GeoDataFrame, indexes: Mapping[str, AreaIndex]
) -> dask_geopandas.GeoDataFrame:
    """Add one code column per layer, partition by partition.

    Parameters
    ----------
    frame
        From :func:`read_partitioned` (``x``/``y`` in the layers' CRS).
    indexes
        Layer key → :class:`geo.joins.AreaIndex` (shipped once as one graph key).

    Returns
    -------
    dask_geopandas.GeoDataFrame
        ``frame`` with a column per key: the code :func:`geo.joins.locate` gives, or None.
    """
    import dask

    shipped = dask.delayed(dict(indexes), pure=True)
    meta = frame._meta.assign(**{k: pd.Series([], dtype=object) for k in indexes})
    return frame.map_partitions(_join_partition, shipped, list(indexes), meta=meta)


def _join_partition(part: gpd.GeoDataFrame, indexes: dict[str, AreaIndex],
                    keys: list[str]) -> gpd.GeoDataFrame:
    x = part["x"].to_numpy(dtype="float64")
    y = part["y"].to_numpy(dtype="float64")
    return part.assign(**{k: locate(x, y, indexes[k]) for k in keys})


def write_by_month(
    frame: dask_geopandas.GeoDataFrame,
    directory: str | Path,
    *,
    count: Sequence[str] = (),
    client: Any = None,
    watch: Callable[[list[Any]], None] | None = None,
) -> tuple[Path, int, dict[str, int]]:
    """Write GeoParquet partitioned by year and month of ``requested_datetime``.

    Parameters
    ----------
    frame
        Requests with ``requested_datetime`` (text or times; unparseable ones go under
        ``year=0/month=0``).
    directory
        Output directory; must not exist yet (nothing is overwritten).
    count
        Columns whose non-null values to count in the same pass (layer keys).
    client
        A ``distributed.Client`` to run on (default: Dask's current scheduler).
    watch
        With ``client``: called with the futures of the write before they are gathered;
        returns when they are done (a progress bar).

    Returns
    -------
    tuple
        The directory (holding ``year=YYYY/month=M/part.N.parquet``), the rows written
        and the non-null count of each ``count`` column.

    Raises
    ------
    InputError
        If the directory exists or ``requested_datetime`` is missing.
    """
    out = Path(directory)
    if out.exists():
        raise InputError(f"output: {out} exists; give a new directory")
    if "requested_datetime" not in frame.columns:
        raise InputError("requested_datetime: column missing; needed for year/month partitions")
    import dask

    dated = frame.map_partitions(_year_month, meta=_year_month(frame._meta))
    write = dated.to_parquet(str(out), partition_on=["year", "month"], write_index=False,
                             compute=False)
    counts = [frame[c].count() for c in count]
    todo = [write, frame.shape[0], *counts]
    if client is None:
        _, rows, *found = dask.compute(*todo)
    else:
        futures = client.compute(todo)
        if watch is not None:
            watch(futures)
        _, rows, *found = client.gather(futures)
    return out, int(rows), {c: int(n) for c, n in zip(count, found, strict=True)}


def _year_month(part: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Add ``year`` and ``month``; text columns held as objects (layer codes) become strings."""
    when = pd.to_datetime(part["requested_datetime"], errors="coerce", utc=True, format="mixed")
    texts = {c: part[c].astype("string") for c in part.columns
             if part[c].dtype == object and c != part.geometry.name}
    return part.assign(**texts, year=when.dt.year.fillna(0).astype("int32"),
                       month=when.dt.month.fillna(0).astype("int32"))
