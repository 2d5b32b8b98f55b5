"""Shared fixtures: city profiles (real Philadelphia and a hand-drawn test city) and stores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from geo.geocode.geocoder import Geocoder
from geo.store.embedded import EmbeddedStore
from layers.profile import CityProfile, load_profile

# fixtures: the throwaway PostGIS server and the store-contract fixtures (store, philly_*)
pytest_plugins = ["tests.postgis_server", "tests.geo.store.stores"]

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "philadelphia"
REQUESTS = DATA / "requests"
STREETS = DATA / "streets"
#: The full public data beside the project (see its SOURCES.md), for tests that read more.
SHARED = Path("/work/shared/data/philadelphia")

#: The interpreter's ``__main__`` (pytest's, or a pytest-xdist worker's).
_MAIN = sys.modules["__main__"]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Put the interpreter's ``__main__`` back before every test's fixtures.

    Streamlit's ``AppTest`` leaves the script it ran as ``sys.modules["__main__"]``; a
    Dask ``LocalCluster`` started later in the same process would then have its worker
    processes (spawned) run that script again, and fail to start. Which tests share a
    process depends on the order (and on pytest-xdist), so every test starts clean.
    """
    sys.modules["__main__"] = _MAIN


@pytest.fixture(scope="session")
def philly() -> Geocoder:
    """The Philadelphia street index, built once per session (cached under .cache/)."""
    return Geocoder.from_city_streets(STREETS, cache_dir=ROOT / ".cache" / "geocoder",
                                      zip_prefixes=("191",))


@pytest.fixture(scope="session")
def phila() -> CityProfile:
    """The bundled Philadelphia profile."""
    return load_profile("philadelphia")


def write_squares(directory: Path) -> Path:
    """A test city: two unit squares side by side (codes "A" left, "B" right) in a
    projected CRS (EPSG:32618, metres), as GeoJSON in WGS84, and a profile for it.

    Square A spans x 500000–501000, B spans 501000–502000, both y 4400000–4401000.
    """
    import geopandas as gpd
    import shapely

    boxes = gpd.GeoDataFrame(
        {"code": ["A", "B"], "label": ["Alpha", "Beta"]},
        geometry=[
            shapely.box(500000, 4400000, 501000, 4401000),
            shapely.box(501000, 4400000, 502000, 4401000),
        ],
        crs="EPSG:32618",
    )
    squares = directory / "squares.geojson"
    boxes.to_crs("EPSG:4326").to_file(squares, driver="GeoJSON")
    extent = directory / "extent.geojson"
    gpd.GeoDataFrame(
        geometry=[shapely.box(499000, 4399000, 503000, 4402000)], crs="EPSG:32618"
    ).to_crs("EPSG:4326").to_file(extent, driver="GeoJSON")
    profile = directory / "squares.toml"
    profile.write_text(
        "\n".join(
            [
                'name = "Squareville"',
                'crs = "EPSG:32618"',
                'timezone = "America/New_York"',
                'extent = "extent.geojson"',
                "extent_buffer_m = 0",
                "[[layers]]",
                'key = "square"',
                'source = "squares.geojson"',
                'id_field = "code"',
                'name_field = "label"',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return profile


@pytest.fixture
def squares_profile(tmp_path: Path) -> CityProfile:
    """The hand-drawn two-square test city."""
    return load_profile(write_squares(tmp_path))


@pytest.fixture
def embedded(tmp_path: Path, phila: CityProfile) -> EmbeddedStore:
    """An empty embedded store for Philadelphia."""
    return EmbeddedStore(tmp_path / "store", phila)


def utm_to_lonlat(x: float, y: float) -> tuple[float, float]:
    """EPSG:32618 metres → (lon, lat)."""
    import pyproj

    t = pyproj.Transformer.from_crs("EPSG:32618", "EPSG:4326", always_xy=True)
    lon, lat = t.transform(x, y)
    return float(lon), float(lat)


def write_json(path: Path, doc: object) -> Path:
    """Write ``doc`` as JSON and return the path."""
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def app_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small embedded store of generated requests, shared by the app and browser tests."""
    from tests.appstore import build_store

    return build_store(tmp_path_factory.mktemp("appstore"))


@pytest.fixture(scope="session")
def app_postgis_store(tmp_path_factory: pytest.TempPathFactory, postgis_server: object) -> str:
    """The same requests as :func:`app_store`, in a PostGIS database (session scope)."""
    from tests.appstore import fill_store

    url = postgis_server.clone("app")  # type: ignore[attr-defined]
    return fill_store(url, tmp_path_factory.mktemp("appstore-pg") / "requests.csv", 2000)


@pytest.fixture(scope="session", params=["embedded", pytest.param("postgis",
                                                                  marks=pytest.mark.postgis)])
def app_location(request: pytest.FixtureRequest) -> str:
    """The app test store, each store in turn: a directory or a ``postgresql://`` URL."""
    if request.param == "embedded":
        return str(request.getfixturevalue("app_store"))
    return str(request.getfixturevalue("app_postgis_store"))
