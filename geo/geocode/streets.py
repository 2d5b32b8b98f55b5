"""Street segments with geometry, for the offline geocoder.

Two sources are supported:

* a centerline layer that already has geometry and address ranges per side (Census
  TIGER/Line address-range edges, or a city's own centerline with configurable field
  names): :func:`segments_from_centerline`;
* a centerline *without* geometry plus a table of intersection nodes (Philadelphia's
  passyunk data): :func:`position_segments` derives each segment's position.

How segments without geometry get their position is in :mod:`geo.geocode.positioning`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from hotspot311.errors import InputError, describe

SEGMENT_COLUMNS = [
    "seg_id", "street_code", "predir", "name", "suffix", "postdir",
    "l_from", "l_to", "r_from", "r_to", "position",
]


@dataclass(frozen=True)
class CenterlineFields:
    """Names of the fields of a centerline layer with geometry.

    The defaults are those of Census TIGER/Line address-range edges. ``name`` holds the
    whole street name when the layer has no split name parts (TIGER ``FULLNAME``); it is
    then parsed into predir, name, suffix and postdir.
    """

    l_from: str = "LFROMADD"
    l_to: str = "LTOADD"
    r_from: str = "RFROMADD"
    r_to: str = "RTOADD"
    name: str = "FULLNAME"
    predir: str | None = None
    suffix: str | None = None
    postdir: str | None = None
    seg_id: str | None = None
    street_code: str | None = None


def read_city_streets(streets_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read the centerline ranges, intersection nodes and street names of a city.

    Parameters
    ----------
    streets_dir
        Folder with ``centerline-address-ranges.csv``, ``intersections-2272.csv`` (or any
        ``intersections*.csv``) and ``street-names.csv`` in the passyunk layout.

    Returns
    -------
    ranges, nodes, names
        ``ranges`` has the columns of :data:`SEGMENT_COLUMNS` but ``position``; ``nodes``
        has ``node_id``, ``code_1``, ``code_2``, ``x``, ``y``; ``names`` has ``predir``,
        ``name``, ``suffix``, ``postdir``.

    Raises
    ------
    InputError
        If a file is missing or lacks a column.
    """
    folder = Path(streets_dir)
    inter = sorted(folder.glob("intersections*.csv"))
    wanted = [folder / "centerline-address-ranges.csv", folder / "street-names.csv"]
    problems = [f"streets_dir={describe(str(folder))} has no {p.name}" for p in wanted
                if not p.exists()]
    if not inter:
        problems.append(f"streets_dir={describe(str(folder))} has no intersections*.csv")
    if problems:
        raise InputError(problems)
    raw = pd.read_csv(wanted[0], dtype=str, keep_default_na=False)
    need = ["PRE_DIR", "ST_NAME", "ST_TYPE", "POST_DIR", "L_F_ADD", "L_T_ADD", "R_F_ADD",
            "R_T_ADD", "ST_CODE", "SEG_ID"]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise InputError(f"{wanted[0].name} lacks columns {missing}; it needs {need}")
    ranges = pd.DataFrame({
        "seg_id": pd.to_numeric(raw["SEG_ID"], errors="coerce").fillna(-1).astype(np.int64),
        "street_code": pd.to_numeric(raw["ST_CODE"], errors="coerce").fillna(-1)
        .astype(np.int64),
        "predir": raw["PRE_DIR"].str.strip().str.upper(),
        "name": raw["ST_NAME"].str.strip().str.upper(),
        "suffix": raw["ST_TYPE"].str.strip().str.upper(),
        "postdir": raw["POST_DIR"].str.strip().str.upper(),
    })
    for src, dst in [("L_F_ADD", "l_from"), ("L_T_ADD", "l_to"), ("R_F_ADD", "r_from"),
                     ("R_T_ADD", "r_to")]:
        ranges[dst] = pd.to_numeric(raw[src], errors="coerce").fillna(0).astype(np.int64)
    ni = pd.read_csv(inter[0])
    pts = shapely.from_wkt(ni["shape"].to_numpy())
    nodes = pd.DataFrame({
        "node_id": ni["node_id"].astype(np.int64),
        "code_1": ni["street_1_code"].astype(np.int64),
        "code_2": ni["street_2_code"].astype(np.int64),
        "x": shapely.get_x(pts),
        "y": shapely.get_y(pts),
    })
    nm = pd.read_csv(wanted[1], header=None, dtype=str, keep_default_na=False)
    names = pd.DataFrame({"predir": nm[1], "name": nm[2], "suffix": nm[3], "postdir": nm[4]})
    return ranges, nodes, names


