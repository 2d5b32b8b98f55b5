"""Area codes of requests located in Python, for the PostGIS store.

A write locates its new and changed requests with the embedded store's index and rule
(:func:`geo.joins.locate`) and loads the codes into ``request_areas`` by binary COPY: the
two stores give the same codes by construction, and PostgreSQL does no point-in-polygon
work for an ingest. The index of each generation is built once from its stored areas and
kept in ``join_indexes`` (migration 0009) with the digest of those areas; a process keeps
the indexes it has loaded, by digest.

Small writes delete the changed requests' old codes and COPY the new ones through the
indexes; a big write (the load rebuilds the indexes of ``requests`` too) fills a fresh
partition per layer — the kept rows and the new ones — and swaps it in
(:func:`geo.store.postgis_join.swap_partition`). A re-join of every stored request
(:func:`relocate_layers`, also what a new generation gets) reads the points back and
locates them the same way, a layer at a time while the server loads the layer before:
7.2-7.4 s for seven layers at 1M requests, where PostgreSQL's join of the subdivided
pieces (now only the fall-back when ADBC cannot read) took 16.5 s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Final

import geopandas as gpd
import numpy as np
import psycopg
import pyarrow as pa
import shapely
from psycopg import sql

from geo.joins import (
    INDEX_FORMAT,
    AreaIndex,
    build_index,
    index_from_bytes,
    index_to_bytes,
    locate_layers,
    locate_ranks,
    ranks_text,
)
from geo.store.helper_stop import HelperStop
from geo.store.id_merge import byte_order
from geo.store.pgcopy import copy_arrow
from geo.store.postgis_join import stage_key_name, stage_name, swap_partition
from geo.store.postgis_read import fetch_arrow
from layers.registry import Generation

#: Indexes loaded by this process, by the digest of their areas.
_LOADED: dict[str, AreaIndex] = {}
_MAX_LOADED: Final = 64


def areas_digest(areas: gpd.GeoDataFrame) -> str:
    """SHA-256 of a generation's areas (codes in code-point order, WKB) and CRS."""
    order = np.argsort(areas["code"].to_numpy(dtype=str), kind="stable")
    digest = hashlib.sha256(str(areas.crs).encode())
    wkb = shapely.to_wkb(areas.geometry.to_numpy()[order], output_dimension=2)
    for code, w in zip(areas["code"].to_numpy(dtype=object)[order], wkb, strict=True):
        digest.update(str(code).encode("utf-8", "surrogatepass") + b"\x1f")
        digest.update(len(w).to_bytes(8, "little") + w)
    return digest.hexdigest()


def _read_areas(conn: psycopg.Connection, gen: Generation, crs: str) -> gpd.GeoDataFrame:
    rows = conn.execute(
        "SELECT code, ST_AsBinary(geom) FROM areas WHERE layer_key = %s AND generation = %s"
        ' ORDER BY code COLLATE "C"', (gen.key, gen.generation)).fetchall()
    return gpd.GeoDataFrame(
        {"code": [r[0] for r in rows]},
        geometry=gpd.GeoSeries(shapely.from_wkb([bytes(r[1]) for r in rows]), crs=crs),
    )


def keep_index(conn: psycopg.Connection, gen: Generation, areas: gpd.GeoDataFrame) -> AreaIndex:
    """Build the index of ``areas`` (a generation being stored) and keep it.

    Parameters
    ----------
    conn
        Connection inside the transaction that stores the generation.
    gen
        The generation.
    areas
        Its areas (``code``, geometry in the city CRS), as stored.

    Returns
    -------
    AreaIndex
        The index.
    """
    digest = areas_digest(areas)
    index = _LOADED.get(digest) or build_index(areas)
    conn.execute(
        "INSERT INTO join_indexes (layer_key, generation, digest, format, data)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (layer_key, generation) DO UPDATE"
        " SET digest = EXCLUDED.digest, format = EXCLUDED.format, data = EXCLUDED.data",
        (gen.key, gen.generation, digest, INDEX_FORMAT, index_to_bytes(index)))
    _remember(digest, index)
    return index


def _remember(digest: str, index: AreaIndex) -> None:
    if len(_LOADED) >= _MAX_LOADED:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[digest] = index


