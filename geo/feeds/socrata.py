"""Socrata SODA datasets (NYC 311 ``erm2-nwe9``, Chicago, SF, Austin, Boston …).

Pages come from ``{url}/resource/{dataset}.json`` ordered by the system fields
``:updated_at, :id`` with keyset continuation::

    $select=:*, *
    $where=:updated_at > 'T' OR (:updated_at = 'T' AND :id > 'ID')
    $order=:updated_at, :id
    $limit=N

(not ``$offset``, which skips or repeats rows when the data change between pages). The
app token goes in the ``X-App-Token`` header. The column list comes from the
``X-SODA2-Fields`` header, since Socrata leaves null values out of each record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final

from geo.feeds.client import FeedClient, readable
from geo.feeds.records import Page, iso_z, parse_time, records_frame
from geo.ingest.readers import Format
from geo.store.sources import SourceConfig
from hotspot311.errors import FeedError

#: Canonical fields mapped by default (the user's ``--map`` wins).
DEFAULT_COLUMNS: Final = {"updated_datetime": ":updated_at"}
TOKEN_HEADER: Final = "X-App-Token"


def endpoint(config: SourceConfig) -> str:
    """The dataset's JSON resource URL."""
    return f"{config.url.rstrip('/')}/resource/{config.dataset}.json"


def soql_text(value: str) -> str:
    """A SoQL string literal (single quotes doubled).

    Examples
    --------
    >>> soql_text("it's")
    "'it''s'"
    """
    return "'" + value.replace("'", "''") + "'"


def where_after(watermark: dict[str, str] | None) -> str | None:
    r"""The ``$where`` clause of the rows after ``watermark`` (``None``: every row).

    The time is parsed and written again, so nothing of the stored text reaches the
    query but a timestamp and a quoted id.

    Examples
    --------
    >>> print(where_after({"updated": "2024-05-01T08:00:00.25Z", "id": "row-a'b"})
    ...       .replace(" OR", "\nOR"))
    :updated_at > '2024-05-01T08:00:00.250Z'
    OR (:updated_at = '2024-05-01T08:00:00.250Z' AND :id > 'row-a''b')
    >>> where_after({"updated": "2024-05-01"})
    ":updated_at >= '2024-05-01T00:00:00.000Z'"
    """
    if not watermark or not watermark.get("updated"):
        return None
    when = soql_text(iso_z(parse_time(watermark["updated"], what="watermark"), millis=True))
    if not watermark.get("id"):
        return f":updated_at >= {when}"
    return f":updated_at > {when} OR (:updated_at = {when} AND :id > {soql_text(watermark['id'])})"


def pages(config: SourceConfig, client: FeedClient, *, watermark: dict[str, str] | None,
          now: datetime) -> Iterator[Page]:
    """The dataset's rows after ``watermark``, one page per request.

    Raises
    ------
    FeedError
        When a page is not a JSON list of objects or lacks the system fields.
    """
    url = endpoint(config)
    number = 0
    while True:
        number += 1
        params: dict[str, Any] = {"$select": ":*, *", "$order": ":updated_at, :id",
                                  "$limit": config.page_size}
        where = where_after(watermark)
        if where:
            params["$where"] = where
        doc, response = client.get_json(url, params=params, page=number)
        if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
            raise FeedError("expected a JSON list of row objects", source=config.name,
                            url=readable(response.url), page=number)
        if doc:
            last = doc[-1]
            if not last.get(":updated_at") or not last.get(":id"):
                raise FeedError("rows lack the system fields :updated_at and :id (is "
                                "$select=:*, * honoured?)", source=config.name,
                                url=readable(response.url), page=number)
            watermark = {"updated": str(last[":updated_at"]), "id": str(last[":id"])}
        fields = _fields(response.headers.get("X-SODA2-Fields"))
        yield Page(records_frame(doc, columns=fields), Format.CSV, watermark,
                   readable(response.url), number)
        if len(doc) < config.page_size:
            return


def _fields(header: str | None) -> list[str]:
    """Column names of the ``X-SODA2-Fields`` header (a JSON list), else none."""
    if not header:
        return []
    try:
        names = json.loads(header)
    except json.JSONDecodeError:
        return []
    return [str(n) for n in names] if isinstance(names, list) else []