def segments_from_centerline(gdf: gpd.GeoDataFrame, *,
                             fields: CenterlineFields | None = None) -> gpd.GeoDataFrame:
    """Read a centerline layer with geometry into the segment table.

    Parameters
    ----------
    gdf
        Lines with address ranges per side (TIGER/Line edges or a city's centerline).
    fields
        Field names; TIGER/Line names by default.

    Returns
    -------
    geopandas.GeoDataFrame
        :data:`SEGMENT_COLUMNS` and the lines (``position`` is ``"source"``).

    Raises
    ------
    InputError
        If fields are missing or the layer has no CRS.
    """
    from geo.geocode.address import _parse_street  # local: keeps the import graph one-way

    f = fields or CenterlineFields()
    wanted = [f.l_from, f.l_to, f.r_from, f.r_to, f.name]
    wanted += [c for c in (f.predir, f.suffix, f.postdir, f.seg_id, f.street_code) if c]
    missing = [c for c in wanted if c not in gdf.columns]
    problems = [f"centerline lacks field {c!r} (columns: {list(gdf.columns)[:12]})"
                for c in missing]
    if gdf.crs is None:
        problems.append("centerline has no CRS")
    if problems:
        raise InputError(problems)
    lines = gdf.explode(index_parts=False).reset_index(drop=True)
    lines = lines[lines.geom_type == "LineString"].reset_index(drop=True)
    out = pd.DataFrame(index=lines.index)
    if f.predir or f.suffix or f.postdir:
        out["predir"] = lines[f.predir].fillna("").astype(str).str.upper() if f.predir else ""
        out["name"] = lines[f.name].fillna("").astype(str).str.upper()
        out["suffix"] = lines[f.suffix].fillna("").astype(str).str.upper() if f.suffix else ""
        out["postdir"] = (lines[f.postdir].fillna("").astype(str).str.upper()
                          if f.postdir else "")
    else:
        parts = [_parse_street(str(v).upper().replace(".", "").split(), None)
                 for v in lines[f.name].fillna("")]
        out["predir"], out["name"], out["suffix"], out["postdir"] = (
            [p[i] for p in parts] for i in range(4))
    for src, dst in [(f.l_from, "l_from"), (f.l_to, "l_to"), (f.r_from, "r_from"),
                     (f.r_to, "r_to")]:
        out[dst] = pd.to_numeric(lines[src], errors="coerce").fillna(0).astype(np.int64)
    full = out["predir"] + "|" + out["name"] + "|" + out["suffix"] + "|" + out["postdir"]
    if f.street_code:
        out["street_code"] = pd.to_numeric(lines[f.street_code], errors="coerce").fillna(
            -1).astype(np.int64)
    else:
        out["street_code"] = pd.factorize(full)[0].astype(np.int64)
    out["seg_id"] = (lines[f.seg_id].to_numpy() if f.seg_id else np.arange(len(out)))
    out["position"] = "source"
    return gpd.GeoDataFrame(out[SEGMENT_COLUMNS], geometry=lines.geometry.to_numpy(),
                            crs=gdf.crs)


def nodes_from_segments(segments: gpd.GeoDataFrame, *, tolerance: float = 1.0) -> pd.DataFrame:
    """Intersection nodes where segment ends of two or more streets meet.

    Parameters
    ----------
    segments
        Output of :func:`segments_from_centerline`.
    tolerance
        Ends closer than this (CRS units) are one node.

    Returns
    -------
    pandas.DataFrame
        ``node_id``, ``code_1``, ``code_2``, ``x``, ``y``: one row per pair of streets.
    """
    geoms = segments.geometry.to_numpy()
    ok = ~shapely.is_missing(geoms)
    codes = segments["street_code"].to_numpy()[ok]
    ends = []
    for which in (0, -1):
        pts = shapely.get_point(geoms[ok], which)
        ends.append(pd.DataFrame({"x": shapely.get_x(pts), "y": shapely.get_y(pts),
                                  "code": codes}))
    e = pd.concat(ends, ignore_index=True)
    e["kx"] = np.round(e["x"] / tolerance).astype(np.int64)
    e["ky"] = np.round(e["y"] / tolerance).astype(np.int64)
    e = e.drop_duplicates(["kx", "ky", "code"])
    e["node_id"] = e.groupby(["kx", "ky"]).ngroup()
    m = e.merge(e[["node_id", "code"]], on="node_id", suffixes=("_1", "_2"))
    m = m[m["code_1"] < m["code_2"]]
    return m[["node_id", "code_1", "code_2", "x", "y"]].reset_index(drop=True)
