"""Denominators for rate-normalized area statistics (requests per km², per person, …).

A denominator is named ``FIELD`` or ``FIELD/SCALE``: the layer source's ``FIELD`` for
each area, divided by ``SCALE``. ``ALAND10/1e6`` on Philadelphia's census tracts gives
land area in km² (ALAND10 is square metres), so rates are requests per km² of land.
The name ``area_km2`` needs no field: the area of each stored polygon in km².
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np

from hotspot311.errors import InputError
from layers.profile import CityProfile, LayerSpec

AREA_KM2 = "area_km2"


def parse_denominator(text: str) -> tuple[str, float]:
    """``FIELD`` or ``FIELD/SCALE`` → (field, scale).

    Examples
    --------
    >>> parse_denominator("ALAND10/1e6")
    ('ALAND10', 1000000.0)
    """
    field, _, scale = text.partition("/")
    try:
        value = float(scale) if scale else 1.0
    except ValueError as err:
        raise InputError(f"denominator: got {text!r}; expected FIELD or FIELD/SCALE") from err
    if not field or value <= 0:
        raise InputError(f"denominator: got {text!r}; expected FIELD or FIELD/SCALE, SCALE > 0")
    return field, value


def denominators(areas: gpd.GeoDataFrame, spec: LayerSpec | None, text: str, *,
                 profile: CityProfile) -> np.ndarray:
    """The denominator of each area, in the order of ``areas``.

    Parameters
    ----------
    areas
        Stored areas (``code``, geometry in the city CRS).
    spec
        The layer's spec (its source file holds the field); may be None for ``area_km2``.
    text
        ``area_km2``, ``FIELD`` or ``FIELD/SCALE``.
    profile
        The city (for the CRS unit).

    Returns
    -------
    numpy.ndarray
        One float per area (NaN where the source has no value).

    Raises
    ------
    InputError
        When the field is not in the layer source, naming the fields it has.
    """
    field, scale = parse_denominator(text)
    if field == AREA_KM2:
        return np.asarray(areas.geometry.area.to_numpy() * profile.crs_unit_m**2 / 1e6 / scale)
    if spec is None:
        raise InputError(f"denominator: {field!r} needs a layer from the city profile")
    source = gpd.read_file(spec.source)
    if field not in source.columns:
        fields = sorted(str(c) for c in source.columns if c != "geometry")
        raise InputError(f"denominator: {field!r} is not a field of {spec.source.name}; "
                         f"fields: {fields}")
    values = dict(zip(source[spec.id_field].astype(str), source[field], strict=True))
    out = np.array([values.get(str(c), np.nan) for c in areas["code"]], dtype="float64")
    return out / scale
