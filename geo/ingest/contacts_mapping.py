"""Contact log mappings: which source column feeds which contact field, and the city's codes.

A 311 center's contact log (calls, emails, web forms, walk-ins, …) is read from CSV with
the same ``FIELD=COLUMN`` pairs (``--map``) and constants (``--set``) as requests, plus a
value map that turns the city's own codes into the canonical values of ``channel`` and
``outcome`` (``--value-map outcome=INFO:information,XFER:referral``) or, in a mapping
TOML file, a ``[values]`` table::

    [columns]
    contact_id = "CallID"
    received_datetime = "Start"

    [constants]
    channel = "phone"

    [values.outcome]
    INFO = "information"
    XFER = "referral"
    SR = "service_request"
    "911" = "transfer_911"
    OTH = "other"

Codes are matched case-insensitively after trimming; a value that is neither a mapped
code nor a canonical value is quarantined by validation with the value named.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pandas as pd

from geo.ingest.mapping import choose_columns, mapped_frame
from geo.ingest.readers import ROW_COLUMN
from hotspot311.errors import MappingError, describe

#: Canonical contact fields, in display order.
CONTACT_FIELDS: Final = (
    "contact_id",
    "received_datetime",
    "channel",
    "outcome",
    "department",
    "service_request_id",
    "answered",
    "wait_seconds",
    "handle_seconds",
    "team",
)
#: Fields a contact source must provide (a column or a constant).
CONTACT_REQUIRED: Final = ("contact_id", "received_datetime", "channel", "outcome")
#: Allowed canonical values of the coded fields.
CHANNELS: Final = ("phone", "email", "web", "walk_in", "social", "app", "text")
OUTCOMES: Final = ("information", "referral", "service_request", "transfer_911", "other")
CODED: Final[dict[str, tuple[str, ...]]] = {"channel": CHANNELS, "outcome": OUTCOMES}

#: Source column names (lower-cased) known to mean a contact field.
CONTACT_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "contact_id": ("contact_id", "call_id", "interaction_id", "contactid", "callid"),
    "received_datetime": ("received_datetime", "received", "start_time", "call_start",
                          "created_date"),
    "channel": ("channel", "contact_channel", "medium"),
    "outcome": ("outcome", "disposition", "resolution", "call_outcome"),
    "department": ("department", "agency", "agency_responsible"),
    "service_request_id": ("service_request_id", "request_id", "case_id", "sr_number"),
    "answered": ("answered", "is_answered"),
    "wait_seconds": ("wait_seconds", "wait_time", "queue_seconds"),
    "handle_seconds": ("handle_seconds", "handle_time", "talk_seconds"),
    "team": ("team", "agent_team", "queue"),
}


@dataclass(frozen=True)
class ContactMapping:
    """How to find each contact field in a source, and the city's codes.

    Attributes
    ----------
    columns
        Contact field → source column.
    constants
        Contact field → value for every row.
    values
        Coded field (``channel``, ``outcome``) → {city code (casefolded) → canonical value}.
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def from_options(cls, pairs: Iterable[str] = (), constants: Iterable[str] = (),
                     value_maps: Iterable[str] = ()) -> ContactMapping:
        """Parse ``--map``, ``--set`` and ``--value-map`` options, checking every name.

        Parameters
        ----------
        pairs
            ``FIELD=COLUMN``.
        constants
            ``FIELD=VALUE``.
        value_maps
            ``FIELD=CODE:VALUE,CODE:VALUE``.

        Returns
        -------
        ContactMapping
            The mapping.

        Raises
        ------
        MappingError
            Listing every malformed option, unknown field and unknown canonical value.

        Examples
        --------
        >>> m = ContactMapping.from_options(
        ...     value_maps=["outcome=INFO:information,911:transfer_911"])
        >>> dict(m.values["outcome"])
        {'info': 'information', '911': 'transfer_911'}
        """
        problems: list[str] = []
        parsed: list[dict[str, str]] = [{}, {}]
        for which, items, flag in ((0, pairs, "--map"), (1, constants, "--set")):
            for pair in items:
                name, sep, value = pair.partition("=")
                name = name.strip()
                if not sep or not name or not value.strip():
                    problems.append(f"{flag}: got {describe(pair)}; expected FIELD=VALUE")
                elif name not in CONTACT_FIELDS:
                    problems.append(f"{flag}: field {name!r} is not a contact field; allowed: "
                                    f"{', '.join(CONTACT_FIELDS)}")
                else:
                    parsed[which][name] = value.strip()
        values: dict[str, dict[str, str]] = {}
        for item in value_maps:
            name, sep, rest = item.partition("=")
            name = name.strip()
            if not sep or not rest.strip():
                problems.append(f"--value-map: got {describe(item)}; expected "
                                "FIELD=CODE:VALUE,CODE:VALUE")
                continue
            codes: dict[str, str] = {}
            for part in rest.split(","):
                code, colon, value = part.rpartition(":")
                if not colon or not code.strip() or not value.strip():
                    problems.append(f"--value-map {name}: got {describe(part)}; expected "
                                    "CODE:VALUE")
                    continue
                codes[code.strip()] = value.strip()
            values[name] = codes
        problems += _check_values(values, "--value-map")
        for name, value in parsed[1].items():
            if name in CODED and value not in CODED[name]:
                problems.append(f"--set {name}: got {describe(value)}; allowed: "
                                f"{', '.join(CODED[name])}")
        if problems:
            raise MappingError(problems)
        return cls(columns=parsed[0], constants=parsed[1], values=_folded(values))

    @classmethod
    def from_toml(cls, path: str | Path) -> ContactMapping:
        """Read a mapping file with ``[columns]``, ``[constants]`` and ``[values.FIELD]``."""
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise MappingError(f"mapping file {path}: cannot be read as TOML ({err})") from err
        tables: dict[str, Any] = raw.get("values", {})
        if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
            raise MappingError(f"mapping file {path}: [values] must hold one table per field, "
                               "e.g. [values.outcome] with CODE = \"VALUE\" lines")
        value_maps = [f"{name}=" + ",".join(f"{k}:{v}" for k, v in codes.items())
                      for name, codes in tables.items() if codes]
        return cls.from_options([f"{k}={v}" for k, v in raw.get("columns", {}).items()],
                                [f"{k}={v}" for k, v in raw.get("constants", {}).items()],
                                value_maps)

    def merged(self, other: ContactMapping) -> ContactMapping:
        """This mapping with ``other``'s entries taking precedence."""
        values = {k: dict(v) for k, v in self.values.items()}
        for name, codes in other.values.items():
            values.setdefault(name, {}).update(codes)
        return ContactMapping(columns={**self.columns, **other.columns},
                              constants={**self.constants, **other.constants}, values=values)


