"""Small Arrow text helpers for validation over whole columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def text_buffers(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets (``int64``, one more than the values), bytes and validity of one string or
    binary chunk, read from its Arrow buffers (the bytes, and a large type's offsets,
    without a copy: read-only).

    Examples
    --------
    >>> offsets, data, valid = text_buffers(pa.array(["ab", None, "c"]).slice(1))
    >>> offsets.tolist(), bytes(data[offsets[0]:offsets[-1]]), valid.tolist()
    ([2, 2, 3], b'c', [False, True])
    """
    wide = pa.types.is_large_string(chunk.type) or pa.types.is_large_binary(chunk.type)
    buffers = chunk.buffers()
    raw = np.frombuffer(buffers[1], dtype=np.int64 if wide else np.int32)
    offsets = raw[chunk.offset:chunk.offset + len(chunk) + 1].astype(np.int64, copy=False)
    data = (np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None
            else np.zeros(0, dtype=np.uint8))
    valid = np.asarray(chunk.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    return offsets, data, valid


def _edges_plain(chunk: pa.Array) -> bool:
    """Whether no value of one string chunk is empty or begins or ends with a byte
    that could be (part of) whitespace: an ASCII control or space (``<= 0x20``), DEL,
    or any byte of a multi-byte character (``>= 0x7f``)."""
    if len(chunk) == 0 or chunk.null_count == len(chunk):
        return True
    offsets, data, valid = text_buffers(chunk)
    starts, ends = offsets[:-1], offsets[1:]
    if np.any(valid & (ends <= starts)):
        return False  # an empty value
    if len(data) == 0:
        return True
    first = data[starts[valid]]
    last = data[ends[valid] - 1]
    edges = np.concatenate([first, last])
    return not np.any((edges <= 0x20) | (edges >= 0x7F))


def trim_is_noop(values: pa.Array | pa.ChunkedArray) -> bool:
    """Whether trimming whitespace off every value and treating ``""`` as missing would
    change nothing (no value is empty, none starts or ends with a byte that can be
    whitespace), judged from the first and last byte of each value without copying.

    ``False`` may be returned for values that trimming would leave as they are (a value
    ending in ``é``); ``True`` only when it certainly changes nothing.

    Examples
    --------
    >>> trim_is_noop(pa.array(["a", None, "b c"])), trim_is_noop(pa.array(["a ", "b"]))
    (True, False)
    >>> trim_is_noop(pa.array(["", "b"])), trim_is_noop(pa.array(["caf\\u00e9"]))
    (False, False)
    """
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    for chunk in chunks:
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            return False
        if not _edges_plain(chunk):
            return False
    return True