def area_indexes(conn: psycopg.Connection, gens: Sequence[Generation],
                 crs: str) -> dict[str, AreaIndex]:
    """The index of each generation: loaded by this process already, kept in
    ``join_indexes``, or built from the stored areas (and then kept)."""
    rows = conn.execute(
        "SELECT j.layer_key, j.generation, j.digest, j.format = %s FROM join_indexes j"
        " JOIN unnest(%s::text[], %s::int[]) AS g(k, n)"
        " ON j.layer_key = g.k AND j.generation = g.n",
        (INDEX_FORMAT, [g.key for g in gens], [g.generation for g in gens])).fetchall()
    kept = {(r[0], r[1]): (r[2], bool(r[3])) for r in rows}
    out: dict[str, AreaIndex] = {}
    for gen in gens:
        digest, usable = kept.get((gen.key, gen.generation), ("", False))
        index = _LOADED.get(digest) if usable else None
        if index is None and usable:
            row = conn.execute(
                "SELECT data FROM join_indexes WHERE layer_key = %s AND generation = %s",
                (gen.key, gen.generation)).fetchone()
            index = index_from_bytes(bytes(row[0])) if row else None
            if index is not None:
                _remember(digest, index)
        if index is None:
            index = keep_index(conn, gen, _read_areas(conn, gen, crs))
        out[gen.key] = index
    return out


def area_rows(ids: pa.Array, x: np.ndarray, y: np.ndarray,
              indexes: dict[str, AreaIndex], *, threads: int | None = None
              ) -> dict[str, pa.Table]:
    """Rows of ``request_areas`` (id, layer key, code) per layer, for the points given,
    in id order; a point outside every area of a layer has no row for it (the rule of
    :func:`geo.joins.locate`, codes built in Arrow from their ranks). The layers are
    located side by side on ``threads`` threads (:func:`geo.joins.locate_layers`; by
    default one per core)."""
    by_id, sorted_ids = _id_order(ids)
    return {key: _layer_rows(key, rank, by_id, sorted_ids, indexes[key])
            for key, rank in locate_layers(x, y, indexes, threads=threads).items()}


def iter_area_rows(ids: pa.Array, x: np.ndarray, y: np.ndarray,
                   indexes: dict[str, AreaIndex]) -> Iterator[tuple[str, pa.Table]]:
    """:func:`area_rows` one layer at a time, in the order of ``indexes``: the layers are
    located one after another on a thread, each a layer ahead of the caller, so the
    caller's work on one layer's rows (a COPY the server is busy with) overlaps the
    locating of the next."""
    keys = list(indexes)
    with ThreadPoolExecutor(1, thread_name_prefix="locate") as pool:
        ahead = pool.submit(locate_ranks, x, y, indexes[keys[0]]) if keys else None
        by_id, sorted_ids = _id_order(ids)  # while the first layer is located
        for i, key in enumerate(keys):
            rank = ahead.result() if ahead is not None else np.empty(0, np.int32)
            ahead = (pool.submit(locate_ranks, x, y, indexes[keys[i + 1]])
                     if i + 1 < len(keys) else None)
            yield key, _layer_rows(key, rank, by_id, sorted_ids, indexes[key])


