"""Text that PostgreSQL cannot hold: the NUL rule of the PostGIS store.

PostgreSQL ``text`` and ``jsonb`` cannot hold U+0000, and a UTF-8 database cannot hold an
unpaired surrogate (U+D800–U+DFFF, which Python strings can carry). The embedded store
keeps both; the PostGIS store applies this rule instead of failing the batch:

- In any text field of a request, and in ``extra``, each such character is replaced
  by U+FFFD (the replacement character) and the row gets the quality flag
  ``nul_replaced``. Its ``row_hash`` stays the one computed from the original content,
  so re-ingesting the same file leaves the row unchanged.
- A request whose ``service_request_id`` holds such a character is quarantined with the
  reason ``nul_in_id`` instead: replacing characters in the key could make two different
  ids one.
- A request whose ``service_request_id`` is longer than :data:`MAX_ID_BYTES` UTF-8
  bytes is quarantined with the reason ``id_too_long``: the key is B-tree indexed, and
  PostgreSQL cannot index a value of more than about 2.7 kB.
- In quarantine rows, the characters are replaced in every text field, and the detail
  says so (``raw`` is JSON text, whose ``\\u0000`` escapes are plain ASCII and kept).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo.ingest.arrowtext import text_buffers

#: Quality flag set on requests whose text was changed by the rule.
NUL_FLAG: Final = "nul_replaced"
#: Quarantine reason for a request whose id holds a NUL or an unpaired surrogate.
NUL_ID_REASON: Final = "nul_in_id"
REPLACEMENT: Final = "\ufffd"
#: Quarantine reason for a request whose id is too long to index.
LONG_ID_REASON: Final = "id_too_long"
#: Longest ``service_request_id`` the PostGIS store keeps, in UTF-8 bytes.
MAX_ID_BYTES: Final = 1024


def too_long(values: pd.Series) -> np.ndarray:
    """Mask of ids longer than :data:`MAX_ID_BYTES` UTF-8 bytes."""
    arrow = _as_arrow(values)
    if arrow is not None:
        longer = pc.fill_null(pc.greater(pc.binary_length(arrow), MAX_ID_BYTES), False)
        return np.asarray(longer.to_numpy(zero_copy_only=False), dtype=bool)
    return np.array(
        [
            isinstance(v, str)
            and len(v) > MAX_ID_BYTES // 4
            and len(v.encode("utf-8", "replace")) > MAX_ID_BYTES
            for v in values.to_numpy(dtype=object)
        ],
        dtype=bool,
    )


def _as_arrow(values: pd.Series) -> pa.StringArray | None:
    """``values`` as an Arrow string array, or None when some value is not valid text."""
    try:
        return pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowException, UnicodeError):
        return None


_BAD = re.compile("[\x00\ud800-\udfff]")
_BAD_ESCAPE = re.compile(r"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_NUL_BYTE = re.compile(b"\x00")


def has_bad(values: pd.Series) -> np.ndarray:
    """Mask of values holding a NUL or an unpaired surrogate.

    Values that convert to an Arrow string array (every value a ``str`` or missing, all
    valid UTF-8, so no surrogates) are searched for NUL in their bytes at once, and
    only a column with a NUL somewhere value by value by Arrow in C++ (a 1M-value
    column: 8 ms against 43 ms); anything else (numbers, surrogates) is checked value
    by value.
    """
    arrow = _as_arrow(values)
    if arrow is not None:
        if not _holds_nul_byte(arrow):
            return np.zeros(len(values), dtype=bool)
        found = pc.fill_null(pc.match_substring(arrow, "\x00"), False)
        return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
    return np.array(
        [isinstance(v, str) and _BAD.search(v) is not None for v in values.to_numpy(dtype=object)],
        dtype=bool,
    )


def _holds_nul_byte(values: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a NUL byte lies among the bytes of a string array's values (or of its
    nulls' ranges, which may only make the answer ``True`` for nothing)."""
    for chunk in values.chunks if isinstance(values, pa.ChunkedArray) else [values]:
        if len(chunk) == 0:
            continue
        offsets, data, _ = text_buffers(chunk)
        if _NUL_BYTE.search(data[int(offsets[0]):int(offsets[-1])].data) is not None:
            return True
    return False


def scrub(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Replace NULs and unpaired surrogates by U+FFFD.

    Returns
    -------
    tuple
        The cleaned values (a new series; the input is untouched) and the mask of
        values that changed.
    """
    bad = has_bad(values)
    if not bad.any():
        return values, bad
    out = values.astype(object).copy()
    out[bad] = [_BAD.sub(REPLACEMENT, v) for v in out[bad]]
    return out, bad


def scrub_json(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Like :func:`scrub`, for JSON text: also rewrites ``\\u0000`` and surrogate escapes.

    Rows with such an escape are parsed, cleaned string by string and dumped again.
    """
    out, bad = scrub(values)
    arrow = _as_arrow(out)
    if arrow is not None:  # only the values holding a \\u are searched one by one
        near = np.flatnonzero(np.asarray(pc.fill_null(pc.match_substring(arrow, "\\u"), False)
                                         .to_numpy(zero_copy_only=False), dtype=bool))
    else:
        near = np.arange(len(out))
    esc = np.zeros(len(out), dtype=bool)
    if len(near):
        arr = out.to_numpy(dtype=object)
        esc[near] = [isinstance(v, str) and "\\u" in v and _BAD_ESCAPE.search(v) is not None
                     for v in arr[near]]
        if esc.any():
            out = out.astype(object).copy()
            out[esc] = [_rewrite_json(v) for v in arr[esc]]
    return out, bad | esc


def _rewrite_json(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return _BAD_ESCAPE.sub(lambda m: "\\ufffd", text)
    return json.dumps(_clean(doc), ensure_ascii=False)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _BAD.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
