"""Stored rows to GeoReport v2 request records, without a data frame on the way.

A page comes from :meth:`geo.store.base.Store.query_rows` as plain column lists (times
as aware :class:`datetime.datetime`) and is made a column at a time, so a 1,000-row page
costs a few list comprehensions rather than a few pandas calls per column. Times are put
in the city's zone here; JSON and XML write them to the second, as ISO 8601 with the
offset (``2026-01-01T22:04:05-05:00``; :mod:`hotspot311.api.render`). The SLA table is
asked only for rows without a stored ``expected_datetime``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo

import pandas as pd

from hotspot311.api.catalogue import Catalogue
from layers.privacy import PrivacyRules, block_address
from reports.calendar import CalendarConfig
from reports.sla import sla_due_time, sla_due_times

#: A record's fields, in the order GeoReport v2 lists them.
RECORD_FIELDS: Final = ("service_request_id", "status", "status_notes", "service_name",
                        "service_code", "description", "agency_responsible", "service_notice",
                        "requested_datetime", "updated_datetime", "expected_datetime",
                        "address", "address_id", "zipcode", "lat", "long", "media_url")
#: Fields this store has no value for.
_EMPTY: Final = frozenset({"service_notice", "address_id"})
#: The stored columns a record is made of: what the server asks the store for.
ROW_COLUMNS: Final = ("service_request_id", "status", "status_notes", "service_code",
                      "service_name", "agency_responsible", "description",
                      "requested_datetime", "updated_datetime", "expected_datetime",
                      "address", "zipcode", "lat", "lon", "media_url")
#: Text fields copied as they are stored.
_TEXT = ("service_request_id", "status", "status_notes", "service_name", "description",
         "agency_responsible", "address", "zipcode", "media_url")


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _column(cols: Mapping[str, Sequence[Any]], name: str, n: int) -> Sequence[Any]:
    return cols[name] if name in cols else [None] * n


def _number(value: Any) -> float | None:
    if value is None:
        return None
    out = float(value)
    return None if out != out else out


#: Up to this many rows without a stored due time, each is computed on its own
#: (:func:`reports.sla.sla_due_time`, microseconds); more go through one frame.
_ROW_BY_ROW: Final = 32


def _due(cols: Mapping[str, Sequence[Any]], missing: list[int], *, catalogue: Catalogue,
         calendar: CalendarConfig) -> dict[int, datetime | None]:
    """SLA due times of the rows ``missing`` a stored ``expected_datetime``."""
    names, requested = cols["service_name"], cols["requested_datetime"]
    if len(missing) <= _ROW_BY_ROW:
        return {i: sla_due_time(names[i], requested[i], services=catalogue.services,
                                calendar=calendar) for i in missing}
    frame = pd.DataFrame({
        "service_name": [names[i] for i in missing],
        "requested_datetime": pd.to_datetime([requested[i] for i in missing], utc=True)})
    due = sla_due_times(frame, services=catalogue.services, calendar=calendar)
    return {i: (None if pd.isna(t) else pd.Timestamp(t).to_pydatetime())
            for i, t in zip(missing, due, strict=True)}


def records_from_rows(cols: Mapping[str, Sequence[Any]], *, catalogue: Catalogue,
                      calendar: CalendarConfig,
                      privacy: PrivacyRules | None) -> list[dict[str, Any]]:
    """GeoReport v2 request records of one page of stored rows.

    The record's fields are made a column at a time (a page's work is a few list
    comprehensions, and each distinct service name or address is looked at once), then
    zipped into one dict per row.

    Parameters
    ----------
    cols
        Column name → values, in page order (:meth:`geo.store.base.Store.query_rows`).
    catalogue
        Service codes for rows without one; SLA days for ``expected_datetime``.
    calendar
        Time zone and working days of the SLA.
    privacy
        The public view's rules; ``None`` for a reader with an API key (full record).

    Returns
    -------
    list of dict
        In page order; times as aware datetimes in the city's zone (the renderers of
        :mod:`hotspot311.api.render` write them to the second).
    """
    n = len(cols.get("service_request_id", ()))
    if n == 0:
        return []
    zone = _zone(calendar.timezone)
    names = _column(cols, "service_name", n)
    expected = list(_column(cols, "expected_datetime", n))
    missing = [i for i in range(n) if expected[i] is None]
    if missing:
        due = _due({"service_name": names,
                    "requested_datetime": _column(cols, "requested_datetime", n)},
                   missing, catalogue=catalogue, calendar=calendar)
        for i, t in due.items():
            expected[i] = t
    code_of = {name: catalogue.code_of(name) for name in set(names)}
    fields: dict[str, Sequence[Any]] = {c: _column(cols, c, n) for c in _TEXT}
    fields["service_code"] = [c or code_of.get(name) for c, name
                              in zip(_column(cols, "service_code", n), names, strict=True)]
    for field in ("requested_datetime", "updated_datetime"):
        fields[field] = in_zone(_column(cols, field, n), zone)
    fields["expected_datetime"] = in_zone(expected, zone)
    fields["lat"] = [_number(v) for v in _column(cols, "lat", n)]
    fields["long"] = [_number(v) for v in _column(cols, "lon", n)]
    if privacy is not None:
        public_columns(fields, privacy)
    none = [None] * n
    values = [none if key in _EMPTY else fields[key] for key in RECORD_FIELDS]
    return [dict(zip(RECORD_FIELDS, row, strict=True)) for row in zip(*values, strict=True)]


def in_zone(values: Sequence[datetime | None], zone: ZoneInfo) -> list[datetime | None]:
    """Aware times in ``zone`` (``None`` stays ``None``).

    Examples
    --------
    >>> from datetime import UTC
    >>> in_zone([datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), None],
    ...         ZoneInfo("America/New_York"))[0].isoformat()
    '2026-01-01T22:04:05-05:00'
    """
    return [None if v is None else v.astimezone(zone) for v in values]


def public_columns(fields: dict[str, Sequence[Any]], privacy: PrivacyRules) -> None:
    """Apply the public view's rules to a page's record fields, in place: the address
    (to its block, or withheld), the coordinates (rounded) and, for the services the
    rules name (by name or code, any case), the description and photo."""
    n = len(fields["service_request_id"])
    if privacy.address == "none":
        fields["address"] = [None] * n
    elif privacy.address == "block":
        blocks = {a: block_address(a) for a in set(fields["address"])}
        fields["address"] = [blocks[a] for a in fields["address"]]
    digits = privacy.coordinate_decimals
    if digits >= 0:
        for key in ("lat", "long"):
            fields[key] = [None if v is None else round(v, digits) for v in fields[key]]
    withheld = privacy.withhold_description
    if withheld:
        pairs = list(zip(fields["service_name"], fields["service_code"], strict=True))
        hidden = {pair: bool({str(pair[0]).casefold(), str(pair[1]).casefold()} & withheld)
                  for pair in set(pairs)}
        hide = [hidden[pair] for pair in pairs]
        if any(hide):
            for key in ("description", "media_url"):
                fields[key] = [None if h else v for h, v in zip(hide, fields[key], strict=True)]


__all__ = ["RECORD_FIELDS", "ROW_COLUMNS", "in_zone", "public_columns", "records_from_rows"]
