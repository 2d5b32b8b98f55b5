"""Reading request files into raw frames of text, one row per source record.

Formats:

``phila``
    Philadelphia's ``public_cases_fc`` as CSV or JSON (a list of records, or the Carto
    API's ``{"rows": [...]}``), including renamed exports such as
    ``request_id,start_time,close_time,type,department``.
``open311``
    Open311 GeoReport v2 ``requests.json``: a bare list, or an object wrapping it
    (``requests`` / ``service_requests``); coordinates in ``lat`` / ``long``.
``geojson``
    A FeatureCollection of Point features; properties become columns and the point
    gives ``lat`` / ``lon``.
``csv``
    Any CSV, with a column mapping (see :mod:`geo.ingest.mapping`).

Text is decoded as UTF-8 (with or without BOM), else Windows-1252, else Latin-1, so no
byte is lost; the encoding used is reported. Every value is read as text: typing is
validation's job (:mod:`geo.ingest.validate`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from geo.ingest.model import text_frame
from hotspot311.errors import InputError, describe

ROW_COLUMN = "_source_row"
GEOMETRY_ERROR_COLUMN = "_geometry_error"


class Format(StrEnum):
    """Source formats."""

    AUTO = "auto"
    PHILA = "phila"
    OPEN311 = "open311"
    GEOJSON = "geojson"
    CSV = "csv"


@dataclass(frozen=True)
class RawBatch:
    """A file read as text.

    Attributes
    ----------
    frame
        One row per record, every value text or ``None``; ``_source_row`` holds the
        record's 1-based position in the file.
    format
        The format detected or given.
    encoding
        The text encoding used.
    path
        The file read.
    digest
        SHA-1 hex digest of the file's bytes (the batch id's fingerprint).
    """

    frame: pd.DataFrame
    format: Format
    encoding: str
    path: Path
    digest: str = ""


def read_requests(path: str | Path, *, fmt: Format | str = Format.AUTO) -> RawBatch:
    """Read a request file into a :class:`RawBatch`.

    Parameters
    ----------
    path
        CSV, JSON or GeoJSON file.
    fmt
        One of :class:`Format`; ``auto`` detects it from the content.

    Returns
    -------
    RawBatch
        The records as text.

    Raises
    ------
    InputError
        When the file is missing, empty, binary, or not the format named.
    """
    path = Path(path)
    try:
        fmt = Format(fmt)
    except ValueError as err:
        raise InputError(
            f"format: got {describe(fmt)}; allowed: {', '.join(f.value for f in Format)}"
        ) from err
    if not path.is_file():
        raise InputError(f"path: {path} does not exist or is not a file")
    data = path.read_bytes()
    if _NOT_BLANK.search(data) is None:  # what ``not data.strip()`` says, without a copy
        raise InputError(f"{path}: the file is empty; expected CSV with a header row, or JSON")
    if b"\x00" in data[:65536]:
        raise InputError(
            f"{path}: this is a binary file (it holds NUL bytes); "
            "expected CSV, JSON or GeoJSON text"
        )
    fast = _utf8_csv(data, path, fmt)
    if fast is not None:
        frame, fmt = fast
        encoding = "utf-8-sig"  # what :func:`decode` names any UTF-8 text
    else:
        text, encoding = decode(data)
        head = text.lstrip()[:1]
        if fmt is Format.AUTO:
            fmt = _detect(text, path)
        if fmt in (Format.OPEN311, Format.GEOJSON) or (fmt is Format.PHILA and head in "[{"):
            frame = _read_json(text, path, fmt)
        else:
            utf8 = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
            frame = _read_csv(text, path, utf8 if encoding == "utf-8-sig" else None)
    reserved = [c for c in frame.columns if c == ROW_COLUMN
                or (c == GEOMETRY_ERROR_COLUMN and fmt is not Format.GEOJSON)]
    if reserved:
        raise InputError(
            f"{path}: column {reserved[0]!r} has a name hotspot311 keeps for itself; "
            "rename that column in the file"
        )
    frame.insert(0, ROW_COLUMN, range(1, len(frame) + 1))
    return RawBatch(frame=frame, format=fmt, encoding=encoding, path=path,
                    digest=hashlib.sha1(data).hexdigest())


#: Any byte that ``bytes.strip`` keeps (not ASCII whitespace).
_NOT_BLANK: Final = re.compile(rb"[^ \t\n\r\x0b\x0c]")
#: Bytes of the file's start decoded to detect the format from its first line.
_HEAD_BYTES: Final = 1 << 16


def _utf8_csv(data: bytes, path: Path, fmt: Format) -> tuple[pd.DataFrame, Format] | None:
    """The file read as CSV by Arrow straight from its bytes, when it is UTF-8 text whose
    first line decides the format as CSV (``phila`` or ``csv``) and Arrow reads it; else
    ``None``, and :func:`read_requests` takes the general path (which gives the same
    frame, format and encoding for such a file, decoding the whole text first).

    The format is detected from the decoded first lines only: for UTF-8 text they are
    the start of what the general path decodes, and :func:`_detect` looks at the first
    line alone when it is not JSON.
    """
    if fmt not in (Format.AUTO, Format.PHILA, Format.CSV):
        return None
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    cut = len(body) if len(body) <= _HEAD_BYTES else body.rfind(b"\n", 0, _HEAD_BYTES) + 1
    head = body[:cut].decode("utf-8").lstrip()
    if not head or ("\n" not in head and cut < len(body)) or head[:1] in "[{":
        return None  # blank or JSON, or a first line longer than the head
    if fmt is Format.AUTO:
        fmt = _detect(head, path)
    try:
        frame = _arrow_csv(body)
    except Exception:  # the general path reads it with pandas, which explains errors
        return None
    frame.columns = unique_names([str(c).strip() for c in frame.columns])
    return frame, fmt


def decode(data: bytes) -> tuple[str, str]:
    """Decode bytes as UTF-8, else Windows-1252, else Latin-1 (which never fails).

    Examples
    --------
    >>> decode("Caf\\u00e9".encode("latin-1"))
    ('Café', 'cp1252')
    """
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def _detect(text: str, path: Path) -> Format:
    """Guess the format from the first non-blank character and a few keys."""
    start = text.lstrip()[:1]
    if start not in ("[", "{"):
        header = {h.strip().strip('"').lower() for h in text.lstrip().split("\n", 1)[0].split(",")}
        phila = {"service_request_id", "requested_datetime"} <= header or {
            "request_id",
            "start_time",
        } <= header
        return Format.PHILA if phila else Format.CSV
    sample = text[:20000]
    if '"FeatureCollection"' in sample or '"Feature"' in sample:
        return Format.GEOJSON
    if '"long"' in sample:
        return Format.OPEN311
    if path.suffix.lower() == ".geojson":
        return Format.GEOJSON
    return Format.PHILA


def _arrow_csv(data: bytes) -> pd.DataFrame:
    """UTF-8 CSV bytes read by Arrow's multi-threaded parser, every column as text
    (Arrow-backed ``str``), empty cells missing: what ``pandas.read_csv`` with the
    pyarrow engine gives, without a detour through a Python string."""
    options = pa_csv.ReadOptions(block_size=16 << 20)
    cut = data.rfind(b"\n", 0, 1 << 20) + 1 or len(data)  # whole lines of the first MiB
    with pa_csv.open_csv(pa.py_buffer(data[:cut]),
                         read_options=pa_csv.ReadOptions(block_size=1 << 21)) as head:
        names = head.schema.names  # the header row, parsed as CSV
    table = pa_csv.read_csv(
        pa.py_buffer(data), read_options=options,
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True,
            null_values=[""], quoted_strings_can_be_null=True),
    )
    if not all(pa.types.is_string(t) for t in table.schema.types):
        raise ValueError("a column was not read as text")  # the general path reads it
    return text_frame(table)


def _read_csv(text: str, path: Path, utf8: bytes | None = None) -> pd.DataFrame:
    """Read CSV text with every value as text; empty cells become missing.

    The multi-threaded pyarrow parser is tried first (on the file's own bytes when they
    are UTF-8); text it refuses (ragged rows, a field larger than its block) is read by
    pandas' C parser, which explains errors.
    """
    options: dict[str, Any] = {"dtype": str, "keep_default_na": False, "na_values": [""]}
    try:
        frame = _arrow_csv(utf8 if utf8 is not None else text.encode("utf-8", "surrogatepass"))
    except Exception:
        try:
            frame = pd.read_csv(io.StringIO(text), engine="c", skip_blank_lines=True, **options)
        except pd.errors.EmptyDataError as err:
            raise InputError(
                f"{path}: no header row found; expected CSV with a header row"
            ) from err
        except (pd.errors.ParserError, csv.Error) as err:
            raise InputError(f"{path}: not readable as CSV ({err})") from err
    frame.columns = unique_names([str(c).strip() for c in frame.columns])
    return frame


def unique_names(names: list[str]) -> list[str]:
    """Column names made unique as pandas does it (a repeat gets ``.1``, ``.2`` …).

    Examples
    --------
    >>> unique_names(["lat", "lat", "lat.1", "id"])
    ['lat', 'lat.1', 'lat.1.1', 'id']
    """
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate, n = name, 0
        while candidate in seen:
            n += 1
            candidate = f"{name}.{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


def _read_json(text: str, path: Path, fmt: Format) -> pd.DataFrame:
    """Read JSON records (a list, a wrapper object, or a FeatureCollection)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
    if fmt is Format.GEOJSON:
        return _features(doc, path)
    records = _records(doc, path)
    bad = [i + 1 for i, r in enumerate(records) if not isinstance(r, dict)]
    if bad:
        raise InputError(f"{path}: every record must be a JSON object; records {bad[:10]} are not")
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    return _as_text(frame)


