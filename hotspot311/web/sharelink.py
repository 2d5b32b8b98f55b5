"""The view in the page's address: preset, filters, map centre and zoom, picked hotspot.

The page writes its view into the URL's query parameters on every run
(:func:`to_params`), so the address bar is always a link to what is on screen; a page
opened with such parameters starts from them (:func:`from_params`). Values the page
does not offer are dropped, never trusted: a link cannot select a service type, an area
or a setting that is not there. Pure functions; the page does the Streamlit part.

Parameters: ``preset``, ``service`` and ``dept`` (repeated), ``from``/``to``
(YYYY-MM-DD), ``status``, ``sla`` (repeated), ``area_layer``, ``area`` (repeated),
``layer``, ``lat``/``lon``/``zoom`` (the map), ``hotspot`` (its id), ``window``,
``eps``, ``min_samples``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any, Final

#: Keys of the page's session state that the link carries (widget key → parameter).
LISTS: Final = {"services": "service", "agencies": "dept", "sla_states": "sla",
                "area_codes": "area"}
SINGLES: Final = {"preset": "preset", "status": "status", "area_layer": "area_layer",
                  "layer": "layer"}
NUMBERS: Final = {"window": ("window", 7, 365), "eps": ("eps", 25, 500),
                  "min_samples": ("min_samples", 2, 50)}


def to_params(state: Mapping[str, Any], *, dates: tuple[date, date] | None,
              full_span: tuple[date, date], view: tuple[float, float, float] | None,
              hotspot: str | None) -> dict[str, str | list[str]]:
    """Query parameters for the page's state (defaults left out, so links stay short).

    Parameters
    ----------
    state
        The page's widget values by key (see :data:`LISTS`, :data:`SINGLES`,
        :data:`NUMBERS`).
    dates
        The chosen date range; left out when it is ``full_span``.
    full_span
        The data's first and last day.
    view
        ``(lat, lon, zoom)`` of the map, or ``None``.
    hotspot
        The picked hotspot's id, or ``None``.

    Examples
    --------
    >>> out = to_params({"status": "open", "services": ["Graffiti Removal"]}, dates=None,
    ...                 full_span=(date(2024, 1, 1), date(2024, 2, 1)),
    ...                 view=(39.95, -75.16, 16), hotspot=None)
    >>> out["service"], out["status"], out["zoom"]
    (['Graffiti Removal'], 'open', '16')
    """
    out: dict[str, str | list[str]] = {}
    for key, name in LISTS.items():
        values = [str(v) for v in state.get(key) or []]
        if values:
            out[name] = values
    for key, name in SINGLES.items():
        value = state.get(key)
        if value not in (None, "", "all", "(none)", "custom"):
            out[name] = str(value)
    for key, (name, _lo, _hi) in NUMBERS.items():
        if state.get(key) is not None:
            out[name] = str(state[key])
    if dates is not None and tuple(dates) != tuple(full_span):
        out["from"], out["to"] = dates[0].isoformat(), dates[1].isoformat()
    if view is not None:
        lat, lon, zoom = view
        out.update(lat=f"{lat:.5f}", lon=f"{lon:.5f}", zoom=str(round(zoom)))
    if hotspot:
        out["hotspot"] = str(hotspot)
    return out


def from_params(params: Mapping[str, Sequence[str]], *, offered: Callable[[str], Sequence[Any]],
                full_span: tuple[date, date]) -> dict[str, Any]:
    """The widget values a link asks for, keeping only values the page offers.

    Parameters
    ----------
    params
        Parameter → every value given (``st.query_params.to_dict`` gives the last only;
        use ``get_all``).
    offered
        Widget key → the values that widget offers (``area_codes`` after ``area_layer``).
    full_span
        The data's first and last day (dates are clipped to it).

    Returns
    -------
    dict
        Widget key → value, plus ``dates`` (a pair), ``view`` (``(lat, lon, zoom)``) and
        ``hotspot`` when the link gives them.

    Examples
    --------
    >>> from_params({"status": ["open"], "service": ["Graffiti Removal", "<script>"],
    ...              "zoom": ["17"], "lat": ["39.95"], "lon": ["-75.16"]},
    ...             offered=lambda key: {"status": ["all", "open", "closed"],
    ...                                  "services": ["Graffiti Removal"]}.get(key, []),
    ...             full_span=(date(2024, 1, 1), date(2024, 2, 1)))
    {'status': 'open', 'services': ['Graffiti Removal'], 'view': (39.95, -75.16, 17.0)}
    """
    out: dict[str, Any] = {}
    for key, name in SINGLES.items():
        values = params.get(name) or []
        if values and values[-1] in offered(key):
            out[key] = values[-1]
    for key, name in LISTS.items():
        allowed = set(offered(key)) if key != "area_codes" else None
        values = list(params.get(name) or [])
        if key == "area_codes":
            layer_codes = set(offered("area_codes"))
            values = [v for v in values if v in layer_codes]
        elif allowed is not None:
            values = [v for v in values if v in allowed]
        if values:
            out[key] = list(dict.fromkeys(values))
    for key, (name, lo, hi) in NUMBERS.items():
        number = _number(params.get(name))
        if number is not None and lo <= number <= hi:
            out[key] = int(number)
    first, last = _day(params.get("from")), _day(params.get("to"))
    if first is not None and last is not None and first <= last:
        out["dates"] = (max(first, full_span[0]), min(last, full_span[1]))
    lat, lon, zoom = (_number(params.get(n)) for n in ("lat", "lon", "zoom"))
    if lat is not None and lon is not None and zoom is not None and -90 <= lat <= 90 \
            and -180 <= lon <= 180 and 0 <= zoom <= 20:
        out["view"] = (lat, lon, zoom)
    hotspot = params.get("hotspot") or []
    if hotspot and hotspot[-1].isalnum() and len(hotspot[-1]) <= 64:
        out["hotspot"] = hotspot[-1]
    return out


def view_box(lat: float, lon: float, zoom: float, *, width_px: int = 900,
             height_px: int = 620) -> tuple[float, float, float, float]:
    """The ``(south, west, north, east)`` a Leaflet map of that size shows around
    ``(lat, lon)`` at ``zoom`` (Web Mercator, 256-pixel tiles).

    Examples
    --------
    >>> s, w, n, e = view_box(0.0, 0.0, 1)
    >>> round(e - w, 1)
    632.8
    """
    degrees_per_px = 360.0 / (256 * 2 ** zoom)
    half_w = width_px / 2 * degrees_per_px
    half_h = height_px / 2 * degrees_per_px * math.cos(math.radians(lat))
    return (max(lat - half_h, -90.0), lon - half_w, min(lat + half_h, 90.0), lon + half_w)


def _number(values: Sequence[str] | None) -> float | None:
    if not values:
        return None
    try:
        number = float(values[-1])
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _day(values: Sequence[str] | None) -> date | None:
    if not values:
        return None
    try:
        return date.fromisoformat(values[-1])
    except ValueError:
        return None
