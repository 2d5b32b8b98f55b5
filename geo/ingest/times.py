"""Request times: parsed from the forms real 311 feeds use, written back as ISO 8601 UTC text.

Handled, column-wise and vectorized: epoch milliseconds and seconds (numbers or digit
strings), ISO 8601 with or without an offset, ``M/D/YYYY H:MM[:SS]`` and
``YYYY/MM/DD H:MM[:SS]``, and bare dates. Times without an offset are wall-clock times
in the city's time zone; at the autumn daylight-saving change an ambiguous wall time is
read as the first (daylight) occurrence, and a wall time skipped in spring is moved
forward to the first valid instant. Every result is a UTC timestamp; anything else
becomes ``NaT`` and the caller decides what that means. Exports (requests, hotspots, work
lists) write times with :data:`ISO_UTC` and :func:`times_as_text`.
"""

from __future__ import annotations

import re
from typing import Final, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo.ingest.arrowtext import text_buffers, trim_is_noop

#: ``strftime`` format of times written as text (ISO 8601, UTC).
ISO_UTC: Final = "%Y-%m-%dT%H:%M:%SZ"
FrameT = TypeVar("FrameT", bound=pd.DataFrame)

_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
_NUMBER = re.compile(r"^-?\d+(?:\.\d*)?$")

#: Wall-clock formats tried in order, after ISO 8601.
WALL_FORMATS: Final = (
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
)

#: Epoch values above this are milliseconds (1973 in ms; 5138 AD in seconds).
_MS_THRESHOLD: Final = 1e11


#: Epoch milliseconds that ``datetime64[ns]`` can hold; others cannot be a request time.
_MS_MIN: Final = pd.Timestamp.min.value // 1_000_000 + 86_400_000
_MS_MAX: Final = pd.Timestamp.max.value // 1_000_000 - 86_400_000


def parse_times(values: pd.Series, *, tz: str) -> pd.Series:
    """Parse a column of source times into UTC timestamps.

    Parameters
    ----------
    values
        Raw values: numbers, strings, ``None``/``NaN``, or already parsed timestamps.
    tz
        IANA time zone in which naive wall-clock times are read.

    Returns
    -------
    pandas.Series
        ``datetime64[ns, UTC]`` on the same index; ``NaT`` where the value is missing
        or cannot be read.

    Examples
    --------
    >>> s = pd.Series([1422517500000, "2/15/2023 21:56", "2024-07-01T12:00:00Z", "soon"])
    >>> parse_times(s, tz="America/New_York").dt.strftime("%Y-%m-%d %H:%M").tolist()
    ['2015-01-29 07:45', '2023-02-16 02:56', '2024-07-01 12:00', nan]
    """
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if values.empty:
        return out
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return _localize(values, tz)

    text = values.astype("string")
    arrow = getattr(text.array, "_pa_array", None)
    if arrow is None or not trim_is_noop(arrow):  # stripped already (validation's text)
        text = text.str.strip()
    text = text.mask(text.isin(["", "nan", "NaN", "None", "null", "NULL", "NaT"]))
    fast = _strict_iso(text, tz)
    if fast is not None:
        return fast
    present = text.notna()

    numeric = present & text.str.fullmatch(_NUMBER.pattern).fillna(False).astype(bool)
    if numeric.any():
        num = pd.to_numeric(text[numeric], errors="coerce")
        ok = num.notna() & np.isfinite(num) & (num.abs() < 1e14)
        ms = num[ok].where(num[ok].abs() >= _MS_THRESHOLD, num[ok] * 1000.0)
        ms = ms[(ms > _MS_MIN) & (ms < _MS_MAX)]  # what datetime64[ns] holds (1677–2262)
        out.loc[ms.index] = pd.to_datetime(ms.round().astype("int64"), unit="ms", utc=True)

    rest = present & ~numeric
    with_offset = rest & text.str.contains(_OFFSET.pattern, regex=True).fillna(False).astype(bool)
    if with_offset.any():
        out.loc[with_offset] = _in_range(pd.to_datetime(
            text[with_offset], format="ISO8601", utc=True, errors="coerce"
        ))

    todo = rest & ~with_offset
    if todo.any():
        wall = pd.Series(pd.NaT, index=text.index[todo], dtype="datetime64[ns]")
        pending = text[todo]
        for fmt in ("ISO8601", *WALL_FORMATS):
            if pending.empty:
                break
            parsed = pd.to_datetime(pending, format=fmt, errors="coerce")
            hit = parsed.notna()
            if hit.any():
                parsed = _in_range(parsed)
            wall.loc[parsed.index[hit]] = parsed[hit]
            pending = pending[~hit]
        out.loc[wall.index] = _localize(wall, tz)
    return out


#: Plain ISO 8601 date-times with an offset, and without one: when every value of a
#: column has one of these forms, Arrow's parser gives what the general path gives.
_ISO_OFFSET: Final = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"
_ISO_WALL: Final = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?$"


