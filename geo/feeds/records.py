"""Feed records (JSON objects) as the raw text frames the ingest pipeline reads; pages;
watermark times."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from geo.ingest.model import TEXT, text_frame
from geo.ingest.readers import GEOMETRY_ERROR_COLUMN, ROW_COLUMN, Format
from hotspot311.errors import InputError, describe


def records_frame(records: Sequence[dict[str, Any]], *,
                  columns: Sequence[str] = ()) -> pd.DataFrame:
    """One row of text per record, as :func:`geo.ingest.readers.read_requests` gives.

    Parameters
    ----------
    records
        JSON objects of one page.
    columns
        Columns the feed declares (Socrata's ``X-SODA2-Fields``, CARTO's ``fields``):
        present even when every record of the page leaves them out (Socrata omits
        null values).

    Returns
    -------
    pandas.DataFrame
        ``_source_row`` (1-based position in the page), then every column as
        Arrow-backed text (what the CSV reader gives); nested values as JSON text,
        numbers as text, nulls missing. A column holding text that UTF-8 cannot carry
        (an unpaired surrogate) stays a column of Python strings.

    Examples
    --------
    >>> records_frame([{"id": 7, "x": 1.5}, {"id": "8", "y": [1]}], columns=["z"])
       _source_row id    x    y    z
    0            1  7  1.5  NaN  NaN
    1            2  8  NaN  [1]  NaN
    """
    names: dict[str, None] = {}
    for record in records:
        if not names.keys() >= record.keys():  # most records add no new key
            for key in record:
                names.setdefault(str(key), None)
    for key in columns:
        names.setdefault(str(key), None)
    frame = _all_text(records, list(names))
    if frame is None:
        data = {name: _text_column([r.get(name) for r in records]) for name in names}
        frame = pd.DataFrame(data, columns=list(names), index=pd.RangeIndex(len(records)))
    for reserved in (ROW_COLUMN, GEOMETRY_ERROR_COLUMN):
        if reserved in frame.columns:
            frame = frame.rename(columns={reserved: f"{reserved}.feed"})
    frame.insert(0, ROW_COLUMN, range(1, len(frame) + 1))
    return frame


def _all_text(records: Sequence[dict[str, Any]], names: list[str]) -> pd.DataFrame | None:
    """The records as a frame of Arrow-backed text, converted in C in one pass, when every
    value is text or null (Socrata's and most feeds' rows); else ``None``."""
    row = pa.struct([pa.field(name, pa.string()) for name in names])
    try:
        table = pa.Table.from_struct_array(pa.array(records, type=row))
    except (pa.ArrowTypeError, UnicodeEncodeError):
        return None
    return text_frame(table, names)


def _text_column(values: list[Any]) -> pd.Series:
    """JSON values of one column as text: Arrow-backed, built in C when every value is
    text or null (the common case), else after :func:`_text` of each value."""
    try:
        array = pa.array(values, type=pa.string())
    except pa.ArrowTypeError:  # numbers, booleans, nested values
        values = [_text(v) for v in values]
        try:
            array = pa.array(values, type=pa.string())
        except UnicodeEncodeError:
            return pd.Series(values, dtype=object)
    except UnicodeEncodeError:  # an unpaired surrogate: kept as Python text
        return pd.Series([_text(v) for v in values], dtype=object)
    return pd.Series(pd.array(array, dtype=TEXT))


def _text(value: Any) -> str | None:
    """A JSON value as text (``None`` for null; nested values as JSON)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Page:
    """One page of a feed, read and ready for mapping.

    Attributes
    ----------
    frame
        Raw text rows (:func:`records_frame`); may be empty.
    fmt
        The format whose column aliases apply (:class:`geo.ingest.readers.Format`).
    watermark
        The keyset position after this page: where the next sync resumes once the page
        is written.
    url
        The URL the page came from (for the batch record and messages).
    number
        1-based page number within this sync.
    """

    frame: pd.DataFrame
    fmt: Format
    watermark: dict[str, str] | None
    url: str
    number: int


def parse_time(text: str, *, what: str) -> datetime:
    """A timestamp from a watermark or ``--since`` (naive means UTC).

    Raises
    ------
    InputError
        Naming ``what`` and the text when it is not an ISO 8601 time.

    Examples
    --------
    >>> parse_time("2024-05-01", what="since").isoformat()
    '2024-05-01T00:00:00+00:00'
    """
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise InputError(f"{what}: got {describe(text)}; expected an ISO 8601 date or time "
                         "such as 2024-05-01 or 2024-05-01T08:00:00Z") from err
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def iso_z(when: datetime, *, millis: bool = False) -> str:
    """A UTC time as ``YYYY-MM-DDTHH:MM:SS[.fff]Z`` (fractions only when present).

    Examples
    --------
    >>> iso_z(datetime(2024, 5, 1, 8, tzinfo=UTC)), iso_z(datetime(2024, 5, 1, tzinfo=UTC),
    ...                                                   millis=True)
    ('2024-05-01T08:00:00Z', '2024-05-01T00:00:00.000Z')
    """
    utc = when.astimezone(UTC)
    if millis:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
