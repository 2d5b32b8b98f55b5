"""A layer's codes matched to the sorted request ids straight from its binary COPY rows.

A layer's ``service_request_id, code`` rows come in id order where a whole-layer load
wrote them (:mod:`geo.store.id_merge`). :func:`merge_codes` steps through those rows as
the server sent them (:class:`geo.store.pgcopy_out.RawCopy`) and through the sorted
request ids at once, comparing each row's id bytes where they lie, and writes each
matched code into the result column, which is built in the ids' order: the ids and codes
are never decoded into Arrow arrays of their own, matched and then taken into place (at
1M rows a layer: 0.033 s of CPU against 0.090 s for decoding, merging and taking).

The rows from the first whose id is not after the last request id passed (rows that
small writes appended after the layer's ordered run) are handed back undecoded, for the
caller to match another way (:mod:`geo.store.id_order`).
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from geo.ingest.arrowtext import text_buffers
from geo.store.id_merge import compare_bytes
from geo.store.pgcopy_out import TEXT, CopyOutError, RawCopy, be_int32

#: :func:`_merge_chunk`'s answer when it has gone through the whole chunk.
_ALL: int = -1


def merge_codes(raw: RawCopy, sorted_ids: pa.Array) -> tuple[pa.Array, RawCopy | None]:
    """Each sorted id's code, from COPY rows of two text columns (id, code).

    Parameters
    ----------
    raw
        The rows, as read (:func:`geo.store.pgcopy_out.copy_raw`); an id at most once.
    sorted_ids
        Text ids, strictly increasing in byte order (no null).

    Returns
    -------
    tuple
        A ``large_string`` array, one value per id: the code of the row with that id
        among the rows merged (null: none, or a null code). Then ``None`` when every
        row was merged, else the rows from the first one whose id is not after the
        last id passed by then (out of order: its id's row may be behind) or is null,
        still to be matched.

    Raises
    ------
    CopyOutError
        When the rows are not two text columns or a row is cut short.

    """
    if raw.kinds != [TEXT, TEXT]:
        raise CopyOutError(f"merge_codes reads (text, text) rows, not kinds {raw.kinds}")
    s_off, s_data, _ = text_buffers(sorted_ids)
    n = len(sorted_ids)
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = 0
    valid = np.zeros(n, dtype=np.bool_)
    # no code is longer than the rows holding it: pages past the codes are never touched
    data = np.empty(sum(len(chunk) for chunk in raw.chunks), dtype=np.uint8)
    state = np.zeros(2, dtype=np.int64)  # the id at the cursor; bytes of codes written
    rest: RawCopy | None = None
    for at, chunk in enumerate(raw.chunks):
        end = _merge_chunk(chunk, s_off, s_data, state, offsets, valid, data)
        if end <= -2:
            raise CopyOutError(f"a row cut short or not of two fields (byte {-2 - end})")
        if end != _ALL:
            rest = raw.after(at, end)
            break
    cursor, fill = int(state[0]), int(state[1])
    offsets[cursor + 1:] = fill  # the ids after the last merged: no code
    nulls = n - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    codes = pa.Array.from_buffers(pa.large_string(), n,
                                  [bitmap, pa.py_buffer(offsets), pa.py_buffer(data[:fill])],
                                  null_count=nulls)
    return codes, rest


@numba.njit(inline="always")
def _compare(s_off: np.ndarray, s_data: np.ndarray, j: int, buf: np.ndarray, p: int,
             n: int) -> int:  # pragma: no cover - compiled
    """-1, 0 or 1 as sorted id ``j`` sorts before, with or after the ``n`` bytes at
    ``p`` of ``buf`` (:func:`geo.store.id_merge.compare_bytes`)."""
    return compare_bytes(s_data, s_off[j], s_off[j + 1] - s_off[j], buf, p, n)


@numba.njit(nogil=True, cache=True)
def _merge_chunk(buf: np.ndarray, s_off: np.ndarray, s_data: np.ndarray, state: np.ndarray,
                 offsets: np.ndarray, valid: np.ndarray,
                 data: np.ndarray) -> int:  # pragma: no cover - compiled
    """Merge the rows of ``buf`` from the cursor ``state[0]`` on, writing codes from
    byte ``state[1]`` of ``data``; both are left where the merge stopped.

    Returns :data:`_ALL` (every row of the chunk merged, or the trailer met), the byte
    where a row out of order (or with a null id) begins, or ``-2 - byte`` of a row cut
    short or not of two fields. ``offsets[j + 1]`` and ``valid[j]`` are set for every id passed.
    """
    j, fill = state[0], state[1]
    n = len(s_off) - 1
    end = len(buf)
    p = 0
    while p < end:
        if p + 2 > end:
            return -2 - p
        fields = np.int16((np.uint16(buf[p]) << 8) | np.uint16(buf[p + 1]))
        if fields == -1:  # the trailer
            break
        if fields != 2 or p + 6 > end:
            return -2 - p
        id_len = be_int32(buf, p + 2)
        id_at = p + 6
        if id_len < 0:  # a null id: for the caller's other way
            state[0], state[1] = j, fill
            return p
        if id_at + id_len + 4 > end:
            return -2 - p
        code_len = be_int32(buf, id_at + id_len)
        code_at = id_at + id_len + 4
        after = code_at + max(code_len, 0)
        if after > end:
            return -2 - p
        c = _compare(s_off, s_data, j, buf, id_at, id_len) if j < n else 1
        if c > 0 and j > 0 and _compare(s_off, s_data, j - 1, buf, id_at, id_len) >= 0:
            state[0], state[1] = j, fill
            return p  # not after the id passed last: out of order
        while c < 0:  # ids with no row here
            offsets[j + 1] = fill
            j += 1
            c = _compare(s_off, s_data, j, buf, id_at, id_len) if j < n else 1
        if c == 0:
            if code_len >= 0:
                data[fill:fill + code_len] = buf[code_at:after]
                fill += code_len
                valid[j] = True
            offsets[j + 1] = fill
            j += 1
        p = after
    state[0], state[1] = j, fill
    return _ALL
