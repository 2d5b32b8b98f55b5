"""City profiles: the city's name, projected CRS, time zone, extent and boundary layers.

A profile is a TOML file. Paths in it are relative to the file. Example::

    name = "Philadelphia"
    crs = "EPSG:2272"            # projected, for distances (US feet here)
    timezone = "America/New_York"
    extent = "../../data/philadelphia/boundaries/city-limits.geojson"
    extent_buffer_m = 250         # coordinates this far outside the limits still count
    fiscal_year_start = "07-01"   # MM-DD (default 01-01); FY named for the year it ends in
    place_layer = "neighborhood"  # names a hotspot's place with the nearest corner (optional)

    [[layers]]
    key = "zip"
    title = "ZIP code"
    source = "../../data/philadelphia/boundaries/zipcodes.geojson"
    id_field = "CODE"
    name_field = "CODE"
    valid_from = "2017-01-01"

A profile with no layers is valid: requests are then stored without area columns.
"""

from __future__ import annotations

import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from hotspot311.errors import LayerError, describe
from hotspot311.schema import RESERVED_NAMES

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class LayerSpec:
    """Where a boundary layer comes from and how to read it.

    Attributes
    ----------
    key
        Column name of the layer's area code on every request (``[a-z][a-z0-9_]*``).
    title
        Human title, e.g. "Police district".
    source
        GeoJSON, Shapefile or GeoPackage file.
    id_field, name_field
        Source fields holding each area's code and display name.
    valid_from
        First day the boundaries are in force (the generation's start); ``None`` when
        unknown, which sorts before every date.
    """

    key: str
    title: str
    source: Path
    id_field: str
    name_field: str
    valid_from: date | None = None


@dataclass(frozen=True)
class CityProfile:
    """A city: name, CRS, time zone, extent and layers.

    Attributes
    ----------
    name
        City name, e.g. "Philadelphia".
    crs
        Projected CRS used for distances and clustering.
    timezone
        IANA time zone for naive source times.
    extent_source
        Polygon file of the city limits, or ``None`` to use ``bbox``.
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)`` used when there is no extent file.
    extent_buffer_m
        Tolerance outside the extent, in metres.
    layers
        Boundary layer specs, in display order.
    path
        The TOML file this profile was read from, if any.
    fiscal_year_start
        ``(month, day)`` the city's fiscal year starts on (Philadelphia: ``(7, 1)``);
        a fiscal year is named for the calendar year it ends in.
    place_layer
        Key of the layer whose area names a place (a hotspot's "corner — area" name,
        :mod:`geo.geocode.places`), or ``None``.
    """

    name: str
    crs: str
    timezone: str
    extent_source: Path | None = None
    bbox: tuple[float, float, float, float] | None = None
    extent_buffer_m: float = 250.0
    layers: tuple[LayerSpec, ...] = field(default_factory=tuple)
    path: Path | None = None
    fiscal_year_start: tuple[int, int] = (1, 1)
    place_layer: str | None = None

    @property
    def layer_keys(self) -> tuple[str, ...]:
        """The layer keys, in profile order."""
        return tuple(spec.key for spec in self.layers)

    @cached_property
    def crs_unit_m(self) -> float:
        """Length of one unit of the projected CRS in metres (0.3048006 for US feet)."""
        factor = pyproj.CRS(self.crs).axis_info[0].unit_conversion_factor
        return float(factor)

    @cached_property
    def area_km2(self) -> float:
        """Area of the (buffered) city extent in km², e.g. for density figures."""
        ext = gpd.GeoSeries([self.extent], crs="EPSG:4326").to_crs(self.crs)
        return float(ext.area.iloc[0]) * self.crs_unit_m**2 / 1e6

    def metres_to_crs(self, metres: float) -> float:
        """Convert a distance in metres to units of the city CRS."""
        return metres / self.crs_unit_m

    @cached_property
    def extent(self) -> BaseGeometry:
        """The city extent in WGS84, buffered by ``extent_buffer_m``."""
        if self.extent_source is not None:
            frame = gpd.read_file(self.extent_source)
            if frame.empty:
                raise LayerError(f"extent: {self.extent_source} holds no polygon")
            frame = frame.set_crs("EPSG:4326") if frame.crs is None else frame
            projected = frame.to_crs(self.crs)
            merged = shapely.union_all(shapely.make_valid(projected.geometry.to_numpy()))
            buffered = merged.buffer(self.metres_to_crs(self.extent_buffer_m))
            return gpd.GeoSeries([buffered], crs=self.crs).to_crs("EPSG:4326").iloc[0]
        if self.bbox is not None:
            return shapely.box(*self.bbox)
        raise LayerError(f"profile {self.name!r}: give 'extent' (a polygon file) or 'bbox'")


