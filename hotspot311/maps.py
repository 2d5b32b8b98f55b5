"""Map builders: pure functions from frames to ``folium.Map`` (no Streamlit).

The map never carries one marker per request at city scale: above
:data:`POINT_LIMIT` points the requests are drawn as a heat map of their positions
rounded to a ~30 m grid with counts as weights, so the page stays small whatever the
volume.
"""

from __future__ import annotations

from typing import Final

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
from folium.plugins import HeatMap

POINT_LIMIT: Final = 2_000
_GRID_DEG: Final = 0.0003  # ~30 m


def request_map(
    requests: pd.DataFrame,
    *,
    areas: gpd.GeoDataFrame | None = None,
    layer_key: str | None = None,
    center: tuple[float, float] | None = None,
) -> folium.Map:
    """Draw requests (and optionally a choropleth of counts per area).

    Parameters
    ----------
    requests
        Requests with ``lat``, ``lon`` and, for popups, ``service_name``, ``address``.
    areas
        Areas of one layer (``code``, ``name``, polygons in any CRS).
    layer_key
        Column of ``requests`` holding each request's area code in ``areas``.
    center
        Map centre (lat, lon); the requests' median when omitted.

    Returns
    -------
    folium.Map
        Points as circles when few, else an aggregated heat map.
    """
    if center is None:
        center = (
            (float(requests["lat"].median()), float(requests["lon"].median()))
            if len(requests) else (0.0, 0.0)
        )
    fmap = folium.Map(location=center, zoom_start=11, tiles="cartodbpositron", prefer_canvas=True)
    if areas is not None and layer_key is not None:
        counts = requests[layer_key].value_counts()
        shaped = areas.to_crs("EPSG:4326").copy()
        shaped["requests"] = shaped["code"].map(counts).fillna(0).astype(int)
        folium.Choropleth(
            geo_data=shaped[["code", "name", "requests", "geometry"]].to_json(),
            data=shaped, columns=["code", "requests"], key_on="feature.properties.code",
            fill_color="YlOrRd", fill_opacity=0.5, line_opacity=0.6,
            legend_name=f"Requests per {layer_key}",
        ).add_to(fmap)
        folium.GeoJson(
            shaped[["code", "name", "requests", "geometry"]].to_json(),
            style_function=lambda _: {"fillOpacity": 0, "weight": 0},
            tooltip=folium.GeoJsonTooltip(fields=["name", "requests"],
                                          aliases=["Area", "Requests"]),
        ).add_to(fmap)
    if len(requests) <= POINT_LIMIT:
        group = folium.FeatureGroup(name="Requests")
        for row in requests.itertuples(index=False):
            folium.CircleMarker(
                location=(row.lat, row.lon), radius=3, weight=1, fill=True,
                popup=folium.Popup(f"{row.service_name}<br>{row.address or ''}", max_width=250),
            ).add_to(group)
        group.add_to(fmap)
    else:
        HeatMap(aggregate_points(requests), radius=12, blur=10, name="Requests").add_to(fmap)
    return fmap


def aggregate_points(requests: pd.DataFrame, *, grid_deg: float = _GRID_DEG) -> list[list[float]]:
    """Snap points to a grid and count them: ``[[lat, lon, count], …]``.

    Examples
    --------
    >>> aggregate_points(pd.DataFrame({"lat": [40.0, 40.00001], "lon": [-75.0, -75.0]}))
    [[39.9999, -75.0, 2.0]]
    """
    lat = np.round(requests["lat"].to_numpy(dtype=float) / grid_deg) * grid_deg
    lon = np.round(requests["lon"].to_numpy(dtype=float) / grid_deg) * grid_deg
    grid = pd.DataFrame({"lat": lat.round(6), "lon": lon.round(6)})
    counts = grid.value_counts().reset_index(name="n")
    return counts[["lat", "lon", "n"]].astype(float).to_numpy().tolist()
