"""The city's service catalogue as Open311 serves it (``services.json``, definitions).

Codes and attributes come from :mod:`layers.service_attributes`; SLA days from
:mod:`layers.services`. A stored request without a ``service_code`` gets the code of its
service name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from layers.profile import CityProfile
from layers.service_attributes import ServiceDefinition, load_definitions
from layers.services import ServiceType, load_services


@dataclass(frozen=True)
class Catalogue:
    """The services of one city, by code and by name."""

    definitions: tuple[ServiceDefinition, ...]
    services: tuple[ServiceType, ...]

    @classmethod
    def for_city(cls, profile: CityProfile) -> Catalogue:
        """Read the catalogue beside ``profile``."""
        return cls(load_definitions(profile), load_services(profile))

    def by_code(self, code: str) -> ServiceDefinition | None:
        """The service with this code, or ``None``."""
        return next((d for d in self.definitions if d.code == code), None)

    def code_of(self, name: object) -> str | None:
        """The code of a service name (case-insensitive), or ``None``."""
        if not isinstance(name, str):
            return None
        folded = name.casefold()
        return next((d.code for d in self.definitions if d.name.casefold() == folded), None)

    def sla(self, name: str) -> ServiceType | None:
        """The SLA entry of a service name, or ``None``."""
        folded = name.casefold()
        return next((s for s in self.services if s.name.casefold() == folded), None)

    def names_for(self, codes: Sequence[str]) -> tuple[list[str], list[str]]:
        """Service names of ``codes``, and the codes that are not in the catalogue."""
        names, unknown = [], []
        for code in codes:
            found = self.by_code(code)
            if found is None:
                unknown.append(code)
            else:
                names.append(found.name)
        return names, unknown

    def service_list(self) -> list[dict[str, object]]:
        """``services.json``: one entry per service."""
        return [{"service_code": d.code, "service_name": d.name,
                 "description": d.description or d.name, "metadata": d.metadata,
                 "type": "realtime", "keywords": ", ".join(d.keywords),
                 "group": d.group or d.agency} for d in self.definitions]

    def definition(self, d: ServiceDefinition) -> dict[str, object]:
        """``services/{code}.json``: the service's attributes."""
        return {"service_code": d.code, "attributes": [
            {"variable": a.variable, "code": a.code, "datatype": a.datatype,
             "required": a.required, "datatype_description": a.datatype_description,
             "order": a.order, "description": a.description,
             "values": [{"key": k, "name": n} for k, n in a.values]}
            for a in d.attributes]}


__all__ = ["Catalogue"]
