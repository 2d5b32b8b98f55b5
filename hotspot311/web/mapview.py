"""What the map shows where: the view the browser reports, and which requests to draw.

The map reports its view back to the page (``st_folium(..., returned_objects=["zoom",
"bounds", "center"])``). :func:`parse_view` turns that dictionary into a :class:`MapView`;
:func:`choose_points` decides, from the view and the hotspot in focus, whether requests
are drawn one by one (with popups) or left to the aggregate layer. Pure functions, no
Streamlit.

The rule, in order:

1. a hotspot is in focus and the map is not zoomed in: the requests in the hotspot's box;
2. at most ``limit`` requests in all: every one of them;
3. the map is zoomed in to ``min_zoom`` (:data:`DETAIL_ZOOM`) or closer: the requests
   inside the reported bounds;
4. otherwise nothing one by one (the aggregate).

In cases 1 and 3 the box's requests are drawn only when there are at most ``limit`` of
them; more, and the aggregate stays.

Boxes are plain latitude/longitude boxes ``(south, west, north, east)`` in degrees. Leaflet
reports longitudes of world copies unwrapped (a view of Philadelphia one world to the
west has ``west`` near -435); :func:`within_box` compares longitudes modulo 360, so such
a box, and one across the antimeridian (``east`` above 180), select what is drawn there.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from hotspot311.errors import InputError, describe

#: Leaflet zoom at and beyond which the requests in view are drawn one by one. At 16 a
#: 900 x 620 px map spans about 1.5 x 0.8 km at Philadelphia's latitude: a few blocks.
DETAIL_ZOOM: Final = 16

#: ``(south, west, north, east)`` in degrees.
Box = tuple[float, float, float, float]

Reason = Literal["hotspot", "few", "zoomed", "aggregate"]


@dataclass(frozen=True)
class MapView:
    """The map's view as the browser reports it.

    Attributes
    ----------
    zoom
        Leaflet zoom level.
    box
        ``(south, west, north, east)`` of the visible area, degrees.
    center
        ``(lat, lon)`` of the map's centre.
    """

    zoom: float
    box: Box
    center: tuple[float, float]


def parse_view(value: Mapping[str, Any] | None) -> MapView | None:
    """The view in a value returned by ``st_folium``, or ``None`` when it holds none.

    Parameters
    ----------
    value
        ``st_folium``'s return value (or ``st.session_state`` under the map's key):
        ``zoom``, ``bounds`` as ``{"_southWest": {"lat", "lng"}, "_northEast": {...}}``
        and optionally ``center`` as ``{"lat", "lng"}`` (the box's middle when absent).

    Returns
    -------
    MapView or None
        ``None`` when the zoom or the bounds are missing, not finite numbers, or inverted
        (south above north, west east of east): before the browser has reported
        anything the component returns its defaults, which may hold ``None``.

    Examples
    --------
    >>> view = parse_view({"zoom": 9, "bounds": {"_southWest": {"lat": 39.5, "lng": -75.5},
    ...                                           "_northEast": {"lat": 40.5, "lng": -74.5}}})
    >>> view.zoom, view.box, view.center
    (9.0, (39.5, -75.5, 40.5, -74.5), (40.0, -75.0))
    >>> parse_view({}) is None
    True
    """
    if not value:
        return None
    try:
        zoom = float(value["zoom"])
        sw, ne = value["bounds"]["_southWest"], value["bounds"]["_northEast"]
        box = (float(sw["lat"]), float(sw["lng"]), float(ne["lat"]), float(ne["lng"]))
    except (KeyError, TypeError, ValueError):
        return None
    if not all(np.isfinite([zoom, *box])):
        return None
    south, west, north, east = box
    if south > north or west > east:
        return None
    centre = value.get("center")
    try:
        center = (float(centre["lat"]), float(centre["lng"])) if isinstance(centre, Mapping) \
            else ((south + north) / 2, (west + east) / 2)
    except (KeyError, TypeError, ValueError):
        center = ((south + north) / 2, (west + east) / 2)
    return MapView(zoom=zoom, box=box, center=center)


def within_box(requests: pd.DataFrame, box: Box) -> pd.DataFrame:
    """The requests inside ``box``, edges included.

    Parameters
    ----------
    requests
        Requests with ``lat`` and ``lon`` in degrees (longitudes in -180..180).
    box
        ``(south, west, north, east)``; longitudes may be those of a world copy
        (``west`` below -180) or run across the antimeridian (``east`` above 180). A box
        360 degrees wide or wider takes every longitude.

    Returns
    -------
    pandas.DataFrame
        The matching rows (the caller's frame is not changed).

    Raises
    ------
    InputError
        When ``south`` is above ``north`` or ``west`` east of ``east``.

    Examples
    --------
    >>> frame = pd.DataFrame({"lat": [39.95, 39.95, 40.5], "lon": [-75.16, 104.84, -75.16]})
    >>> len(within_box(frame, (39.9, -75.2, 40.0, -75.1)))
    1
    >>> len(within_box(frame, (39.9, -435.2, 40.0, -435.1)))  # one world copy west
    1
    """
    south, west, north, east = box
    problems = []
    if not south <= north:
        problems.append(f"box: south {describe(south)} must be at or below north "
                        f"{describe(north)}")
    if not west <= east:
        problems.append(f"box: west {describe(west)} must be at or west of east "
                        f"{describe(east)}")
    if problems:
        raise InputError(problems)
    lat = requests["lat"].to_numpy(dtype=float)
    lon = requests["lon"].to_numpy(dtype=float)
    keep = (lat >= south) & (lat <= north)
    if east - west < 360:
        keep &= np.mod(lon - west, 360.0) <= east - west
    else:
        keep &= np.isfinite(lon)
    return requests[keep]


@dataclass(frozen=True)
class PointChoice:
    """Which requests the map draws one by one.

    Attributes
    ----------
    points
        The requests to draw as points with popups, or ``None``: draw the aggregate.
    reason
        ``hotspot`` (the box of the hotspot in focus), ``few`` (every request: at most
        the limit), ``zoomed`` (the requests in view, zoomed in) or ``aggregate``.
    box
        The box the points were taken from (``None`` for ``few`` and for an aggregate
        that was not zoomed in).
    in_box
        Requests in ``box`` (all requests when ``box`` is ``None``); more than the limit
        when the aggregate stays although zoomed in.
    """

    points: pd.DataFrame | None
    reason: Reason
    box: Box | None
    in_box: int


def choose_points(requests: pd.DataFrame, *, view: MapView | None = None,
                  focus: Box | None = None, limit: int = 2_000,
                  min_zoom: float = DETAIL_ZOOM) -> PointChoice:
    """Decide whether the map draws requests one by one, and which (see the module rule).

    Parameters
    ----------
    requests
        The filtered requests (``lat``, ``lon``).
    view
        The view the map last reported (:func:`parse_view`), ``None`` before it has.
    focus
        The box of the hotspot in focus, or ``None``.
    limit
        Most requests drawn one by one.
    min_zoom
        Zoom from which the requests in view are drawn one by one.

    Returns
    -------
    PointChoice

    Raises
    ------
    InputError
        When ``limit`` is negative.

    Examples
    --------
    >>> frame = pd.DataFrame({"lat": [39.950, 39.951, 39.990], "lon": [-75.16, -75.16, -75.16]})
    >>> near = MapView(zoom=17, box=(39.949, -75.17, 39.952, -75.15), center=(39.95, -75.16))
    >>> choice = choose_points(frame, view=near, limit=2)
    >>> choice.reason, len(choice.points)
    ('zoomed', 2)
    >>> far = MapView(zoom=12, box=(39.8, -75.3, 40.1, -75.0), center=(39.95, -75.16))
    >>> choose_points(frame, view=far, limit=2).points is None
    True
    """
    return choose_points_with(
        lambda box: len(requests) if box is None else len(within_box(requests, box)),
        lambda box: requests if box is None else within_box(requests, box),
        view=view, focus=focus, limit=limit, min_zoom=min_zoom)


def choose_points_with(count: Callable[[Box | None], int],
                       select: Callable[[Box | None], pd.DataFrame], *,
                       view: MapView | None = None, focus: Box | None = None,
                       limit: int = 2_000, min_zoom: float = DETAIL_ZOOM) -> PointChoice:
    """:func:`choose_points` over a store: the rule asks ``count`` how many filtered
    requests a box holds (``None``: all of them) and ``select`` for them only when they
    will be drawn (at most ``limit``), so a page never reads more than it draws.

    Parameters
    ----------
    count
        Box (or ``None``) → number of filtered requests in it.
    select
        Box (or ``None``) → those requests (``lat``, ``lon`` and the popup columns).
    view, focus, limit, min_zoom
        As :func:`choose_points`.

    Returns
    -------
    PointChoice

    Raises
    ------
    InputError
        When ``limit`` is negative.
    """
    if limit < 0:
        raise InputError(f"limit: got {limit}; allowed: 0 or more")
    zoomed = view is not None and view.zoom >= min_zoom

    def from_box(box: Box, reason: Reason) -> PointChoice:
        inside = count(box)
        if inside <= limit:
            return PointChoice(points=select(box), reason=reason, box=box, in_box=inside)
        return PointChoice(points=None, reason="aggregate", box=box, in_box=inside)

    if focus is not None and not zoomed:
        return from_box(focus, "hotspot")
    total = count(None)
    if total <= limit:
        return PointChoice(points=select(None), reason="few", box=None, in_box=total)
    if zoomed and view is not None:
        return from_box(view.box, "zoomed")
    return PointChoice(points=None, reason="aggregate", box=None, in_box=total)


@dataclass(frozen=True)
class Mount:
    """One mounting of the base map in the browser.

    ``st_folium`` keys the map on its script: when the base map changes (filters shown
    in the choropleth, a new hotspot run, other tiles) the browser builds it afresh, at
    the map's own centre and zoom unless ``center``/``zoom`` are passed. A mount records
    what the base map was built from and the view to put it back to.

    Attributes
    ----------
    key
        What the base map is built from, focus aside (any hashable value).
    focus
        The hotspot in focus, or ``None`` (the whole city).
    view
        The view to restore when this mount starts, or ``None`` (the map's own).
    """

    key: Hashable
    focus: str | None
    view: MapView | None


def next_mount(previous: Mount | None, *, key: Hashable, focus: str | None,
               view: MapView | None) -> Mount:
    """The mount for this run of the page.

    Parameters
    ----------
    previous
        The last run's mount, ``None`` on the first run.
    key
        What the base map is built from now (focus aside).
    focus
        The hotspot in focus now.
    view
        The view the map last reported.

    Returns
    -------
    Mount
        ``previous`` itself when nothing changed (pass the same ``center``/``zoom``
        again: the browser ignores values it has already applied, so the user's view
        stays); a mount without a view when the focus changed (the map opens on the
        hotspot, or back on the whole city); else a mount that restores ``view``.

    Examples
    --------
    >>> here = MapView(zoom=17, box=(39.95, -75.17, 39.96, -75.16), center=(39.955, -75.165))
    >>> first = next_mount(None, key="a", focus=None, view=None)
    >>> next_mount(first, key="a", focus=None, view=here) is first
    True
    >>> next_mount(first, key="b", focus=None, view=here).view == here
    True
    >>> next_mount(first, key="b", focus="H1", view=here).view is None
    True
    """
    if previous is not None and previous.key == key and previous.focus == focus:
        return previous
    if previous is not None and previous.focus != focus:
        return Mount(key=key, focus=focus, view=None)
    return Mount(key=key, focus=focus, view=view)
