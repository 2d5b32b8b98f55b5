"""Column mappings: which source column feeds which canonical field.

A mapping starts from the format's known aliases (Philadelphia's and Open311's names),
then applies the user's ``FIELD=COLUMN`` pairs (``--map`` or a TOML file with a
``[columns]`` table) and constant values (``--set`` or a ``[constants]`` table)::

    [columns]
    service_request_id = "CaseID"
    requested_datetime = "CreatedDate"
    lat = "Latitude"
    lon = "Longitude"

    [constants]
    service_name = "Graffiti Removal"

Source columns that feed no field are kept (as ``extra``), never dropped.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pandas as pd

from geo.ingest.readers import GEOMETRY_ERROR_COLUMN, ROW_COLUMN, Format
from hotspot311.errors import MappingError, describe
from hotspot311.schema import CANONICAL_FIELDS, REQUIRED_FIELDS

#: Source column names (lower-cased) known to mean a canonical field.
ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "service_request_id": (
        "service_request_id",
        "request_id",
        "case_id",
        "caseid",
        "id",
        "objectid",
    ),
    "status": ("status",),
    "status_notes": ("status_notes",),
    "service_code": ("service_code",),
    "service_name": ("service_name", "type", "subject", "request_type", "case_type"),
    "agency_responsible": ("agency_responsible", "department", "agency"),
    "description": ("description", "service_notice"),
    "requested_datetime": (
        "requested_datetime",
        "start_time",
        "requested_date",
        "created_date",
        "createddate",
    ),
    "updated_datetime": ("updated_datetime", "updated_date", "last_updated"),
    "expected_datetime": ("expected_datetime", "expected_date", "due_date"),
    "closed_datetime": ("closed_datetime", "close_time", "closed_date", "closeddate"),
    "address": ("address", "address_string", "location"),
    "zipcode": ("zipcode", "zip", "zip_code", "postal_code"),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "long", "lng", "longitude"),
    "media_url": ("media_url",),
    "source": ("source", "channel"),
}

#: Keys of ``ALIASES`` that a plain ``csv`` read may *not* guess (too generic).
_GENERIC: Final = frozenset({"id", "objectid", "type", "location", "subject"})


@dataclass(frozen=True)
class ColumnMapping:
    """How to find each canonical field in a source.

    Attributes
    ----------
    columns
        Canonical field → source column, as given by the user.
    constants
        Canonical field → value for every row (e.g. a service name the file lacks).
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_pairs(cls, pairs: Iterable[str] = (), constants: Iterable[str] = ()) -> ColumnMapping:
        """Parse ``FIELD=COLUMN`` and ``FIELD=VALUE`` pairs, checking every field name.

        Raises
        ------
        MappingError
            Listing every malformed pair and unknown field.
        """
        problems: list[str] = []
        parsed: list[dict[str, str]] = [{}, {}]
        for which, items, flag in ((0, pairs, "--map"), (1, constants, "--set")):
            for pair in items:
                name, sep, value = pair.partition("=")
                name = name.strip()
                if not sep or not name or not value.strip():
                    problems.append(f"{flag}: got {describe(pair)}; expected FIELD=VALUE")
                elif name not in CANONICAL_FIELDS:
                    problems.append(
                        f"{flag}: field {name!r} is not a canonical field; allowed: "
                        f"{', '.join(CANONICAL_FIELDS)}"
                    )
                else:
                    parsed[which][name] = value.strip()
        if problems:
            raise MappingError(problems)
        return cls(columns=parsed[0], constants=parsed[1])

    @classmethod
    def from_toml(cls, path: str | Path) -> ColumnMapping:
        """Read a mapping file with ``[columns]`` and ``[constants]`` tables."""
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise MappingError(f"mapping file {path}: cannot be read as TOML ({err})") from err
        cols = raw.get("columns", {})
        consts = raw.get("constants", {})
        return cls.from_pairs(
            [f"{k}={v}" for k, v in cols.items()], [f"{k}={v}" for k, v in consts.items()]
        )

    def merged(self, other: ColumnMapping) -> ColumnMapping:
        """This mapping with ``other``'s entries taking precedence."""
        return ColumnMapping(
            columns={**self.columns, **other.columns},
            constants={**self.constants, **other.constants},
        )