def _strict_iso(text: pd.Series, tz: str) -> pd.Series | None:
    """The column parsed by Arrow when every present value is a plain ISO 8601 date-time,
    all with an offset or all without (the common feed), else ``None``.

    Arrow refuses impossible dates and times beyond ``datetime64[ns]``; then ``None``
    sends the column down the general path, which explains them.
    """
    arrow = getattr(text.array, "_pa_array", None)
    if arrow is None or len(text) == 0:
        return None
    if arrow.null_count == len(arrow):
        return None
    shape = _fixed_shape(arrow)
    for pattern, aware in ((_ISO_OFFSET, True), (_ISO_WALL, False)):
        # ``all`` skips the missing values; a column of one fixed layout is judged from
        # its bytes (the regular expression's answer for those layouts, without it)
        if shape is not None:
            if shape != aware:
                continue
        elif not pc.all(pc.match_substring_regex(arrow, pattern)).as_py():
            continue
        try:
            parsed = pc.cast(arrow, pa.timestamp("ns", "UTC") if aware else pa.timestamp("ns"))
        except pa.ArrowInvalid:
            return None
        out = pd.Series(parsed.to_pandas(), index=text.index)
        out = _in_range(out)
        if aware:
            return out.astype("datetime64[ns, UTC]")
        return _localize(out, tz)
    return None


#: Fixed layouts of ISO 8601 times, by length: ``d`` a digit, ``T`` a "T" or a space;
#: each matches :data:`_ISO_OFFSET` (``True``) or :data:`_ISO_WALL` (``False``).
_LAYOUTS: Final = {20: ("dddd-dd-ddTdd:dd:ddZ", True), 19: ("dddd-dd-ddTdd:dd:dd", False),
                   16: ("dddd-dd-ddTdd:dd", False)}


def _fixed_shape(arrow: pa.Array | pa.ChunkedArray) -> bool | None:
    """``True`` (with offset) or ``False`` (wall time) when every present value has the
    same one of :data:`_LAYOUTS`, judged from the bytes; ``None`` otherwise (ask the
    regular expressions).

    Examples
    --------
    >>> _fixed_shape(pa.array(["2024-07-01T12:00:00Z", None, "2024-07-01 13:00:00Z"]))
    True
    >>> _fixed_shape(pa.array(["2024-07-01T12:00:00", "2024-07-01T12:00:0x"])) is None
    True
    """
    chunks = arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]
    shape: bool | None = None
    for chunk in chunks:
        if chunk.null_count == len(chunk):
            continue
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            return None
        offsets, data, valid = text_buffers(chunk)
        lengths = np.diff(offsets)
        size = int(lengths[valid][0])
        # every present value that long and every missing one empty: the bytes are a block
        if size not in _LAYOUTS or not (np.all(lengths[valid] == size)
                                        and np.all(lengths[~valid] == 0)):
            return None
        layout, aware = _LAYOUTS[size]
        if shape is not None and shape != aware:
            return None
        block = data[offsets[0]:offsets[-1]].reshape(-1, size)
        for at, want in enumerate(layout):
            column = block[:, at]
            if want == "d":
                ok = (column >= ord("0")) & (column <= ord("9"))
            elif want == "T":
                ok = (column == ord("T")) | (column == ord(" "))
            else:
                ok = column == ord(want)
            if not ok.all():
                return None
        shape = aware
    return shape


def _in_range(parsed: pd.Series) -> pd.Series:
    """Parsed times as ``datetime64[ns]`` (UTC-aware if they were), NaT where a time lies
    beyond what that type holds (years before 1677 or after 2262: no request time)."""
    aware = isinstance(parsed.dtype, pd.DatetimeTZDtype)
    # a day inside the limits, so that moving a wall time to UTC cannot overflow
    low, high = pd.Timestamp.min + pd.Timedelta(days=1), pd.Timestamp.max - pd.Timedelta(days=1)
    if aware:
        low, high = low.tz_localize("UTC"), high.tz_localize("UTC")
    kept = parsed.where((parsed >= low) & (parsed <= high))
    return kept.astype("datetime64[ns, UTC]" if aware else "datetime64[ns]")


def _localize(wall: pd.Series, tz: str) -> pd.Series:
    """Read naive wall-clock times in ``tz`` and convert them to UTC."""
    if wall.empty:
        return pd.Series(pd.NaT, index=wall.index, dtype="datetime64[ns, UTC]")
    local = wall.astype("datetime64[ns]").dt.tz_localize(
        tz, ambiguous=np.ones(len(wall), dtype=bool), nonexistent="shift_forward"
    )
    return local.dt.tz_convert("UTC")


def times_as_text(frame: FrameT) -> FrameT:
    """A copy with every time column as ISO 8601 UTC text (GeoJSON has no time type)."""
    out = frame.copy()
    for col in out.columns:
        if str(out[col].dtype).startswith("datetime64"):
            out[col] = out[col].dt.strftime(ISO_UTC)
    return out
