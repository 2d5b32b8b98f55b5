"""Row fingerprints computed over whole columns (Arrow buffers, numba), no Python per row.

Each value is hashed (FNV-1a over the UTF-8 bytes of text; the 64-bit pattern of
numbers and times), a missing value has a hash of its own, and the values of a row are
folded left to right and finished with the SplitMix64 mixer. Equal rows give equal
fingerprints in every process and on every machine (no per-process seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo.ingest.arrowtext import text_buffers

_FNV_OFFSET: Final = np.uint64(0xCBF29CE484222325)
_FNV_PRIME: Final = np.uint64(0x100000001B3)
_MISSING: Final = np.uint64(0x9E3779B97F4A7C15)
_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, nogil=True)
def _mix(z: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _fold_text(acc: np.ndarray, offsets: np.ndarray, data: np.ndarray,
               valid: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in range(len(acc)):
        if valid[i]:
            h = _FNV_OFFSET
            for j in range(offsets[i], offsets[i + 1]):
                h = (h ^ np.uint64(data[j])) * _FNV_PRIME
            h = h ^ np.uint64(offsets[i + 1] - offsets[i])
        else:
            h = _MISSING
        acc[i] = _mix(acc[i] * _GOLDEN + h)


@numba.njit(cache=True, nogil=True)
def _fold_bits(acc: np.ndarray, bits: np.ndarray,
               valid: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in range(len(acc)):
        h = _mix(bits[i] ^ _FNV_OFFSET) if valid[i] else _MISSING
        acc[i] = _mix(acc[i] * _GOLDEN + h)


def text_array(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A column as an Arrow string or binary array, chunked or not (missing values null).

    Arrow-backed text is taken as it is; other values are converted (numbers and other
    objects with ``str``; text that is not valid UTF-8, such as an unpaired surrogate
    from JSON, with its ``surrogatepass`` bytes, as a Parquet or PostgreSQL writer would
    refuse it anyway).
    """
    array = values.array
    arrow = getattr(array, "_pa_array", None)
    if arrow is None:
        try:
            arrow = pa.array(values.to_numpy(dtype=object), type=pa.large_string(),
                             from_pandas=True)
        except (pa.ArrowException, UnicodeError):
            arrow = pa.array(
                [None if v is None or (isinstance(v, float) and v != v) or v is pd.NA
                 else (v if isinstance(v, str) else str(v))
                 .encode("utf-8", "surrogatepass") for v in values.to_numpy(dtype=object)],
                type=pa.large_binary(),
            )
    if not any(check(arrow.type) for check in _OFFSET_TYPES):
        arrow = pc.cast(arrow, pa.large_string())
    return arrow


#: Arrow types whose values :func:`_fold_array` reads from their buffers (the bytes hashed
#: are the same for 32- and 64-bit offsets).
_OFFSET_TYPES: Final = (pa.types.is_large_string, pa.types.is_large_binary,
                        pa.types.is_string, pa.types.is_binary)


def _fold_array(acc: np.ndarray, arrow: pa.Array | pa.ChunkedArray) -> None:
    if isinstance(arrow, pa.ChunkedArray):  # chunk by chunk, into its rows of ``acc``
        start = 0
        for chunk in arrow.chunks:
            _fold_array(acc[start:start + len(chunk)], chunk)
            start += len(chunk)
        return
    offsets, data, valid = text_buffers(arrow)
    _fold_text(acc, offsets, data, valid)


def hash_text(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Fingerprint of each value of an Arrow text column.

    Parameters
    ----------
    values
        String or binary values (other types are cast to text).

    Returns
    -------
    numpy.ndarray
        One ``uint64`` per value: what :func:`hash_columns` gives for a frame of that
        one column (a missing value has a fingerprint of its own).

    Examples
    --------
    >>> h = hash_text(pa.array(["a", "b", "a"]))
    >>> bool(h[0] == h[2]), bool(h[0] == h[1])
    (True, False)
    """
    acc = np.zeros(len(values), dtype=np.uint64)
    if not any(check(values.type) for check in _OFFSET_TYPES):
        values = pc.cast(values, pa.large_string())
    _fold_array(acc, values)
    return acc


def hash_columns(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Fingerprint of ``columns`` of each row of ``frame`` (see the module docstring).

    Parameters
    ----------
    frame
        Any frame; times (``datetime64``), floats, integers, booleans and text are
        hashed by value, in the order of ``columns``.
    columns
        Columns to hash; all must be in ``frame``.

    Returns
    -------
    numpy.ndarray
        One ``uint64`` per row.

    Examples
    --------
    >>> f = pd.DataFrame({"a": ["x", None, "x"], "b": [1.5, 2.0, 1.5]})
    >>> h = hash_columns(f, ["a", "b"])
    >>> bool(h[0] == h[2]), bool(h[0] == h[1])
    (True, False)
    """
    n = len(frame)
    acc = np.zeros(n, dtype=np.uint64)
    for name in columns:
        values = frame[name]
        dtype = values.dtype
        if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
            if isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC":
                ns = values.array.as_unit("ns").asi8  # UTC: the wall times are the values
            else:
                bits = (values.dt.tz_localize(None) if isinstance(dtype, pd.DatetimeTZDtype)
                        else values)
                ns = bits.astype("datetime64[ns]").to_numpy().view(np.int64)
            _fold_bits(acc, ns.view(np.uint64), ~values.isna().to_numpy())
        elif pd.api.types.is_float_dtype(dtype) and not isinstance(dtype, pd.ArrowDtype):
            f = values.to_numpy(dtype=np.float64)
            valid = ~np.isnan(f)
            _fold_bits(acc, np.where(valid, f, 0.0).view(np.uint64), valid)
        elif pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
            valid = ~values.isna().to_numpy()
            ints = values.to_numpy(dtype=np.int64, na_value=0)
            _fold_bits(acc, ints.view(np.uint64), valid)
        else:
            _fold_array(acc, text_array(values))
    return acc
