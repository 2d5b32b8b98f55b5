"""Stored rows to GeoReport v2 request records, without a data frame on the way.

A page comes from :meth:`geo.store.base.Store.query_rows` as plain column lists (times
as aware :class:`datetime.datetime`), so one request costs a few microseconds per value
rather than a few pandas calls per column. Times are put in the city's zone and cut to
the second here; JSON and XML write them as ISO 8601 with the offset
(``2026-01-01T22:04:05-05:00``). The SLA table is asked only for rows without a stored
``expected_datetime``.
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

#: Text fields copied as they are stored.
_TEXT = ("service_request_id", "status", "status_notes", "service_name", "description",
         "agency_responsible", "address", "zipcode", "media_url")


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_second(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    """An aware time in ``zone``, to the second (``None`` stays ``None``).

    Examples
    --------
    >>> from datetime import UTC
    >>> local_second(datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
    ...              ZoneInfo("America/New_York")).isoformat()
    '2026-01-01T22:04:05-05:00'
    """
    if value is None:
        return None
    return value.astimezone(zone).replace(microsecond=0)


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
        In page order; times as aware datetimes in the city's zone, to the second.
    """
    n = len(cols.get("service_request_id", ()))
    if n == 0:
        return []
    zone = _zone(calendar.timezone)
    text = {c: _column(cols, c, n) for c in _TEXT}
    stored_codes = _column(cols, "service_code", n)
    requested = _column(cols, "requested_datetime", n)
    updated = _column(cols, "updated_datetime", n)
    expected = list(_column(cols, "expected_datetime", n))
    missing = [i for i in range(n) if expected[i] is None]
    if missing:
        due = _due({"service_name": text["service_name"], "requested_datetime": requested},
                   missing, catalogue=catalogue, calendar=calendar)
        for i, t in due.items():
            expected[i] = t
    lats, lons = _column(cols, "lat", n), _column(cols, "lon", n)
    codes = {name: catalogue.code_of(name) for name in set(text["service_name"])}
    out = []
    for i in range(n):
        name = text["service_name"][i]
        rec: dict[str, Any] = {
            "service_request_id": text["service_request_id"][i],
            "status": text["status"][i],
            "status_notes": text["status_notes"][i],
            "service_name": name,
            "service_code": stored_codes[i] or codes.get(name),
            "description": text["description"][i],
            "agency_responsible": text["agency_responsible"][i],
            "service_notice": None,
            "requested_datetime": local_second(requested[i], zone),
            "updated_datetime": local_second(updated[i], zone),
            "expected_datetime": local_second(expected[i], zone),
            "address": text["address"][i],
            "address_id": None,
            "zipcode": text["zipcode"][i],
            "lat": _number(lats[i]),
            "long": _number(lons[i]),
            "media_url": text["media_url"][i],
        }
        if privacy is not None:
            public_view(rec, privacy)
        out.append(rec)
    return out


def public_view(rec: dict[str, Any], privacy: PrivacyRules) -> None:
    """Apply the public view's rules to one record, in place."""
    if privacy.address == "none":
        rec["address"] = None
    elif privacy.address == "block":
        rec["address"] = block_address(rec["address"])
    if privacy.coordinate_decimals >= 0:
        for key in ("lat", "long"):
            if rec[key] is not None:
                rec[key] = round(float(rec[key]), privacy.coordinate_decimals)
    withheld = privacy.withhold_description
    if withheld and ({str(rec["service_name"]).casefold(), str(rec["service_code"]).casefold()}
                     & withheld):
        rec["description"] = None
        rec["media_url"] = None


__all__ = ["local_second", "public_view", "records_from_rows"]
