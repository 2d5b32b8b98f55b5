"""Request rows put in id order, and each layer's area codes matched to them.

A read of PostGIS gets the requests in the table's order (the loader writes them in
spatial order) and each layer's ``service_request_id, code`` rows apart
(:mod:`geo.store.postgis_read`). :func:`order_rows` sorts the rows by id
(``COLLATE "C"``: Arrow orders text by its bytes; :func:`geo.store.id_merge.byte_order`)
and takes their columns into that order; :meth:`RowsInIdOrder.codes_of` then gives a
layer's codes in the same order, as soon as that layer is read, so a reader can match
each layer while the next is still on its way (:meth:`RowsInIdOrder.codes_of_copy`,
from the layer's binary COPY rows not decoded: :mod:`geo.store.copy_merge`).
:func:`with_codes` does both for rows and codes read already.

A layer's codes in id order, as a whole-layer load writes them, are matched to the
sorted rows by one merge (:func:`geo.store.id_merge.merge_positions`); the rows after
that run (those small writes appended) are looked up by fingerprint: the sorted ids
are fingerprinted once (64-bit, :func:`geo.ingest.hashing.hash_text`) into one hash
table of numbers, each layer's remaining ids are fingerprinted and looked up in it,
and every match is confirmed by comparing the ids themselves. When two row ids share a
fingerprint, an Arrow hash table of the row ids is used instead.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo.ingest.hashing import hash_text
from geo.store import id_merge
from geo.store.copy_merge import merge_codes
from geo.store.pgcopy_out import RawCopy

#: Where the columns taken into id order (and the frame's times) are allocated: the C
#: library's allocator, as the decoded columns are (NumPy's), not Arrow's default pool.
#: On this project's machine (Linux, transparent huge pages on request) a 1M-row read's
#: takes into Arrow's default pool (mimalloc) spent 1.1 s of system time in the first
#: read of a process, zeroing fresh huge pages, against 0.4 s here.
TAKEN_INTO: Final = pa.system_memory_pool()


class RowsInIdOrder:
    """Request rows in id order (made by :func:`order_rows`), ready to match codes.

    Parameters
    ----------
    rows, sorted_ids
        As the attributes.
    unique
        Whether ``sorted_ids`` are strictly increasing, when the caller knows already;
        checked otherwise.

    Attributes
    ----------
    rows
        The rows' columns in id order: without the id column, or with it in its place.
    sorted_ids
        The ids in that order.
    """

    def __init__(self, rows: pa.Table, sorted_ids: pa.Array, *,
                 unique: bool | None = None) -> None:
        self.rows = rows
        self.sorted_ids = sorted_ids
        self._unique = (id_merge.increasing_run(sorted_ids) == len(sorted_ids)
                        if unique is None else unique)
        self._lock = threading.Lock()
        self._lookup: Callable[[pa.Array], pa.Array] | None = None

    def codes_of(self, codes: pa.Table) -> pa.Array:
        """The ``code`` of each row (null: the layer has no row for it), in id order.

        Parameters
        ----------
        codes
            One layer's ``service_request_id, code`` rows, an id at most once.

        Returns
        -------
        pyarrow.Array
            One code per row of :attr:`rows`.
        """
        code_ids = _one_chunk(codes.column("service_request_id"))
        run = id_merge.increasing_run(code_ids) if self._unique else 0
        where = np.full(len(self.sorted_ids), -1, dtype=np.int64)
        if run:
            id_merge.merge_positions(self.sorted_ids, code_ids.slice(0, run), where)
        if run < len(code_ids):
            self._look_up_into(where, code_ids.slice(run), run)
        return pc.take(codes.column("code"), pa.array(where, mask=where < 0),
                       memory_pool=TAKEN_INTO)

    def codes_of_copy(self, raw: RawCopy) -> pa.Array:
        """:meth:`codes_of` for a layer's rows as read by binary COPY, not decoded
        (:func:`geo.store.pgcopy_out.copy_raw`): the rows in id order are merged
        where they lie (:func:`geo.store.copy_merge.merge_codes`), and only the rest
        are decoded and looked up."""
        if not self._unique:
            return self.codes_of(raw.table())
        merged, rest = merge_codes(raw, self.sorted_ids)
        if rest is None:
            return merged
        tail = rest.table()
        where = np.full(len(self.sorted_ids), -1, dtype=np.int64)
        self._look_up_into(where, _one_chunk(tail.column(0)), 0)
        later = pc.take(tail.column(1), pa.array(where, mask=where < 0), memory_pool=TAKEN_INTO)
        return pc.coalesce(merged, later, memory_pool=TAKEN_INTO)

    def _look_up_into(self, where: np.ndarray, code_ids: pa.Array, first: int) -> None:
        """Set ``where[row]`` to ``first`` + the position in ``code_ids`` of each row's
        id found there (by fingerprint, :meth:`_looked_up`)."""
        found = np.asarray(pc.fill_null(self._looked_up(code_ids), -1)
                           .to_numpy(zero_copy_only=False), dtype=np.int64)
        hit = found >= 0
        where[hit] = found[hit] + first

    def _looked_up(self, code_ids: pa.Array) -> pa.Array:
        with self._lock:  # made once, on the first layer out of id order
            if self._lookup is None:
                prints = pd.Index(hash_text(self.sorted_ids))
                self._lookup = (functools.partial(_row_of_codes, self.sorted_ids, prints)
                                if prints.is_unique
                                else functools.partial(_row_of_codes_by_arrow, self.sorted_ids))
            lookup = self._lookup
        return lookup(code_ids)


def order_rows(rows: pa.Table, id_column: str, pool: ThreadPoolExecutor, *,
               keep_id: bool = False) -> RowsInIdOrder:
    """``rows`` sorted by ``id_column`` (byte order), without that column unless
    ``keep_id``; the columns are taken one per task of ``pool``. Rows whose ids are
    strictly increasing already (a table clustered by id) are used as they are, not
    copied.

    Examples
    --------
    >>> with ThreadPoolExecutor(2) as pool:
    ...     ordered = order_rows(pa.table({"i": ["b", "a"], "v": [2, 1]}), "i", pool)
    >>> ordered.rows.to_pydict(), ordered.sorted_ids.to_pylist()
    ({'v': [1, 2]}, ['a', 'b'])
    """
    ids = _one_chunk(rows.column(id_column))
    where = rows.column_names.index(id_column)
    id_field = rows.schema.field(where)
    if id_merge.increasing_run(ids) == len(ids):
        kept = rows if keep_id else rows.remove_column(where)
        return RowsInIdOrder(kept, ids, unique=True)
    ordered = pa.array(id_merge.byte_order(ids))
    sorted_ids = pc.take(ids, ordered, memory_pool=TAKEN_INTO)
    taken = take_columns(rows.remove_column(where), ordered, pool)
    if keep_id:
        taken = taken.add_column(where, id_field, sorted_ids)
    return RowsInIdOrder(taken, sorted_ids)


def with_codes(rows: pa.Table, codes: Mapping[str, pa.Table], *, id_column: str,
               threads: int = 2, keep_id: bool = False) -> pa.Table:
    """Request rows in id order (see :func:`order_rows`), with one column per layer of
    ``codes`` (``service_request_id``, ``code`` rows, an id at most once per layer; null
    for a request with no row), then without ``id_column`` (with it, in its place, when
    ``keep_id``). The layers are matched on a pool of ``threads`` threads (numba and
    Arrow's kernels release the GIL).

    Examples
    --------
    >>> rows = pa.table({"i": ["b", "a", "c"], "v": [2, 1, 3]})
    >>> zip_ = pa.table({"service_request_id": ["c", "a"], "code": ["19103", "19104"]})
    >>> with_codes(rows, {"zip": zip_}, id_column="i").to_pydict()
    {'v': [1, 2, 3], 'zip': ['19104', None, '19103']}
    """
    with ThreadPoolExecutor(max(1, threads)) as pool:
        ordered = order_rows(rows, id_column, pool, keep_id=keep_id)
        columns = list(pool.map(ordered.codes_of, codes.values()))
    table = ordered.rows
    for key, column in zip(codes, columns, strict=True):
        table = table.append_column(key, column)
    return table


def take_columns(table: pa.Table, indices: pa.Array, pool: ThreadPoolExecutor) -> pa.Table:
    """``table.take(indices)``, one column per task of ``pool`` (Arrow's take releases
    the GIL; the table's one-thread take copied 300 MB of a 1M-row read on one core),
    into :data:`TAKEN_INTO`.

    Examples
    --------
    >>> with ThreadPoolExecutor(2) as pool:
    ...     take_columns(pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]}),
    ...                  pa.array([2, 0]), pool).to_pydict()
    {'a': [3, 1], 'b': ['z', 'x']}
    """
    if not table.num_columns:  # no columns, but as many rows as indices
        return pa.table({"_": pa.nulls(len(indices))}).drop_columns(["_"])
    columns = list(pool.map(lambda column: pc.take(column, indices, memory_pool=TAKEN_INTO),
                            table.columns))
    return pa.Table.from_arrays(columns, schema=table.schema)


def _one_chunk(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _row_of_codes(ids: pa.Array, prints: pd.Index, code_ids: pa.Array) -> pa.Array:
    """For each row id, the position of its row in ``code_ids`` (null: none), found by
    fingerprint in ``prints`` (the row ids' fingerprints, all distinct) and confirmed."""
    row = prints.get_indexer(pd.Index(hash_text(code_ids)))  # per code row: its row, or -1
    found = np.flatnonzero(row >= 0)
    same = pc.equal(code_ids.take(pa.array(found)),
                    ids.take(pa.array(row[found])).cast(code_ids.type))
    found = found[np.asarray(pc.fill_null(same, False).to_numpy(zero_copy_only=False),
                             dtype=bool)]
    where = np.full(len(ids), -1, dtype=np.int64)
    where[row[found]] = found
    return pa.array(where, mask=where < 0)


def _row_of_codes_by_arrow(ids: pa.Array, code_ids: pa.Array) -> pa.Array:
    """:func:`_row_of_codes` by Arrow's hash look-up of the row ids in ``code_ids``."""
    return pc.index_in(ids, value_set=code_ids)
