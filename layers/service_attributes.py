"""Open311 service definitions: codes, descriptions and attributes of the catalogue.

A ``[[service]]`` entry of ``<profile>.services.toml`` may carry, beside its SLA:

- ``code``: the Open311 ``service_code`` (default: the name in lower case, runs of other
  characters as ``-``, e.g. ``street-light-outage``);
- ``description``, ``keywords`` (a list), ``group``;
- ``[[service.attribute]]`` tables: ``code``, ``datatype`` (one of :data:`DATATYPES`),
  ``description``, ``required``, ``variable`` (default true), ``order``, ``datatype_description``
  and, for lists, ``values`` as ``[{key = "…", name = "…"}]``.

A service with attributes has ``metadata = true`` in ``services.json`` and its definition
at ``services/{code}.json``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any, Final

from hotspot311.errors import LayerError, describe
from layers.profile import CityProfile
from layers.services import services_path

DATATYPES: Final = ("string", "number", "datetime", "text", "singlevaluelist",
                    "multivaluelist")
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class ServiceAttribute:
    """One attribute of a service definition (GeoReport v2)."""

    code: str
    datatype: str
    description: str
    required: bool = False
    variable: bool = True
    order: int = 0
    datatype_description: str = ""
    values: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ServiceDefinition:
    """One service of the catalogue as Open311 shows it."""

    code: str
    name: str
    agency: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    group: str = ""
    attributes: tuple[ServiceAttribute, ...] = ()

    @property
    def metadata(self) -> bool:
        """Whether the service has a definition with attributes."""
        return bool(self.attributes)


def slug(name: str) -> str:
    """The default service code of a name.

    Examples
    --------
    >>> slug("Rubbish/Recyclable Material Collection")
    'rubbish-recyclable-material-collection'
    """
    return _SLUG.sub("-", name.casefold()).strip("-")


def load_definitions(profile: CityProfile) -> tuple[ServiceDefinition, ...]:
    """The city's services with their Open311 codes and attributes.

    Parameters
    ----------
    profile
        The city profile; its ``<stem>.services.toml`` sibling is read.

    Returns
    -------
    tuple of ServiceDefinition
        In file order; empty when the city has no catalogue.

    Raises
    ------
    LayerError
        Listing every invalid entry (file, service, field, value, what is allowed).
    """
    path = services_path(profile)
    if path is None or not path.is_file():
        return ()
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    problems: list[str] = []
    out: list[ServiceDefinition] = []
    seen: dict[str, str] = {}
    for item in raw.get("service", []):
        name = item.get("name")
        if not isinstance(name, str) or not name:
            continue  # load_services reports it
        code = str(item.get("code") or slug(name))
        if code in seen:
            problems.append(f"{path}: service {name!r}: code {code!r} is also the code of "
                            f"{seen[code]!r}; allowed: one service per code")
        seen[code] = name
        attrs = tuple(_attribute(a, f"{path}: service {name!r}", problems)
                      for a in item.get("attribute", []))
        out.append(ServiceDefinition(
            code=code, name=name, agency=str(item.get("agency", "")),
            description=str(item.get("description", "")),
            keywords=tuple(str(k) for k in item.get("keywords", [])),
            group=str(item.get("group", "")),
            attributes=tuple(sorted((a for a in attrs if a is not None),
                                    key=lambda a: a.order))))
    if problems:
        raise LayerError(problems)
    return tuple(out)


def _attribute(item: dict[str, Any], where: str, problems: list[str]) -> ServiceAttribute | None:
    code, datatype = item.get("code"), item.get("datatype", "string")
    if not isinstance(code, str) or not code:
        problems.append(f"{where}: attribute.code must be text, got {describe(code)}")
        return None
    if datatype not in DATATYPES:
        problems.append(f"{where}: attribute {code!r}: datatype {describe(datatype)} is not "
                        f"one of {', '.join(DATATYPES)}")
        return None
    values = tuple((str(v.get("key")), str(v.get("name", v.get("key"))))
                   for v in item.get("values", []) if isinstance(v, dict))
    if datatype.endswith("valuelist") and not values:
        problems.append(f"{where}: attribute {code!r}: a {datatype} needs values "
                        "[{key = ..., name = ...}]")
    return ServiceAttribute(
        code=code, datatype=datatype, description=str(item.get("description", code)),
        required=bool(item.get("required", False)), variable=bool(item.get("variable", True)),
        order=int(item.get("order", 0)),
        datatype_description=str(item.get("datatype_description", "")), values=values)


def check_attributes(definition: ServiceDefinition,
                     given: dict[str, list[str]]) -> tuple[dict[str, object], list[str]]:
    """Validate posted ``attribute[CODE]`` values against a service definition.

    Parameters
    ----------
    definition
        The service.
    given
        Attribute code → the values posted for it.

    Returns
    -------
    tuple
        The accepted values (one value, or a list for a ``multivaluelist``), and the
        problems (each naming the attribute, the value and what is allowed).
    """
    known = {a.code: a for a in definition.attributes}
    problems = [f"attribute[{code}]: not an attribute of service {definition.code!r}; "
                f"allowed: {sorted(known) or 'none'}" for code in given if code not in known]
    out: dict[str, object] = {}
    for attr in definition.attributes:
        values = [v for v in given.get(attr.code, []) if v != ""]
        if not values:
            if attr.required and attr.variable:
                problems.append(f"attribute[{attr.code}]: required ({attr.description})")
            continue
        keys = [k for k, _ in attr.values]
        if attr.datatype in ("singlevaluelist", "multivaluelist"):
            bad = [v for v in values if v not in keys]
            if bad or (attr.datatype == "singlevaluelist" and len(values) > 1):
                problems.append(f"attribute[{attr.code}]: {describe(values)} is not allowed; "
                                f"allowed: {'one of' if attr.datatype[0] == 's' else 'any of'}"
                                f" {keys}")
                continue
            out[attr.code] = values if attr.datatype == "multivaluelist" else values[0]
        elif attr.datatype == "number":
            try:
                float(values[0])
            except ValueError:
                problems.append(f"attribute[{attr.code}]: {describe(values[0])} is not a number")
                continue
            out[attr.code] = values[0]
        else:
            out[attr.code] = values[0][:4000]
    return out, problems


__all__ = ["DATATYPES", "ServiceAttribute", "ServiceDefinition", "check_attributes",
           "load_definitions", "slug"]
