"""Loading boundary layers: read, check, reproject, repair; and their generations.

A loaded layer is a GeoDataFrame with three columns, ``code`` (text, unique),
``name`` and ``geometry`` (polygons in the city CRS), plus :class:`Generation`
metadata. Borrowed from MapIt: a layer keeps several generations (the 2016 and the 2024
council maps), each with the date it came into force; the newest one in force is active.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from hotspot311.errors import LayerError, describe
from layers.profile import CityProfile, LayerSpec, validate_layer_key

AREA_COLUMNS = ("code", "name", "geometry")


@dataclass(frozen=True)
class Generation:
    """One generation of one layer.

    Attributes
    ----------
    key
        Layer key.
    generation
        1, 2, … in the order loaded.
    title
        Human title of the layer.
    valid_from
        First day in force; ``None`` when unknown (in force since forever).
    source
        File the areas were read from.
    id_field, name_field
        Source fields of code and name.
    n_areas
        Number of areas.
    """

    key: str
    generation: int
    title: str
    valid_from: date | None
    source: str
    id_field: str
    name_field: str
    n_areas: int

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready form."""
        return {
            "key": self.key,
            "generation": self.generation,
            "title": self.title,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "source": self.source,
            "id_field": self.id_field,
            "name_field": self.name_field,
            "n_areas": self.n_areas,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> Generation:
        """Inverse of :meth:`to_dict`."""
        vf = raw.get("valid_from")
        return cls(
            key=str(raw["key"]),
            generation=int(raw["generation"]),  # type: ignore[call-overload]
            title=str(raw["title"]),
            valid_from=date.fromisoformat(str(vf)) if vf else None,
            source=str(raw["source"]),
            id_field=str(raw["id_field"]),
            name_field=str(raw["name_field"]),
            n_areas=int(raw["n_areas"]),  # type: ignore[call-overload]
        )


def active_generations(generations: list[Generation], *, today: date | None = None) -> dict[str, Generation]:
    """Pick the active generation of each layer: the newest in force on ``today``.

    A generation whose ``valid_from`` is in the future is loaded but not yet active;
    when no generation is in force yet, the earliest one is used.

    Parameters
    ----------
    generations
        Every generation of every layer.
    today
        The date to decide on; the current date when omitted.

    Returns
    -------
    dict
        Layer key → active generation.
    """
    today = today or date.today()  # noqa: DTZ011 - a calendar date, not an instant
    by_key: dict[str, list[Generation]] = {}
    for gen in generations:
        by_key.setdefault(gen.key, []).append(gen)
    active: dict[str, Generation] = {}
    for key, gens in by_key.items():
        ordered = sorted(gens, key=lambda g: (g.valid_from or date.min, g.generation))
        in_force = [g for g in ordered if (g.valid_from or date.min) <= today]
        active[key] = in_force[-1] if in_force else ordered[0]
    return active


def load_layer(spec: LayerSpec, *, crs: str) -> gpd.GeoDataFrame:
    """Read a boundary layer file into ``code``, ``name``, ``geometry`` in ``crs``.

    Loading reprojects, repairs invalid polygons (``shapely.make_valid``, keeping the
    polygonal parts) and refuses what cannot be used.

    Parameters
    ----------
    spec
        The layer's key, file and fields.
    crs
        Target CRS (the city's projected CRS).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per area, sorted by code.

    Raises
    ------
    LayerError
        When the file cannot be read, a field is missing, the layer is empty, a feature
        has no polygon, or a code is repeated; every problem is listed.
    """
    validate_layer_key(spec.key)
    where = f"layer {spec.key!r} ({spec.source})"
    if not Path(spec.source).is_file():
        raise LayerError(f"{where}: file does not exist")
    try:
        frame = gpd.read_file(spec.source)
    except Exception as err:  # pyogrio raises several unrelated types
        raise LayerError(f"{where}: cannot be read as GeoJSON, Shapefile or GeoPackage ({err})") from err
    return prepare_areas(frame, spec=spec, crs=crs)


def prepare_areas(frame: gpd.GeoDataFrame, *, spec: LayerSpec, crs: str) -> gpd.GeoDataFrame:
    """Check, repair and reproject a frame of areas already read (see :func:`load_layer`)."""
    where = f"layer {spec.key!r} ({spec.source})"
    problems: list[str] = []
    fields = [c for c in frame.columns if c != frame.geometry.name]
    for role, name in (("id_field", spec.id_field), ("name_field", spec.name_field)):
        if name not in frame.columns:
            problems.append(f"{where}: {role} {name!r} is not a field; fields are {fields}")
    if frame.empty:
        problems.append(f"{where}: the layer has no features")
    if problems:
        raise LayerError(problems)
    if frame.crs is None:
        raise LayerError(f"{where}: the file has no CRS; save it with one (e.g. EPSG:4326)")

    codes = _codes(frame[spec.id_field])
    geoms = frame.geometry.to_numpy()
    missing_code = codes.isna() | (codes == "")
    if missing_code.any():
        problems.append(f"{where}: {int(missing_code.sum())} features have no {spec.id_field!r}"
                        f" (rows {list(np.flatnonzero(missing_code)[:10])})")
    dup = codes[codes.duplicated(keep=False) & ~missing_code]
    if not dup.empty:
        problems.append(
            f"{where}: codes must be unique; repeated: {sorted(set(dup))[:10]} "
            "(dissolve the parts into one feature per code first)"
        )
    geoms = np.where(shapely.is_valid(geoms), geoms, shapely.make_valid(geoms))
    polygonal = np.array([_polygonal(g) for g in geoms], dtype=object)
    empty = np.array([g is None or g.is_empty for g in polygonal])
    if empty.any():
        problems.append(
            f"{where}: features without a polygon (empty, null or not polygonal): codes "
            f"{[describe(c) for c in codes[empty][:10]]}"
        )
    if problems:
        raise LayerError(problems)
    out = gpd.GeoDataFrame(
        {
            "code": codes.to_numpy(),
            "name": frame[spec.name_field].astype("string").fillna("").to_numpy(dtype=object),
        },
        geometry=gpd.GeoSeries(polygonal, crs=frame.crs),
    ).to_crs(crs)
    return out.sort_values("code", kind="stable").reset_index(drop=True)


def generation_for(spec: LayerSpec, areas: gpd.GeoDataFrame, *, generation: int) -> Generation:
    """Describe a loaded layer as generation number ``generation``."""
    return Generation(
        key=spec.key,
        generation=generation,
        title=spec.title,
        valid_from=spec.valid_from,
        source=str(spec.source),
        id_field=spec.id_field,
        name_field=spec.name_field,
        n_areas=len(areas),
    )


def profile_specs(profile: CityProfile) -> list[LayerSpec]:
    """The profile's layer specs (a copy, for callers that add their own)."""
    return [replace(s) for s in profile.layers]


def _codes(values: pd.Series) -> pd.Series:
    """Area codes as text: integral floats lose their ``.0``, text is stripped."""
    def one(v: object) -> object:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v).strip()

    return pd.Series([one(v) for v in values], index=values.index, dtype=object)


def _polygonal(geom: shapely.Geometry | None) -> shapely.Geometry | None:
    """Keep the polygonal part of a geometry (after ``make_valid``)."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    if geom.geom_type == "GeometryCollection":
        parts = [g for g in geom.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        return shapely.union_all(parts) if parts else None
    return None
