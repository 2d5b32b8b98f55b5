"""The city's service catalogue: service types, departments and SLA days.

Read from ``<profile>.services.toml`` beside the city profile (a ``[[service]]`` table
per type: ``name``, ``agency``, ``sla_days``, ``working_days``). A city without the file
has an empty catalogue.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
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
            problems.append(
                f"{path}: service {name!r}: sla_days must be a number >= 0, got {describe(days)}"
            )
            continue
        out.append(
            ServiceType(
                name=name,
                agency=str(item.get("agency", "")),
                sla_days=float(days) if days is not None else None,
                working_days=bool(item.get("working_days", False)),
            )
        )
    if problems:
        raise LayerError(problems)
    return tuple(out)


@dataclass(frozen=True)
class ProblemDefaults:
    """The catalogue's problem rules (see :mod:`clustering.problems`).

    Attributes
    ----------
    distance_m, gap_days
        Rule of a type the catalogue gives none for (``[problems]``; 30 m / 14 days when
        absent).
    rules
        Problem key (a service name or a group name) → (distance m, gap days).
    groups
        Service name → group name, for types grouped by ``[problems.groups.NAME]``.
    """

    distance_m: float = 30.0
    gap_days: float = 14.0
    rules: dict[str, tuple[float, float]] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)


def load_problem_defaults(profile: CityProfile) -> ProblemDefaults:
    """Read the problem rules from the service catalogue.

    ``[problems]`` gives ``distance_m`` and ``gap_days`` for every type; a
    ``[[service]]`` entry may give its own ``problem_distance_m`` and
    ``problem_gap_days``; ``[problems.groups.NAME]`` with ``services``, ``distance_m``
    and ``gap_days`` makes several types one problem key.

    Parameters
    ----------
    profile
        The city profile.

    Returns
    -------
    ProblemDefaults
        Built-in defaults when the city has no catalogue.

    Raises
    ------
    LayerError
        Listing every invalid value (the file, the entry, the value, what is allowed).
    """
    path = services_path(profile)
    if path is None or not path.is_file():
        return ProblemDefaults()
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    errors: list[str] = []

    def number(value: object, where: str, fallback: float) -> float:
        if value is None:
            return fallback
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            errors.append(f"{path}: {where} must be a number > 0, got {describe(value)}")
            return fallback
        return float(value)

    table = raw.get("problems", {})
    base_d = number(table.get("distance_m"), "problems.distance_m", 30.0)
    base_g = number(table.get("gap_days"), "problems.gap_days", 14.0)
    rules: dict[str, tuple[float, float]] = {}
    for item in raw.get("service", []):
        name = item.get("name")
        if not isinstance(name, str):
            continue
        if "problem_distance_m" in item or "problem_gap_days" in item:
            rules[name] = (
                number(item.get("problem_distance_m"),
                       f"service {name!r}: problem_distance_m", base_d),
                number(item.get("problem_gap_days"), f"service {name!r}: problem_gap_days",
                       base_g),
            )
    groups: dict[str, str] = {}
    for group, spec in (table.get("groups") or {}).items():
        members = spec.get("services") if isinstance(spec, dict) else None
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            errors.append(f"{path}: problems.groups.{group}.services must be a list of "
                          f"service names, got {describe(members)}")
            continue
        for member in members:
            if member in groups:
                errors.append(f"{path}: service {member!r} is in problem groups "
                              f"{groups[member]!r} and {group!r}; allowed: one group")
            groups[member] = str(group)
        rules[str(group)] = (number(spec.get("distance_m"), f"problems.groups.{group}"
                                    ".distance_m", base_d),
                             number(spec.get("gap_days"), f"problems.groups.{group}.gap_days",
                                    base_g))
    if errors:
        raise LayerError(errors)
    return ProblemDefaults(distance_m=base_d, gap_days=base_g, rules=rules, groups=groups)