def _check_values(values: Mapping[str, Mapping[str, str]], where: str) -> list[str]:
    problems = []
    for name, codes in values.items():
        if name not in CODED:
            problems.append(f"{where}: field {name!r} takes no value map; allowed: "
                            f"{', '.join(CODED)}")
            continue
        for code, value in codes.items():
            if value not in CODED[name]:
                problems.append(f"{where} {name}: code {code!r} maps to {value!r}, which is not "
                                f"a {name}; allowed: {', '.join(CODED[name])}")
    return problems


def _folded(values: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    return {name: {code.casefold(): v for code, v in codes.items()}
            for name, codes in values.items()}


def apply_contact_mapping(raw: pd.DataFrame, mapping: ContactMapping) -> pd.DataFrame:
    """Rename source columns to contact fields.

    Parameters
    ----------
    raw
        Frame from :func:`geo.ingest.readers.read_requests` (every value text).
    mapping
        The user's mapping.

    Returns
    -------
    pandas.DataFrame
        Contact fields (missing ones absent), ``_source_row``, and every unmapped source
        column prefixed ``src:``.

    Raises
    ------
    MappingError
        When a mapped column is missing or a required field is unmapped; lists the
        file's columns.
    """
    columns = [c for c in raw.columns if c != ROW_COLUMN]
    chosen, problems = choose_columns(columns, raw.columns, mapping.columns, mapping.constants,
                                      fields=CONTACT_FIELDS, aliases=CONTACT_ALIASES)
    missing = [f for f in CONTACT_REQUIRED if f not in chosen and f not in mapping.constants]
    if missing:
        shown = ", ".join(describe(c, 40) for c in columns[:40])
        problems.append(f"required contact fields not mapped: {', '.join(missing)}. The file's "
                        f"columns are: {shown}. Map them with --map FIELD=COLUMN or give one "
                        "value with --set FIELD=VALUE")
    if problems:
        raise MappingError(problems)
    return mapped_frame(raw, chosen, mapping.constants, columns)