def _id_order(ids: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Positions of ``ids`` in id order (the bytes' order) and the ids in that order: a
    fresh partition's primary key is then built from presorted input (in a database of
    the C collation)."""
    by_id = byte_order(ids)
    return by_id, ids.take(pa.array(by_id))


def _layer_rows(key: str, rank: np.ndarray, by_id: np.ndarray, sorted_ids: pa.Array,
                index: AreaIndex) -> pa.Table:
    """One layer's rows of ``request_areas`` from the ranks of the points."""
    ranked = rank[by_id]
    inside = ranked >= 0
    codes = ranks_text(ranked[inside], index)
    return pa.table({
        "service_request_id": sorted_ids.filter(pa.array(inside)),
        "layer_key": pa.repeat(pa.scalar(key, pa.string()), len(codes)),
        "code": codes,
    })


def load_area_rows(conn: psycopg.Connection, rows: dict[str, pa.Table], *,
                   bulk: bool) -> None:
    """Replace the codes of the requests in the temporary table ``changed`` by ``rows``.

    Parameters
    ----------
    conn
        Connection inside the write's transaction (``changed`` lists the written ids,
        with ``inserted`` false for the replaced ones).
    rows
        From :func:`area_rows`, for the written requests.
    bulk
        Fill a fresh partition per layer and swap it in, instead of deleting and
        inserting through the indexes.
    """
    if not rows:
        return
    keys = list(rows)
    if not bulk:
        # the replaced ids as an array (an init plan): primary-key probes of each
        # partition, whatever the planner thinks of ``changed``
        conn.execute(
            "DELETE FROM request_areas WHERE service_request_id = ANY (ARRAY("
            " SELECT service_request_id FROM changed WHERE NOT inserted))"
            " AND layer_key = ANY(%s)", (keys,))
        for table in rows.values():
            if table.num_rows:
                copy_arrow(conn, "request_areas", table)
        return
    for key, table in rows.items():
        fill_partition(conn, key, table, keep_unchanged=True)


def fill_partition(conn: psycopg.Connection, key: str, table: pa.Table, *,
                   keep_unchanged: bool) -> None:
    """Make ``table`` (rows of ``request_areas`` for layer ``key``) the layer's partition:
    a fresh table filled and swapped in (:func:`geo.store.postgis_join.swap_partition`).

    With ``keep_unchanged`` the fresh table first takes the old partition's rows of the
    requests not in the temporary table ``changed``; otherwise ``table`` is the whole
    layer.
    """
    _new_layer_table(conn, f"ra_fresh_{key}", key, table,
                     kept_unless_in="changed" if keep_unchanged else None)
    swap_partition(conn, key)


def _new_layer_table(conn: psycopg.Connection, name: str, key: str, table: pa.Table, *,
                     kept_unless_in: str | None) -> None:
    """Create the table ``name`` for layer ``key``'s rows and fill it: with
    ``kept_unless_in`` (a temporary table of ids), the layer's stored rows of the
    requests not in it, then ``table``'s rows."""
    ident = sql.Identifier(name)
    # NOT NULL columns and the layer's CHECK from the start: the swap then has no scan
    # to make for them, nor to prove the rows belong to the partition it attaches
    conn.execute(sql.SQL("CREATE TABLE {} (LIKE request_areas, CHECK (layer_key = {}))")
                 .format(ident, sql.Literal(key)))
    if kept_unless_in is not None:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} SELECT ra.service_request_id, ra.layer_key, ra.code"
                " FROM request_areas ra WHERE ra.layer_key = %s AND NOT EXISTS ("
                " SELECT 1 FROM {} c WHERE c.service_request_id = ra.service_request_id)"
            ).format(ident, sql.Identifier(kept_unless_in)), (key,))
    if table.num_rows:
        # frozen: the table was created above, in this transaction; the layer key is the
        # column's default meanwhile, not sent a million times (12% of the COPY)
        default = sql.SQL("ALTER TABLE {} ALTER layer_key {}").format
        conn.execute(default(ident, sql.SQL("SET DEFAULT {}").format(sql.Literal(key))))
        copy_arrow(conn, name, table.drop_columns(["layer_key"]), freeze=True)
        conn.execute(default(ident, sql.SQL("DROP DEFAULT")))


def stage_partitions(conninfo: str, rows: dict[str, pa.Table], written: pa.Array,
                     stop: HelperStop | None = None) -> list[str]:
    """Fill each layer's next partition of a big write on a connection of its own, while
    the write's connection loads the requests and builds their indexes.

    Each table (:func:`geo.store.postgis_join.stage_name`) takes the layer's stored rows
    of the requests not in ``written`` and then ``rows``; it gets its primary key and
    statistics and is committed, not attached: nothing reads it until the write swaps it
    in (:func:`geo.store.postgis_join.swap_partition` with ``staged``) in its own
    transaction. If that write fails, the tables stay unattached until the next big
    write drops them (the write's caller drops them at once when it can,
    :func:`drop_stages`). Writers take turns on ``requests``, and the caller holds that
    lock, so the stored rows read here are the ones the write sees.

    Parameters
    ----------
    conninfo
        The store's connection string.
    rows
        Layer key → the written requests' rows (:func:`area_rows`).
    written
        Ids of every written request.
    stop
        The write's signal when it fails: the statement running is cancelled, no other
        starts, and nothing is committed (:class:`geo.store.helper_stop.HelperStop`).

    Returns
    -------
    list of str
        The layer keys staged.
    """
    stop = stop or HelperStop()
    # committed at the end, unless stopped (the watch ends before the commit)
    with psycopg.connect(conninfo, connect_timeout=10) as helper, stop.watching(helper):
        # the write waits on this connection in Python, where PostgreSQL sees no
        # deadlock: a lock queued behind another session's (an ALTER, say) fails instead
        helper.execute("SET lock_timeout = '60s'")
        # each primary key built by this process alone: the write's own index builds,
        # the longer path, keep the parallel workers (a 1M first write: 11.4-12.9 s
        # against 11.9-13.1 s, seven runs each, alternating)
        helper.execute("SET max_parallel_maintenance_workers = 0")
        row = helper.execute("SELECT EXISTS (SELECT 1 FROM request_areas)").fetchone()
        keep = bool(row and row[0])
        if keep:
            helper.execute("CREATE TEMP TABLE staged_written (service_request_id text)"
                           " ON COMMIT DROP")
            copy_arrow(helper, "staged_written", pa.table({"service_request_id": written}))
            helper.execute("ANALYZE staged_written")
        for key, table in rows.items():
            stop.check()
            stage = sql.Identifier(stage_name(key))
            helper.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(stage))
            _new_layer_table(helper, stage_name(key), key, table,
                             kept_unless_in="staged_written" if keep else None)
            helper.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {}"
                                   " PRIMARY KEY (service_request_id, layer_key)")
                           .format(stage, sql.Identifier(stage_key_name(key))))
            helper.execute(sql.SQL("ANALYZE {}").format(stage))
    return list(rows)


