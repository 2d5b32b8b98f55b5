"""Rate denominators: Philadelphia tract land area (ALAND10) and polygon area."""

from __future__ import annotations

import numpy as np
import pytest

from clustering.rates import denominators, parse_denominator
from clustering.significance import area_hotspots
from hotspot311.errors import InputError
from layers.profile import CityProfile
from layers.registry import load_layer


def test_parse() -> None:
    assert parse_denominator("ALAND10/1e6") == ("ALAND10", 1e6)
    assert parse_denominator("POP") == ("POP", 1.0)
    with pytest.raises(InputError, match="FIELD/SCALE"):
        parse_denominator("ALAND10/zero")
    with pytest.raises(InputError, match="SCALE > 0"):
        parse_denominator("ALAND10/0")


def test_tract_land_area_per_km2(phila: CityProfile) -> None:
    spec = next(s for s in phila.layers if s.key == "census_tract")
    tracts = load_layer(spec, crs=phila.crs)
    land = denominators(tracts, spec, "ALAND10/1e6", profile=phila)
    total = denominators(tracts, None, "area_km2", profile=phila)
    assert np.isfinite(land).all() and (land > 0).all()
    # Philadelphia: about 347 km² of land; tract polygons include water (~370 km²)
    assert land.sum() == pytest.approx(347, rel=0.03)
    assert total.sum() == pytest.approx(369, rel=0.03)
    assert np.median(land / total) == pytest.approx(1.0, abs=0.05)
    with pytest.raises(InputError, match="'POP100' is not a field of census-tracts-2010"):
        denominators(tracts, spec, "POP100", profile=phila)
    # per-km² Gi* runs on the real tracts
    rng = np.random.default_rng(0)
    c = tracts.geometry.centroid
    x = np.repeat(c.x.to_numpy()[:20], 30) + rng.normal(0, 50, 600)
    y = np.repeat(c.y.to_numpy()[:20], 30) + rng.normal(0, 50, 600)
    out = area_hotspots(tracts, x, y, denominator=land, engine="numpy")
    np.testing.assert_allclose(out["rate"], out["count"] / land)
