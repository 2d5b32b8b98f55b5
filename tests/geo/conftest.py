"""Shared fixtures: the Philadelphia street index, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo.geocoding import Geocoder

ROOT = Path(__file__).resolve().parents[2]
STREETS = ROOT / "data" / "philadelphia" / "streets"
SHARED = Path("/work/shared/data/philadelphia")


@pytest.fixture(scope="session")
def philly() -> Geocoder:
    return Geocoder.from_city_streets(STREETS, cache_dir=ROOT / ".cache" / "geocoder",
                                      zip_prefixes=("191",))
