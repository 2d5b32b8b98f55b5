"""Places named the way crews say them: the nearest street corner and the area around it.

A hotspot's centre becomes, for example, "N 5th St & W Lehigh Ave — Fairhill": the
intersection node nearest to it (from the city's street data, the same nodes the offline
geocoder matches intersections with: :func:`geo.geocode.streets.read_city_streets`) and
the name of the area of the profile's ``place_layer`` holding it (Philadelphia: the
neighborhood). Which street data and which layer are the profile's: nothing here knows a
city. A centre farther than ``max_corner_m`` from every corner gets the area name alone;
a centre outside every area, the corner alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.geocode.city import streets_dir
from geo.geocode.streets import read_city_streets
from hotspot311.errors import InputError, describe
from layers.profile import CityProfile

#: Directionals written in capitals in a street label.
_DIRECTIONS: Final = frozenset({"N", "S", "E", "W", "NE", "NW", "SE", "SW"})
#: Separator between the corner and the area.
DASH: Final = " — "


def street_label(parts: Sequence[str]) -> str:
    """A street's name as signs write it, from its parts (directional, name, suffix…).

    Examples
    --------
    >>> street_label(["N", "5TH", "ST", ""])
    'N 5th St'
    >>> street_label(["", "MARTIN LUTHER KING JR", "BLVD", ""])
    'Martin Luther King Jr Blvd'
    """
    words = " ".join(str(p).strip() for p in parts if str(p).strip()).split()
    return " ".join(w if w in _DIRECTIONS else w.capitalize() for w in words)


def street_corners(profile: CityProfile) -> pd.DataFrame:
    """The intersection nodes of the profile's street data, each with its two streets.

    Returns
    -------
    pandas.DataFrame
        ``x``, ``y`` (the profile's CRS) and ``label`` ("W Lehigh Ave & N 5th St"); nodes
        where a street meets itself (also N and S of one street) or an unnamed code are
        left out. Empty when the profile has no street data.
    """
    folder = streets_dir(profile)
    if not (folder / "centerline-address-ranges.csv").is_file():
        return pd.DataFrame({"x": [], "y": [], "label": []})
    ranges, nodes, _names = read_city_streets(folder)
    first = ranges.groupby("street_code", sort=True)[["predir", "name", "suffix",
                                                      "postdir"]].first()
    label = {int(code): street_label(list(parts))
             for code, parts in zip(first.index, first.itertuples(index=False), strict=True)}
    # N Juniper St meeting S Juniper St is no corner: compare names without directionals
    base = {int(code): f"{name} {suffix}".strip() for code, name, suffix in
            zip(first.index, first["name"], first["suffix"], strict=True)}
    a = nodes["code_1"].map(label)
    b = nodes["code_2"].map(label)
    keep = (a.notna() & b.notna() & (a != "") & (b != "")
            & (nodes["code_1"].map(base) != nodes["code_2"].map(base)))
    out = pd.DataFrame({"x": nodes["x"][keep].to_numpy(float),
                        "y": nodes["y"][keep].to_numpy(float),
                        "label": (a[keep] + " & " + b[keep]).to_numpy(object)})
    return out.reset_index(drop=True)


class PlaceNamer:
    """Names points of the city CRS by their nearest corner and the area holding them.

    Parameters
    ----------
    corners
        From :func:`street_corners` (may be empty).
    areas
        ``name`` and polygon geometry in the same CRS (the place layer's areas), or
        ``None``.
    max_corner
        Farthest a named corner may be, in CRS units.
    """

    def __init__(self, corners: pd.DataFrame, areas: gpd.GeoDataFrame | None, *,
                 max_corner: float) -> None:
        if not max_corner > 0:
            raise InputError(f"max_corner: got {describe(max_corner)}; allowed: a distance > 0")
        self._labels = corners["label"].to_numpy(object)
        xy = corners[["x", "y"]].to_numpy(float)
        self._tree = shapely.STRtree(np.asarray(shapely.points(xy))) if len(corners) else None
        self._max = float(max_corner)
        self._areas = areas
        self._area_tree = shapely.STRtree(areas.geometry.to_numpy()) \
            if areas is not None and len(areas) else None

    def names(self, x: np.ndarray, y: np.ndarray) -> list[str]:
        """The place name of each point ("corner — area"; "" when there is neither)."""
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        corner = np.full(len(x), "", dtype=object)
        ok = np.isfinite(x) & np.isfinite(y)
        if self._tree is not None and ok.any():
            # every corner at the least distance, closer than the farthest allowed; then
            # the first of them in the corners' order: the same corner whatever the tree
            (point, at), dist = self._tree.query_nearest(
                shapely.points(x[ok], y[ok]), max_distance=self._max, return_distance=True,
                all_matches=True)
            near = dist < self._max
            order = np.lexsort((at[near], point[near]))
            point, at = point[near][order], at[near][order]
            lead = np.r_[True, point[1:] != point[:-1]]
            corner[np.flatnonzero(ok)[point[lead]]] = self._labels[at[lead]]
        area = np.full(len(x), "", dtype=object)
        if self._area_tree is not None and self._areas is not None and ok.any():
            points = shapely.points(x[ok], y[ok])
            hit_point, hit_area = self._area_tree.query(points, predicate="intersects")
            names = self._areas["name"].astype(str).to_numpy(object)
            # a point on a shared edge takes the first area in layer order
            first: dict[int, int] = {}
            for p, a in zip(hit_point.tolist(), hit_area.tolist(), strict=True):
                first[p] = min(first.get(p, a), a)
            rows = np.flatnonzero(ok)
            for p, a in first.items():
                area[rows[p]] = names[a]
        return [DASH.join(part for part in (c, a) if part) for c, a in
                zip(corner.tolist(), area.tolist(), strict=True)]


__all__ = ["DASH", "PlaceNamer", "street_corners", "street_label"]