def apply_mapping(raw: pd.DataFrame, mapping: ColumnMapping, *, fmt: Format) -> pd.DataFrame:
    """Rename source columns to canonical fields.

    Parameters
    ----------
    raw
        Frame from :func:`geo.ingest.readers.read_requests`.
    mapping
        The user's mapping (may be empty).
    fmt
        Source format; ``csv`` guesses only unambiguous aliases.

    Returns
    -------
    pandas.DataFrame
        Canonical columns (missing ones absent), the row number, and every unmapped
        source column under its own name prefixed ``src:``.

    Raises
    ------
    MappingError
        When a mapped column is not in the source, or a required field is unmapped;
        every problem is listed along with the columns the file has.
    """
    columns = [c for c in raw.columns if c not in (ROW_COLUMN, GEOMETRY_ERROR_COLUMN)]
    if raw.empty and not columns:  # a JSON list / FeatureCollection with no records
        return pd.DataFrame({ROW_COLUMN: raw.get(ROW_COLUMN, pd.Series([], dtype="int64"))})
    chosen, problems = choose_columns(
        columns, raw.columns, mapping.columns, mapping.constants, fields=CANONICAL_FIELDS,
        aliases=ALIASES, skip=_GENERIC if fmt is Format.CSV else frozenset())
    missing = [f for f in REQUIRED_FIELDS if f not in chosen and f not in mapping.constants]
    has_xy = "lat" in chosen and "lon" in chosen
    if not has_xy and "address" not in chosen:
        missing.append("lat and lon, or address")
    if missing:
        shown = ", ".join(describe(c, 40) for c in columns[:40])
        more = f" and {len(columns) - 40} more" if len(columns) > 40 else ""
        problems.append(
            f"required fields not mapped: {', '.join(missing)}. The file's columns are: "
            f"{shown}{more}. Map them with --map FIELD=COLUMN (or a mapping TOML file)"
        )
    if problems:
        raise MappingError(problems)
    kept = (GEOMETRY_ERROR_COLUMN,) if GEOMETRY_ERROR_COLUMN in raw.columns else ()
    return mapped_frame(raw, chosen, mapping.constants, columns, kept=kept)


def choose_columns(
    columns: Sequence[str],
    present: Iterable[object],
    explicit: Mapping[str, str],
    constants: Mapping[str, str],
    *,
    fields: Sequence[str],
    aliases: Mapping[str, Sequence[str]],
    skip: Collection[str] = frozenset(),
) -> tuple[dict[str, str], list[str]]:
    """Pick the source column of each field: the user's ``--map`` first, then aliases.

    Parameters
    ----------
    columns
        The source's data columns, in order (aliases match them case-insensitively).
    present
        Every column of the source (a ``--map`` must name one of them).
    explicit
        Field → column from ``--map`` or a mapping file.
    constants
        Fields given one value (``--set``); they take no column.
    fields
        The fields to look for, in order (earlier fields take an alias first).
    aliases
        Field → lower-case column names it is recognised by.
    skip
        Aliases not to use (too generic for this source).

    Returns
    -------
    tuple
        Field → column, and the problems found (a ``--map`` naming a missing column).
    """
    lower = {c.lower(): c for c in columns}
    names = set(present)
    problems: list[str] = []
    chosen: dict[str, str] = {}
    for name, col in explicit.items():
        if col not in names:
            problems.append(f"--map {name}={col}: column {col!r} is not in the file")
        else:
            chosen[name] = col
    used = set(chosen.values())
    for name in fields:
        if name in chosen or name in constants:
            continue
        for alias in aliases.get(name, ()):
            if alias in skip:
                continue
            found = lower.get(alias)
            if found is not None and found not in used:
                chosen[name] = found
                used.add(found)
                break
    return chosen, problems


def mapped_frame(raw: pd.DataFrame, chosen: Mapping[str, str], constants: Mapping[str, str],
                 columns: Sequence[str], *, kept: Sequence[str] = ()) -> pd.DataFrame:
    """The mapped frame: the row number, each chosen field, each constant, the ``kept``
    columns as they are, and every unused source column prefixed ``src:``."""
    out = pd.DataFrame({ROW_COLUMN: raw[ROW_COLUMN]}, index=raw.index)
    for name, col in chosen.items():
        out[name] = raw[col]
    for name, value in constants.items():
        out[name] = value
    for col in kept:
        out[col] = raw[col]
    used = set(chosen.values())
    for col in columns:
        if col not in used:
            out[f"src:{col}"] = raw[col]
    return out
