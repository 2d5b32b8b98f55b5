"""The offline geocoder of a city profile, from the street data bundled beside it.

The street data of a profile is looked up at ``data/<profile file stem>/streets/``
(only ``data/philadelphia/streets`` is bundled); the positioned index is cached under
``.cache/geocoder`` in the repository, keyed by the content of the street files. Used by
``hotspot311 geocode`` and by the Open311 intake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from geo.geocode.geocoder import Geocoder
from hotspot311.errors import InputError
from layers.profile import CityProfile

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DATA_DIR: Final = REPO_ROOT / "data"
CACHE_DIR: Final = REPO_ROOT / ".cache" / "geocoder"


def streets_dir(profile: CityProfile) -> Path:
    """Folder of the profile's street data: ``data/<profile file stem>/streets``."""
    stem = profile.path.stem if profile.path is not None else profile.name.lower()
    return DATA_DIR / stem / "streets"


def load_geocoder(profile: CityProfile) -> Geocoder:
    """The offline geocoder for ``profile``.

    Raises
    ------
    InputError
        When the profile has no street data.
    """
    folder = streets_dir(profile)
    if not (folder / "centerline-address-ranges.csv").is_file():
        bundled = sorted(p.parent.name for p in DATA_DIR.glob("*/streets") if p.is_dir())
        raise InputError(
            f"profile {profile.name!r} has no street data for the geocoder: expected "
            f"{folder} with centerline-address-ranges.csv, intersections*.csv and "
            f"street-names.csv (street data is bundled for: {bundled})")
    return Geocoder.from_city_streets(folder, crs=str(profile.crs), city=profile.name,
                                      cache_dir=CACHE_DIR)


__all__ = ["CACHE_DIR", "DATA_DIR", "load_geocoder", "streets_dir"]