def drop_stages(conninfo: str, keys: Sequence[str]) -> None:
    """Drop the staged tables of ``keys`` that a failed write left (best effort: a
    failure here is left for the next big write, which drops them first).

    Under the writers' lock on ``requests``: a cleanup that comes late must not drop
    the tables the next write has staged since.
    """
    with suppress(psycopg.Error), psycopg.connect(conninfo, connect_timeout=10) as helper:
        helper.execute("SET lock_timeout = '60s'")
        helper.execute("LOCK TABLE requests IN SHARE ROW EXCLUSIVE MODE")
        for key in keys:
            helper.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(
                sql.Identifier(stage_name(key))))


@contextmanager
def points_read(conn: psycopg.Connection, uri: str | None
                ) -> Iterator[Future[pa.Table] | None]:
    """Lock ``requests`` against writers and read every stored point back meanwhile.

    The read runs through ADBC (``uri``, a second connection) on a thread once the lock
    is held, so its rows are those the caller's transaction sees, and the caller stores
    a generation or loads its indexes while the server sends them.

    Parameters
    ----------
    conn
        Connection inside a transaction that has not written to ``requests``.
    uri
        ADBC URI of the same database; ``None``: nothing is locked or read.

    Yields
    ------
    Future or None
        The points (``service_request_id``, ``x``, ``y``): its result raises when ADBC
        failed or waited more than a minute for a lock (the caller's transaction waits
        on it in Python, where PostgreSQL sees no deadlock). ``None`` without ``uri``.
    """
    if uri is None:
        yield None
        return
    conn.execute("LOCK TABLE requests IN SHARE ROW EXCLUSIVE MODE")
    with ThreadPoolExecutor(1, thread_name_prefix="points") as pool:
        yield pool.submit(fetch_arrow, uri, "SELECT service_request_id, x, y FROM requests",
                          lock_timeout="60s")


def relocate_layers(conn: psycopg.Connection, points: Future[pa.Table],
                    gens: Sequence[Generation], crs: str) -> dict[str, int] | None:
    """Locate every stored request again in the generations ``gens`` (one per layer)
    and make the codes found each layer's whole partition.

    The points are those :func:`points_read` reads; they are located by the embedded
    store's index and rule (:func:`area_rows`, the indexes kept in ``join_indexes``,
    loaded while the points are read), so both stores give the same codes by
    construction, and loaded as a big write loads them.

    Parameters
    ----------
    conn
        The connection :func:`points_read` locked ``requests`` in.
    points
        From :func:`points_read`.
    gens
        The generations to locate in.
    crs
        The city CRS (of ``x``, ``y`` and the stored areas).

    Returns
    -------
    dict or None
        Layer key → requests inside the layer; ``None`` when the points could not be
        read, nothing written.
    """
    indexes = area_indexes(conn, gens, crs)
    try:
        table = points.result()
    except Exception:  # the ADBC driver's own error types: the caller joins in SQL
        return None
    ids = table.column("service_request_id").combine_chunks()
    if not pa.types.is_string(ids.type):  # no rows: PostgreSQL may type the column otherwise
        ids = ids.cast(pa.string())
    inside: dict[str, int] = {}
    for key, rows in iter_area_rows(ids, _floats(table.column("x")),
                                    _floats(table.column("y")), indexes):
        fill_partition(conn, key, rows, keep_unchanged=False)
        inside[key] = rows.num_rows
    return inside


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """A float column as NumPy, null as NaN."""
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype="float64")
