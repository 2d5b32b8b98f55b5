"""Data preparation for the map, server side and pure: grid counts, area statistics,
web-ready geometries.

Everything here shrinks data before it goes to the browser: requests become counts on
a grid whose cell grows until there are at most ``max_cells`` cells, boundary polygons
are simplified and their coordinates rounded, and hotspots carry only the fields their
popups show.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

#: Finest grid cell for aggregated requests, in degrees (~30 m).
GRID_DEG: Final = 0.0003
#: Most grid cells sent to the browser.
MAX_CELLS: Final = 12_000
#: Largest dense grid built in memory (cells); the finest grid is coarsened to fit it.
_DENSE_CELLS: Final = 4_000_000
#: Decimal places kept for WGS84 coordinates (~1 m).
DECIMALS: Final = 5

HOTSPOT_FIELDS: Final = ("rank", "place", "score", "count", "calls", "open", "overdue",
                         "oldest_open_days", "areas", "top_address")


def overdue_mask(requests: pd.DataFrame, now: datetime) -> pd.Series:
    """Open requests whose due time (``expected_datetime``) has passed at ``now``."""
    if "expected_datetime" not in requests.columns:
        return pd.Series(False, index=requests.index)
    due = requests["expected_datetime"]
    return (requests["status"] == "open") & due.notna() & (due < pd.Timestamp(now))


def grid_counts(requests: pd.DataFrame, *, grid_deg: float = GRID_DEG,
                max_cells: int = MAX_CELLS) -> pd.DataFrame:
    """Count requests on a lat/lon grid, coarsening the grid until it fits ``max_cells``.

    Parameters
    ----------
    requests
        Requests with ``lat`` and ``lon`` (rows without either are skipped).
    grid_deg
        Finest cell size in degrees.
    max_cells
        Largest number of non-empty cells returned.

    Returns
    -------
    pandas.DataFrame
        ``lat``, ``lon`` (cell centres, rounded), ``n`` (requests), most first; the
        cell size used is in ``.attrs["grid_deg"]``.

    Examples
    --------
    >>> cells = grid_counts(pd.DataFrame({"lat": [40.0, 40.00001], "lon": [-75.0, -75.0]}))
    >>> cells["n"].tolist(), cells.attrs["grid_deg"]
    ([2], 0.0003)
    """
    lat = requests["lat"].to_numpy(dtype=float)
    lon = requests["lon"].to_numpy(dtype=float)
    ok = np.isfinite(lat) & np.isfinite(lon)
    lat, lon = lat[ok], lon[ok]
    size = grid_deg
    if len(lat):
        # a dense grid of the finest size that fits; coarser grids add up 2x2 blocks
        while ((np.floor(lat.max() / size) - np.floor(lat.min() / size) + 1)
               * (np.floor(lon.max() / size) - np.floor(lon.min() / size) + 1)) > _DENSE_CELLS:
            size *= 2
    cells = pd.DataFrame({"row": np.floor(lat / size).astype(np.int64),
                          "col": np.floor(lon / size).astype(np.int64)})
    cells = cells.groupby(["row", "col"]).size().rename("n").reset_index()
    return coarsen_cells(cells, grid_deg=size, max_cells=max_cells)


def cells_median(cells: pd.DataFrame, *, grid_deg: float = GRID_DEG
                 ) -> tuple[float, float] | None:
    """Median latitude and longitude of the requests counted in grid cells (to the cell:
    each request at its cell's centre); ``None`` when there are none.

    Examples
    --------
    >>> cells = pd.DataFrame({"row": [0, 10], "col": [0, 10], "n": [3, 1]})
    >>> cells_median(cells, grid_deg=1.0)
    (0.5, 0.5)
    """
    n = cells["n"].to_numpy(dtype=np.int64) if len(cells) else np.empty(0, dtype=np.int64)
    if not n.sum():
        return None

    def median(index: np.ndarray) -> float:
        order = np.argsort(index, kind="stable")
        cum = np.cumsum(n[order])
        at = int(np.searchsorted(cum, (cum[-1] + 1) / 2))
        return round((float(index[order][at]) + 0.5) * grid_deg, DECIMALS)

    return (median(cells["row"].to_numpy(dtype=np.int64)),
            median(cells["col"].to_numpy(dtype=np.int64)))


def coarsen_cells(cells: pd.DataFrame, *, grid_deg: float = GRID_DEG,
                  max_cells: int = MAX_CELLS) -> pd.DataFrame:
    """Counts on a grid (as a store counts them) coarsened until at most ``max_cells``.

    Parameters
    ----------
    cells
        ``row`` = floor(lat / grid_deg), ``col`` = floor(lon / grid_deg), ``n`` requests
        (:meth:`geo.store.base.Store.grid_cells`).
    grid_deg
        The cell size of ``cells``.
    max_cells
        Largest number of non-empty cells returned.

    Returns
    -------
    pandas.DataFrame
        As :func:`grid_counts`: ``lat``, ``lon`` (cell centres), ``n``, most first;
        ``.attrs["grid_deg"]`` the cell size used.

    Examples
    --------
    >>> cells = pd.DataFrame({"row": [0, 1], "col": [0, 1], "n": [2, 3]})
    >>> out = coarsen_cells(cells, grid_deg=1.0, max_cells=1)
    >>> out["n"].tolist(), out.attrs["grid_deg"]
    ([5], 2.0)
    """
    size = grid_deg
    row = cells["row"].to_numpy(dtype=np.int64)
    col = cells["col"].to_numpy(dtype=np.int64)
    counts = cells["n"].to_numpy(dtype=np.int64)
    if len(row):
        # Each step merges 2x2 blocks aligned on even absolute indices (floor division by
        # 2, an arithmetic shift), on the non-empty cells only: tens of thousands of them,
        # where a dense grid of the city's box had millions.
        while True:
            r0, c0 = int(row.min()), int(col.min())
            width = int(col.max()) - c0 + 1
            keys, first, inverse = np.unique((row - r0) * width + (col - c0),
                                             return_index=True, return_inverse=True)
            if len(keys) <= max_cells:
                break
            row, col, size = row >> 1, col >> 1, size * 2
        counts = np.bincount(inverse, weights=counts, minlength=len(keys)).astype(np.int64)
        row, col = row[first], col[first]  # keys in (row, col) order, as np.nonzero gave
    out = pd.DataFrame({
        "lat": ((row + 0.5) * size).round(DECIMALS),
        "lon": ((col + 0.5) * size).round(DECIMALS),
        "n": counts,
    })
    out = out.sort_values("n", ascending=False, kind="stable").reset_index(drop=True)
    out.attrs["grid_deg"] = size
    return out


def json_rows(columns: Sequence[np.ndarray], decimals: Sequence[int]) -> str:
    """Finite numbers as a JSON array of rows (``[[a,b],[c,d]]``), each column rounded to
    its ``decimals``, written by Arrow (no Python object per number).

    Python's ``json`` took about 90 ms for a heat map's 20,000 cells, twice a rerun.

    Parameters
    ----------
    columns : sequence of numpy.ndarray
        Equal-length float columns, every value finite.
    decimals : sequence of int
        Decimals kept per column.

    Returns
    -------
    str
        JSON text; ``[]`` for no rows.

    Raises
    ------
    ValueError
        When a value is not finite (JSON has no NaN or infinity).

    Examples
    --------
    >>> json_rows([np.array([39.9512345, 40.0]), np.array([0.25, 1.0])], [5, 3])
    '[[39.95123,0.25],[40,1]]'
    """
    arrays = [np.round(np.asarray(c, dtype="float64"), d)
              for c, d in zip(columns, decimals, strict=True)]
    if not arrays or len(arrays[0]) == 0:
        return "[]"
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError("json_rows: a value is not finite (JSON has no NaN or infinity)")
    texts = [pc.cast(pa.array(a + 0.0), pa.string()) for a in arrays]  # + 0.0: no -0
    rows = pc.binary_join_element_wise(*texts, ",")
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(rows)], pa.int32()),
                                                     rows), "],[")
    return f"[[{joined[0].as_py()}]]"


def heat_weights(counts: pd.Series, *, quantile: float = 0.995) -> np.ndarray:
    """Counts scaled to 0–1 for Leaflet.heat (``max`` 1): divided by a high quantile, capped.

    Examples
    --------
    >>> heat_weights(pd.Series([1, 2, 100]), quantile=0.5).tolist()
    [0.5, 1.0, 1.0]
    """
    if counts.empty:
        return np.empty(0)
    top = max(float(counts.quantile(quantile)), 1.0)
    return np.minimum(counts.to_numpy(dtype=float) / top, 1.0).round(3)


def area_stats(requests: pd.DataFrame, layer_key: str, *, now: datetime) -> pd.DataFrame:
    """Requests, open, overdue and overdue share (of open requests) per area code.

    Parameters
    ----------
    requests
        Requests with a ``layer_key`` column of area codes.
    layer_key
        The boundary layer.
    now
        Reference time for overdue.

    Returns
    -------
    pandas.DataFrame
        Indexed by code: ``requests``, ``open``, ``overdue``, ``overdue_share`` (0–1;
        0 when nothing is open).
    """
    codes, uniques = pd.factorize(requests[layer_key], use_na_sentinel=True)
    found = codes >= 0
    size = len(uniques)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(codes[found & mask], minlength=size)

    out = pd.DataFrame({
        "requests": count(np.ones(len(codes), dtype=bool)),
        "open": count((requests["status"] == "open").to_numpy(dtype=bool)),
        "overdue": count(overdue_mask(requests, now).to_numpy(dtype=bool)),
    }, index=pd.Index(np.asarray(uniques, dtype=object), name="code"))
    out["overdue_share"] = (out["overdue"] / out["open"].where(out["open"] > 0)).fillna(0.0)
    return out


def round_coordinates(geoms: np.ndarray | gpd.GeoSeries, decimals: int = DECIMALS) -> np.ndarray:
    """Geometries with every coordinate rounded (smaller GeoJSON)."""
    return shapely.transform(np.asarray(geoms), lambda xy: np.round(xy, decimals))


def web_areas(areas: gpd.GeoDataFrame, stats: pd.DataFrame | None = None, *,
              simplify: float = 30.0) -> gpd.GeoDataFrame:
    """Boundary polygons for the browser: simplified, in WGS84, coordinates rounded.

    Parameters
    ----------
    areas
        ``code``, ``name``, geometry in a projected CRS.
    stats
        From :func:`area_stats`; joined on ``code`` (areas without requests get 0).
    simplify
        Simplification tolerance in the areas' CRS units.

    Returns
    -------
    geopandas.GeoDataFrame
        ``code``, ``name`` and the ``stats`` columns, EPSG:4326.
    """
    out = gpd.GeoDataFrame(areas[["code", "name"]].astype(str),
                           geometry=areas.geometry.simplify(simplify).to_numpy(), crs=areas.crs)
    out = out.to_crs("EPSG:4326")
    out.geometry = round_coordinates(out.geometry.to_numpy())
    if stats is not None:
        for col in stats.columns:
            out[col] = out["code"].map(stats[col]).fillna(0)
        for col in ("requests", "open", "overdue"):
            if col in out:
                out[col] = out[col].astype(int)
    return out


def web_hotspots(hotspots: gpd.GeoDataFrame, *, layer_keys: Sequence[str] = (),
                 limit: int = 500) -> gpd.GeoDataFrame:
    """Ranked hotspots for the browser: popup fields only, WGS84, rounded, top ``limit``.

    Parameters
    ----------
    hotspots
        Ranked hotspots (``HotspotResult.hotspots``) in the city CRS.
    layer_keys
        Layers whose area codes are listed in the ``areas`` field.
    limit
        Most hotspots kept (by rank).

    Returns
    -------
    geopandas.GeoDataFrame
        ``hotspot_id`` and :data:`HOTSPOT_FIELDS`; ``oldest_open`` as text; ``calls`` is
        ``count`` in a ticket run.
    """
    top = hotspots.sort_values("rank").head(limit)
    keys = [k for k in layer_keys if k in top.columns]
    areas = top[keys].astype(str).apply(
        lambda row: ", ".join(f"{k} {v}" for k, v in row.items() if v not in ("None", "nan")),
        axis=1) if keys and len(top) else pd.Series("", index=top.index)
    frame = pd.DataFrame({
        "hotspot_id": top["hotspot_id"].astype(str),
        "rank": top["rank"].astype(int),
        "place": (top["place"] if "place" in top.columns else pd.Series("", index=top.index))
        .fillna("").astype(str),
        "score": top["score"].astype(float).round(1),
        "count": top["count"].astype(int),
        "calls": (top["calls"] if "calls" in top.columns else top["count"]).astype(int),
        "open": top["open"].astype(int),
        "overdue": top["overdue"].astype(int),
        "oldest_open_days": top["oldest_open_days"].astype(float).round(0).fillna(-1).astype(int)
        .astype(str).replace("-1", "none open"),
        "areas": areas.astype(str),
        "top_address": top["top_address"].fillna("").astype(str),
    })
    out = gpd.GeoDataFrame(frame, geometry=top.geometry.to_numpy(), crs=hotspots.crs)
    if len(out):
        out = out.to_crs("EPSG:4326")
        out.geometry = round_coordinates(out.geometry.to_numpy())
    return out


def feature_collection(frame: gpd.GeoDataFrame) -> dict:
    """A GeoJSON FeatureCollection of ``frame`` (properties: its other columns).

    The same document as ``frame.__geo_interface__`` without ids, made with one
    vectorized geometry conversion instead of a Python loop over the features (the map
    is rebuilt on every rerun, and the page reruns on every pan).

    Examples
    --------
    >>> frame = gpd.GeoDataFrame({"n": [1]}, geometry=[shapely.Point(1.5, 2.0)])
    >>> feature = feature_collection(frame)["features"][0]
    >>> feature["properties"], feature["geometry"]
    ({'n': 1}, {'type': 'Point', 'coordinates': [1.5, 2.0]})
    """
    geoms = shapely.to_geojson(np.asarray(frame.geometry.to_numpy()))
    rows = pd.DataFrame(frame.drop(columns=frame.geometry.name)).to_dict("records")
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": props, "geometry": json.loads(geom)}
        for props, geom in zip(rows, geoms, strict=True)]}
