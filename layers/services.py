"""The city's service catalogue: service types, departments and SLA days.

Read from ``<profile>.services.toml`` beside the city profile (a ``[[service]]`` table
per type: ``name``, ``agency``, ``sla_days``, ``working_days``). A city without the file
has an empty catalogue.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from hotspot311.errors import LayerError, describe
from layers.profile import CityProfile


@dataclass(frozen=True)
class ServiceType:
    """One service type.

    Attributes
    ----------
    name
        Service name as requests carry it.
    agency
        Responsible department.
    sla_days
        Agreed days to close; ``None`` when the type has no SLA.
    working_days
        Whether ``sla_days`` counts working days only.
    """

    name: str
    agency: str
    sla_days: float | None
    working_days: bool


def services_path(profile: CityProfile) -> Path | None:
    """The catalogue file beside the profile, if the profile came from a file."""
    if profile.path is None:
        return None
    return profile.path.with_name(f"{profile.path.stem}.services.toml")


def load_groups(profile: CityProfile) -> dict[str, tuple[str, ...]]:
    """Named groups of service types (the ``[groups]`` table), e.g. ``streets``.

    Returns
    -------
    dict
        Group name → service names; empty when the city has no catalogue.
    """
    path = services_path(profile)
    if path is None or not path.is_file():
        return {}
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    groups = raw.get("groups", {})
    return {str(k): tuple(str(v) for v in vals) for k, vals in groups.items()}


def load_services(profile: CityProfile) -> tuple[ServiceType, ...]:
    """Read the city's service catalogue.

    Parameters
    ----------
    profile
        The city profile; its ``<stem>.services.toml`` sibling is read.

    Returns
    -------
    tuple of ServiceType
        In file order; empty when the file does not exist.

    Raises
    ------
    LayerError
        Listing every invalid entry.
    """
    path = services_path(profile)
    if path is None or not path.is_file():
        return ()
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    problems: list[str] = []
    out: list[ServiceType] = []
    for i, item in enumerate(raw.get("service", [])):
        name, days = item.get("name"), item.get("sla_days")
        if not isinstance(name, str) or not name:
            problems.append(f"{path}: service[{i}].name must be text, got {describe(name)}")
            continue
        if days is not None and (not isinstance(days, int | float) or days < 0):
            problems.append(f"{path}: service {name!r}: sla_days must be a number >= 0, "
                            f"got {describe(days)}")
            continue
        out.append(ServiceType(name=name, agency=str(item.get("agency", "")),
                               sla_days=float(days) if days is not None else None,
                               working_days=bool(item.get("working_days", False))))
    if problems:
        raise LayerError(problems)
    return tuple(out)
