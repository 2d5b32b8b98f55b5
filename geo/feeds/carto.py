"""CARTO SQL API tables (Philadelphia's ``public_cases_fc``).

Each page is one query sent as ``q`` to the SQL API URL
(``https://phl.carto.com/api/v2/sql``)::

    SELECT * FROM "public_cases_fc"
    WHERE updated_datetime > 'T' OR (updated_datetime = 'T' AND cartodb_id > ID)
    ORDER BY updated_datetime, cartodb_id LIMIT N

The SQL API takes no bind parameters, so every value in the text is made here from a
typed value: the table name must be a plain identifier (and is double-quoted), the time
is parsed and written again as ISO 8601, the id is an integer. Rows without an
``updated_datetime`` are read by a first pass ordered by ``cartodb_id`` alone (a
watermark with ``phase`` ``null``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Final

from geo.feeds.client import FeedClient, readable
from geo.feeds.records import Page, iso_z, parse_time, records_frame
from geo.ingest.readers import Format
from geo.store.sources import SourceConfig
from hotspot311.errors import FeedError, InputError, describe

DEFAULT_COLUMNS: Final[dict[str, str]] = {}
_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_table(table: str | None) -> str:
    """The table name, when it is a plain SQL identifier.

    Raises
    ------
    InputError
        Naming the value and what is allowed.

    Examples
    --------
    >>> check_table("public_cases_fc")
    'public_cases_fc'
    """
    if table is None or not _IDENTIFIER.match(table):
        raise InputError(f"--table: got {describe(table)}; expected a table name of letters, "
                         "digits and _ (not starting with a digit), such as public_cases_fc")
    return table


def query(table: str, watermark: dict[str, str] | None, limit: int) -> str:
    r"""The SQL of the page after ``watermark``.

    Examples
    --------
    >>> print(query("cases", {"updated": "2024-05-01T08:00:00Z", "id": "41"}, 500)
    ...       .replace(" AND (", "\nAND (").replace(" OR", "\nOR").replace(" ORDER", "\nORDER"))
    SELECT * FROM "cases" WHERE updated_datetime IS NOT NULL
    AND (updated_datetime > '2024-05-01T08:00:00Z'
    OR (updated_datetime = '2024-05-01T08:00:00Z' AND cartodb_id > 41))
    ORDER BY updated_datetime, cartodb_id LIMIT 500
    >>> print(query("t", {"phase": "null", "id": "7"}, 10))
    SELECT * FROM "t" WHERE updated_datetime IS NULL AND cartodb_id > 7 ORDER BY cartodb_id LIMIT 10
    """
    name = '"' + check_table(table) + '"'
    wm = watermark or {}
    limit = int(limit)
    if wm.get("phase") == "null" or not wm:
        last = int(wm.get("id", -1)) if wm.get("phase") == "null" else -1
        # the SQL API takes no parameters: every value here is an int or checked name
        return (f"SELECT * FROM {name} WHERE updated_datetime IS NULL AND "  # noqa: S608
                f"cartodb_id > {last} ORDER BY cartodb_id LIMIT {limit}")
    when = "'" + iso_z(parse_time(wm["updated"], what="watermark")) + "'"
    if wm.get("id"):
        after = (f"updated_datetime > {when} OR (updated_datetime = {when} AND cartodb_id > "
                 f"{int(wm['id'])})")
    else:
        after = f"updated_datetime >= {when}"
    return (f"SELECT * FROM {name} WHERE updated_datetime IS NOT NULL AND ({after}) "  # noqa: S608
            f"ORDER BY updated_datetime, cartodb_id LIMIT {limit}")


def pages(config: SourceConfig, client: FeedClient, *, watermark: dict[str, str] | None,
          now: datetime) -> Iterator[Page]:
    """The table's rows after ``watermark``, one page per query.

    A sync from nothing first reads the rows without ``updated_datetime`` (by
    ``cartodb_id``), then every other row by time.

    Raises
    ------
    FeedError
        When the API answers with an error object or rows without ``cartodb_id``.
    """
    number = 0
    wm = dict(watermark) if watermark else {}
    while True:
        number += 1
        sql = query(config.table or "", wm, config.page_size)
        doc, response = client.get_json(config.url, params={"q": sql}, page=number)
        rows = doc.get("rows") if isinstance(doc, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise FeedError(f"expected an object with 'rows' (a list of objects); got "
                            f"{describe(doc, 120)}", source=config.name,
                            url=readable(response.url), page=number)
        fields = list(doc.get("fields") or {})
        null_phase = not wm or wm.get("phase") == "null"
        if rows:
            last = rows[-1]
            if last.get("cartodb_id") is None:
                raise FeedError("rows lack cartodb_id", source=config.name,
                                url=readable(response.url), page=number)
            if null_phase:
                wm = {"phase": "null", "id": str(int(last["cartodb_id"]))}
            else:
                wm = {"updated": str(last["updated_datetime"]),
                      "id": str(int(last["cartodb_id"]))}
        full = len(rows) >= config.page_size
        if null_phase and not full:
            wm = {"updated": "1970-01-01T00:00:00Z"}  # the rows with a time come next
        yield Page(records_frame(rows, columns=fields), Format.PHILA, dict(wm),
                   readable(response.url), number)
        if not full and not null_phase:
            return