def load_profile(name_or_path: str | Path) -> CityProfile:
    """Read a city profile.

    Parameters
    ----------
    name_or_path
        A TOML file, or the name of one under ``layers/profiles`` (e.g. "philadelphia").

    Returns
    -------
    CityProfile
        The validated profile.

    Raises
    ------
    LayerError
        When the file is missing or any field is invalid; every problem is listed.
    """
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = PROFILES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.toml") if "." not in p.stem)
        raise LayerError(
            f"city profile: {describe(str(name_or_path))} is neither a TOML file nor one of "
            f"the bundled profiles {known}"
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise LayerError(f"city profile {path}: not valid TOML ({err})") from err
    return profile_from_dict(raw, base=path.parent, path=path)


def profile_from_dict(raw: dict[str, Any], *, base: Path, path: Path | None = None) -> CityProfile:
    """Build and validate a profile from parsed TOML.

    Parameters
    ----------
    raw
        The parsed TOML document.
    base
        Directory that relative source paths are resolved against.
    path
        Where the document came from, for messages.

    Returns
    -------
    CityProfile
        The validated profile.

    Raises
    ------
    LayerError
        Listing every invalid or missing field.
    """
    where = f"city profile {path or '(inline)'}"
    problems: list[str] = []
    for name in ("name", "crs", "timezone"):
        if not isinstance(raw.get(name), str) or not raw[name].strip():
            problems.append(
                f"{where}: '{name}' must be a non-empty string, got {describe(raw.get(name))}"
            )
    crs = raw.get("crs")
    if isinstance(crs, str):
        try:
            parsed = pyproj.CRS(crs)
            if not parsed.is_projected:
                problems.append(
                    f"{where}: 'crs' must be a projected CRS (distances in metres or feet), "
                    f"got {crs!r} which is geographic"
                )
        except pyproj.exceptions.CRSError:
            problems.append(f"{where}: 'crs' {crs!r} is not a CRS pyproj knows")
    tz = raw.get("timezone")
    if isinstance(tz, str):
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(f"{where}: 'timezone' {tz!r} is not an IANA time zone")
    extent = raw.get("extent")
    bbox = raw.get("bbox")
    extent_path = (base / extent).resolve() if isinstance(extent, str) else None
    if extent_path is not None and not extent_path.is_file():
        problems.append(f"{where}: 'extent' file {extent_path} does not exist")
    if extent is None and bbox is None:
        problems.append(
            f"{where}: give 'extent' (a polygon file) or "
            "'bbox' [min_lon, min_lat, max_lon, max_lat]"
        )
    if bbox is not None and (not isinstance(bbox, list) or len(bbox) != 4):
        problems.append(
            f"{where}: 'bbox' must be [min_lon, min_lat, max_lon, max_lat], got {describe(bbox)}"
        )
    fiscal = _fiscal_year_start(raw.get("fiscal_year_start", "01-01"), where, problems)
    layers: list[LayerSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(raw.get("layers", [])):
        try:
            spec = layer_spec_from_dict(item, base=base)
        except LayerError as err:
            problems.extend(f"{where}: layers[{i}]: {p}" for p in err.problems)
            continue
        if spec.key in seen:
            problems.append(f"{where}: layers[{i}]: key {spec.key!r} is used twice")
        seen.add(spec.key)
        layers.append(spec)
    place_layer = raw.get("place_layer")
    if place_layer is not None and place_layer not in seen:
        problems.append(f"{where}: 'place_layer' {describe(place_layer)} is not a layer key; "
                        f"layers: {', '.join(sorted(seen)) or '(none)'}")
    if problems:
        raise LayerError(problems)
    return CityProfile(
        name=str(raw["name"]),
        crs=str(raw["crs"]),
        timezone=str(raw["timezone"]),
        extent_source=extent_path,
        bbox=tuple(float(v) for v in bbox) if bbox is not None else None,  # type: ignore[arg-type]
        extent_buffer_m=float(raw.get("extent_buffer_m", 250.0)),
        layers=tuple(layers),
        path=path,
        fiscal_year_start=fiscal,
        place_layer=None if place_layer is None else str(place_layer),
    )


def _fiscal_year_start(value: object, where: str, problems: list[str]) -> tuple[int, int]:
    """``"MM-DD"`` → ``(month, day)``; a problem is recorded for anything else."""
    try:
        month, day = (int(p) for p in str(value).split("-"))
        date(2001, month, day)  # a day every year has (not 29 February)
    except ValueError:
        problems.append(f"{where}: 'fiscal_year_start' must be MM-DD (e.g. \"07-01\"), got "
                        f"{describe(value)}")
        return (1, 1)
    return (month, day)


def validate_layer_key(key: object) -> str:
    """Return ``key`` if it can name a layer column, else raise :class:`LayerError`.

    Examples
    --------
    >>> validate_layer_key("police_district")
    'police_district'
    """
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise LayerError(
            f"layer key: got {describe(key)}; allowed: a lowercase letter followed by up to "
            "39 lowercase letters, digits or underscores"
        )
    if key in RESERVED_NAMES:
        raise LayerError(f"layer key: {key!r} is a request column name; choose another key")
    return key


def layer_spec_from_dict(item: dict[str, Any], *, base: Path) -> LayerSpec:
    """Build a :class:`LayerSpec` from one ``[[layers]]`` table, checking every field."""
    problems: list[str] = []
    try:
        key = validate_layer_key(item.get("key"))
    except LayerError as err:
        problems.extend(err.problems)
        key = ""
    for name in ("source", "id_field"):
        if not isinstance(item.get(name), str) or not item[name]:
            problems.append(f"'{name}' must be a non-empty string, got {describe(item.get(name))}")
    valid_from = item.get("valid_from")
    if isinstance(valid_from, str):
        try:
            valid_from = date.fromisoformat(valid_from)
        except ValueError:
            problems.append(f"'valid_from' must be a date YYYY-MM-DD, got {valid_from!r}")
    elif valid_from is not None and not isinstance(valid_from, date):
        problems.append(f"'valid_from' must be a date YYYY-MM-DD, got {describe(valid_from)}")
    if problems:
        raise LayerError(problems)
    source = (base / item["source"]).resolve()
    return LayerSpec(
        key=key,
        title=str(item.get("title") or key.replace("_", " ").capitalize()),
        source=source,
        id_field=item["id_field"],
        name_field=str(item.get("name_field") or item["id_field"]),
        valid_from=valid_from if isinstance(valid_from, date) else None,
    )
