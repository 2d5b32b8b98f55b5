"""City profiles and layer loading: validation, repair, refusal, generations."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from hotspot311.errors import LayerError
from layers.profile import LayerSpec, load_profile, validate_layer_key
from layers.registry import Generation, active_generations, load_layer


def test_philadelphia_profile(phila) -> None:  # type: ignore[no-untyped-def]
    assert phila.crs == "EPSG:2272"
    assert phila.timezone == "America/New_York"
    assert phila.layer_keys == ("zip", "council_district", "police_district",
                                "planning_district", "neighborhood", "census_tract",
                                "li_district")
    assert phila.crs_unit_m == pytest.approx(0.3048006096)
    assert phila.metres_to_crs(100) == pytest.approx(328.0833, rel=1e-5)


def test_every_philadelphia_layer_loads(phila) -> None:  # type: ignore[no-untyped-def]
    expected = {"zip": 48, "council_district": 10, "police_district": 22,
                "planning_district": 18, "neighborhood": 159, "census_tract": 384,
                "li_district": 5}
    for spec in phila.layers:
        areas = load_layer(spec, crs=phila.crs)
        assert len(areas) == expected[spec.key], spec.key
        assert areas.crs.to_epsg() == 2272
        assert areas["code"].is_unique
        assert areas.geometry.is_valid.all()


def test_profile_errors_are_all_listed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = ""\ncrs = "EPSG:4326"\ntimezone = "Mars/Olympus"\n'
                   '[[layers]]\nkey = "Bad Key"\nsource = "x.geojson"\nid_field = "ID"\n')
    with pytest.raises(LayerError) as err:
        load_profile(bad)
    text = str(err.value)
    for needle in ("'name' must be", "geographic", "Mars/Olympus", "Bad Key", "'extent'"):
        assert needle in text


def test_profile_without_layers_works(tmp_path: Path) -> None:
    p = tmp_path / "tiny.toml"
    p.write_text('name = "Tiny"\ncrs = "EPSG:32618"\ntimezone = "UTC"\n'
                 'bbox = [-75.1, 39.9, -75.0, 40.0]\n')
    profile = load_profile(p)
    assert profile.layers == ()
    assert profile.extent.bounds == (-75.1, 39.9, -75.0, 40.0)


def test_unknown_profile_name_lists_bundled() -> None:
    with pytest.raises(LayerError, match="philadelphia"):
        load_profile("atlantis")


@pytest.mark.parametrize("key", ["Zip", "1zip", "zip code", "geometry", "status", "", "x" * 41,
                                 "a; DROP TABLE requests"])
def test_layer_key_rules(key: str) -> None:
    with pytest.raises(LayerError, match="layer key"):
        validate_layer_key(key)


def _write(tmp_path: Path, frame: gpd.GeoDataFrame, name: str = "l.geojson") -> Path:
    path = tmp_path / name
    frame.to_file(path, driver="GeoJSON")
    return path


def test_layer_repairs_invalid_polygon(tmp_path: Path) -> None:
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    assert not bowtie.is_valid
    path = _write(tmp_path, gpd.GeoDataFrame({"ID": ["1"]}, geometry=[bowtie], crs="EPSG:32618"))
    areas = load_layer(LayerSpec("t", "T", path, "ID", "ID"), crs="EPSG:32618")
    assert areas.geometry.is_valid.all()
    assert areas.geometry.iloc[0].area == pytest.approx(0.5)


def test_layer_refuses_duplicates_missing_fields_and_empty(tmp_path: Path) -> None:
    dup = gpd.GeoDataFrame({"ID": ["1", "1"]}, geometry=[shapely.box(0, 0, 1, 1)] * 2,
                           crs="EPSG:32618")
    with pytest.raises(LayerError, match=r"codes must be unique; repeated: \['1'\]"):
        load_layer(LayerSpec("t", "T", _write(tmp_path, dup), "ID", "ID"), crs="EPSG:32618")
    with pytest.raises(LayerError, match="id_field 'CODE' is not a field; fields are"):
        load_layer(LayerSpec("t", "T", _write(tmp_path, dup, "b.geojson"), "CODE", "ID"),
                   crs="EPSG:32618")
    empty = gpd.GeoDataFrame({"ID": ["1", "2"]}, geometry=[shapely.box(0, 0, 1, 1),
                             shapely.Polygon()], crs="EPSG:32618")
    with pytest.raises(LayerError, match="features without a polygon"):
        load_layer(LayerSpec("t", "T", _write(tmp_path, empty, "c.geojson"), "ID", "ID"),
                   crs="EPSG:32618")
    with pytest.raises(LayerError, match="does not exist"):
        load_layer(LayerSpec("t", "T", tmp_path / "nope.geojson", "ID", "ID"), crs="EPSG:32618")


def _gen(key: str, n: int, valid: date | None) -> Generation:
    return Generation(key, n, key, valid, "f", "id", "id", 1)


def test_active_generation_is_newest_in_force() -> None:
    gens = [_gen("council", 1, date(2016, 1, 1)), _gen("council", 2, date(2024, 1, 1)),
            _gen("council", 3, date(2030, 1, 1)), _gen("zip", 1, None)]
    active = active_generations(gens, today=date(2026, 1, 1))
    assert active["council"].generation == 2
    assert active["zip"].generation == 1
    assert active_generations(gens, today=date(2020, 1, 1))["council"].generation == 1
    assert active_generations(gens[2:3], today=date(2020, 1, 1))["council"].generation == 3