def _records(doc: Any, path: Path) -> list[Any]:
    """Find the list of records in a JSON document."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        for key in ("requests", "service_requests", "rows", "records", "data"):
            if isinstance(doc.get(key), list):
                return list(doc[key])
    raise InputError(
        f"{path}: expected a JSON list of requests or an object holding one under "
        "'requests', 'service_requests' or 'rows'"
    )


def _features(doc: Any, path: Path) -> pd.DataFrame:
    """Flatten a GeoJSON FeatureCollection of points into rows."""
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise InputError(f"{path}: expected a GeoJSON FeatureCollection")
    features = doc.get("features")
    if features is None:
        features = []
    if not isinstance(features, list):
        raise InputError(f"{path}: 'features' must be a list of GeoJSON features; got "
                         f"{type(features).__name__}")
    rows: list[dict[str, Any]] = []
    for feature in features:
        feature = feature if isinstance(feature, dict) else {}
        props = feature.get("properties")
        props = dict(props) if isinstance(props, dict) else {}
        if GEOMETRY_ERROR_COLUMN in props or ROW_COLUMN in props:
            name = GEOMETRY_ERROR_COLUMN if GEOMETRY_ERROR_COLUMN in props else ROW_COLUMN
            raise InputError(
                f"{path}: property {name!r} has a name hotspot311 keeps for itself; "
                "rename that property in the file"
            )
        geom = feature.get("geometry")
        if isinstance(geom, dict) and geom.get("type") == "Point":
            coords = geom.get("coordinates")
            if isinstance(coords, list) and len(coords) >= 2:
                props["lon"], props["lat"] = coords[0], coords[1]
            elif coords not in (None, []):
                props[GEOMETRY_ERROR_COLUMN] = (
                    f"point coordinates {describe(coords, 40)} are not [lon, lat]")
        elif geom is not None:
            kind = geom.get("type") if isinstance(geom, dict) else type(geom).__name__
            props[GEOMETRY_ERROR_COLUMN] = f"geometry is {describe(kind)}, not a Point"
        rows.append(props)
    return _as_text(pd.DataFrame.from_records(rows) if rows else pd.DataFrame())


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn every value into text (nested values as JSON), keeping ``None``."""

    def one(v: Any) -> str | None:
        if v is None or (isinstance(v, float) and v != v):
            return None
        if isinstance(v, dict | list):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return str(v)

    return frame.apply(lambda col: col.map(one)).astype(object) if not frame.empty else frame
