"""Shared fixtures and helpers for the store tests: both stores, a tiny test city."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyproj
import pytest
import shapely

from geo.store.base import Store
from geo.store.embedded import EmbeddedStore
from layers.profile import CityProfile, LayerSpec, load_profile
from layers.registry import load_layer

#: A fixed ingest time, so both stores give the same batch ids.
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

TESTVILLE = CityProfile(
    name="Testville",
    crs="EPSG:2272",
    timezone="America/New_York",
    bbox=(-75.30, 39.85, -74.95, 40.15),
    layers=(),
)

CSV_COLUMNS = (
    "service_request_id",
    "requested_datetime",
    "updated_datetime",
    "status",
    "description",
    "address",
    "lat",
    "lon",
    "ward_note",
)


def open_test_store(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, profile: CityProfile
) -> Store:
    """Open an embedded store under ``tmp_path`` or a PostGIS store on a fresh database."""
    if kind == "embedded":
        return EmbeddedStore(tmp_path / "store", profile)
    from geo.store.postgis import PostGISStore

    url = request.getfixturevalue("postgis_url")
    return PostGISStore.open(url, profile)


def store_location(kind: str, root: Path, request: pytest.FixtureRequest, name: str) -> str:
    """Where a new store of ``kind`` goes: ``root/name`` (embedded), or the URL of a fresh
    database cloned on the session's PostGIS server (any fixture scope)."""
    if kind == "embedded":
        return str(root / name)
    return str(request.getfixturevalue("postgis_server").clone(name))


@pytest.fixture(params=["embedded", pytest.param("postgis", marks=pytest.mark.postgis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each store in turn, empty, for the Testville profile."""
    s = open_test_store(request.param, tmp_path, request, TESTVILLE)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def philly_profile() -> CityProfile:
    """The bundled Philadelphia profile."""
    return load_profile("philadelphia")


@pytest.fixture(scope="session")
def philly_layers(philly_profile: CityProfile) -> dict[str, gpd.GeoDataFrame]:
    """Philadelphia's layers, read once per session."""
    return {s.key: load_layer(s, crs=philly_profile.crs) for s in philly_profile.layers}


def to_xy(lon: float, lat: float) -> tuple[float, float]:
    """The city x/y of a WGS84 point, exactly as validation computes it."""
    t = pyproj.Transformer.from_crs("EPSG:4326", TESTVILLE.crs, always_xy=True)
    x, y = t.transform([lon], [lat])
    return float(x[0]), float(y[0])


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    """Write request rows (missing fields empty) as a CSV file."""
    frame = pd.DataFrame(
        [{c: r.get(c) for c in CSV_COLUMNS} for r in rows], columns=list(CSV_COLUMNS)
    )
    frame.to_csv(path, index=False)
    return path


def squares(
    codes_and_boxes: list[tuple[str, tuple[float, float, float, float]]],
) -> gpd.GeoDataFrame:
    """Areas frame of axis-aligned boxes in the test city CRS."""
    return gpd.GeoDataFrame(
        {"code": [c for c, _ in codes_and_boxes], "name": [c for c, _ in codes_and_boxes]},
        geometry=gpd.GeoSeries([shapely.box(*b) for _, b in codes_and_boxes], crs=TESTVILLE.crs),
    )


def spec(key: str, valid_from: date | None = None, source: str = "hand-drawn") -> LayerSpec:
    """A layer spec for hand-drawn areas."""
    return LayerSpec(
        key=key,
        title=key.title(),
        source=Path(source),
        id_field="code",
        name_field="name",
        valid_from=valid_from,
    )


def normalized(frame: pd.DataFrame) -> pd.DataFrame:
    """A request frame in a store-independent form: sorted by id, NA as None,
    ``extra`` parsed (jsonb reorders keys), geometry as WKT."""
    out = pd.DataFrame(frame).sort_values("service_request_id").reset_index(drop=True)
    out["geometry"] = [g.wkt for g in out["geometry"]]
    out["extra"] = [json.loads(v) if isinstance(v, str) else None for v in out["extra"]]
    for c in out.columns:
        if out[c].dtype.kind in "OUT" or str(out[c].dtype) in ("str", "string"):
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out
