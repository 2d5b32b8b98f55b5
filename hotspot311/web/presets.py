"""Department presets for the map page, as data.

A preset fills the sidebar: service types (a group of the city's service catalogue),
the boundary layer shown, the priority weights for the hotspot list, and whether the
page asks for one area and shows a trend chart (neighbourhood staff).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Preset:
    """One preset.

    Attributes
    ----------
    key
        Identifier (``streets``).
    label
        What the sidebar shows.
    group
        Service group of the catalogue (``[groups]`` in ``<city>.services.toml``);
        ``None`` keeps every service type.
    layer
        Boundary layer for the choropleth and the area filter (``None``: no change).
    weights
        Priority preset of :data:`clustering.priority.PRESETS`.
    one_area
        Whether the preset narrows the page to one area of ``layer``.
    trend
        Whether the page shows the requests-over-time chart.
    """

    key: str
    label: str
    group: str | None
    layer: str | None
    weights: str
    one_area: bool = False
    trend: bool = False


PRESETS: Final[dict[str, Preset]] = {
    "custom": Preset("custom", "Custom (all types)", None, None, "balanced"),
    "streets": Preset("streets", "Streets: lights, potholes, dumping, signals", "streets",
                      "council_district", "streets"),
    "police": Preset("police", "Police: abandoned vehicles, vacant/dangerous buildings",
                     "police", "police_district", "police"),
    "neighborhood": Preset("neighborhood", "Neighborhood: one neighborhood, all types", None,
                           "neighborhood", "neighborhood", one_area=True, trend=True),
}


def preset_services(preset: Preset, groups: Mapping[str, Sequence[str]],
                    known: Sequence[str]) -> list[str]:
    """The service types a preset selects, limited to those in the data.

    Parameters
    ----------
    preset
        The preset.
    groups
        Group name → service names (:func:`layers.services.load_groups`).
    known
        Service names present in the store.

    Returns
    -------
    list of str
        In the group's order; empty (meaning all types) when the preset has no group
        or the city's catalogue lacks it.

    Examples
    --------
    >>> preset_services(PRESETS["police"], {"police": ["Abandoned Vehicle", "X"]},
    ...                 ["Abandoned Vehicle", "Graffiti Removal"])
    ['Abandoned Vehicle']
    """
    if preset.group is None:
        return []
    have = set(known)
    return [name for name in groups.get(preset.group, ()) if name in have]
