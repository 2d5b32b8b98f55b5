"""Boundary layers in the PostGIS store: storing generations and joining requests to them.

A generation's areas go to ``areas`` (codes unique per layer and generation) and their
``ST_Subdivide`` pieces (at most :data:`geo.joins.MAX_VERTICES` vertices each) to
``area_pieces``, which has a GiST index. A request gets, per layer, the lowest code of
the areas that ``ST_Covers`` it, compared with ``COLLATE "C"``: the shared-edge rule of
:mod:`geo.joins`. Results are rows of ``request_areas``, partitioned by layer
(migration 0003); a request outside every area of a layer has no row for it.

Joining a few requests (a small ingest) probes the pieces' index once per request.
Joining many goes pieces first: each piece probes the requests' GiST index, so PostGIS
tests one small polygon against many points in a row and reuses its prepared form.
Re-joining a whole layer fills a fresh partition and swaps it in.

The store joins here only when it cannot read the points back through ADBC: a new
generation and a re-join locate the requests in Python
(:func:`geo.store.postgis_areas.relocate_layers`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import geopandas as gpd
import psycopg
import shapely
from psycopg import sql

from geo.joins import MAX_VERTICES
from layers.registry import Generation


def insert_generation(
    conn: psycopg.Connection, gen: Generation, areas: gpd.GeoDataFrame, srid: int
) -> None:
    """Store a generation's metadata, areas and subdivided pieces.

    Parameters
    ----------
    conn
        Connection inside a transaction.
    gen
        The generation's metadata (key and number already decided).
    areas
        ``code``, ``name``, ``geometry`` in the city CRS.
    srid
        The city SRID.
    """
    conn.execute("INSERT INTO layers (layer_key) VALUES (%s) ON CONFLICT DO NOTHING", (gen.key,))
    conn.execute(
        "INSERT INTO generations (layer_key, generation, title, valid_from, source, id_field,"
        " name_field, n_areas) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            gen.key,
            gen.generation,
            gen.title,
            gen.valid_from,
            gen.source,
            gen.id_field,
            gen.name_field,
            gen.n_areas,
        ),
    )
    wkb = shapely.to_wkb(areas.geometry.to_numpy())
    rows = [
        (gen.key, gen.generation, str(code), None if name is None else str(name), bytes(w), srid)
        for code, name, w in zip(areas["code"], areas["name"], wkb, strict=True)
    ]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO areas (layer_key, generation, code, name, geom)"
            " VALUES (%s, %s, %s, %s, ST_GeomFromWKB(%s, %s))",
            rows,
        )
    conn.execute(
        "INSERT INTO area_pieces (layer_key, generation, code, geom)"
        " SELECT layer_key, generation, code, ST_Subdivide(geom, %s)"
        " FROM areas WHERE layer_key = %s AND generation = %s",
        (MAX_VERTICES, gen.key, gen.generation),
    )
    # fresh statistics, or the planner may scan every piece for every point
    conn.execute("ANALYZE area_pieces")


def set_active(conn: psycopg.Connection, active: dict[str, Generation]) -> None:
    """Set the ``active`` flag on exactly the given generations."""
    keys = list(active)
    gens = [active[k].generation for k in keys]
    conn.execute("UPDATE generations SET active = false WHERE active")
    conn.execute(
        "UPDATE generations g SET active = true FROM unnest(%s::text[], %s::int[]) AS a(k, n)"
        " WHERE g.layer_key = a.k AND g.generation = a.n",
        (keys, gens),
    )


def join_requests(
    conn: psycopg.Connection, gens: Sequence[Generation], *, only_changed: bool
) -> dict[str, int]:
    """(Re)compute ``request_areas`` for the layers of ``gens``.

    Three ways, by how many requests are to be joined:

    - every stored request (``only_changed=False``, or ``changed`` holds at least half of
      them): each layer's partition is rebuilt whole by :func:`replace_layer`;
    - fewer than 1/:data:`SMALL_FRACTION` of them: one ``area_pieces`` index probe per
      changed request (:func:`_join_few`);
    - in between: the pieces-first join of :func:`replace_layer`, restricted to the
      changed requests, into the existing partitions.

    Parameters
    ----------
    conn
        Connection inside a transaction.
    gens
        The generation to join to, one per layer.
    only_changed
        Join only the requests listed in the temporary table ``changed`` (written by
        :func:`geo.store.postgis_load.upsert_requests`); otherwise every stored request.

    Returns
    -------
    dict
        Layer key → requests inside the layer, for the layers rebuilt whole (none when
        only some requests were joined).
    """
    if not gens:
        return {}
    # JIT compilation of these statements costs more than it saves (measured ~0.4 s a
    # statement against joins of a few seconds); off for the rest of this transaction.
    conn.execute("SELECT set_config('jit', 'off', true)")
    if only_changed:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM changed),"
            " (SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = 'requests'::regclass)"
        ).fetchone()
        n_changed, n_stored = (int(row[0]), int(row[1])) if row else (0, 0)
        if n_changed * 2 < n_stored:
            params = {"keys": [g.key for g in gens], "gens": [g.generation for g in gens]}
            conn.execute("ANALYZE changed")
            conn.execute(
                "DELETE FROM request_areas ra USING changed c"
                " WHERE ra.service_request_id = c.service_request_id"
                " AND ra.layer_key = ANY(%(keys)s)",
                params,
            )
            if n_changed * SMALL_FRACTION < n_stored:
                _join_few(conn, params)
            else:
                for gen in gens:
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO request_areas (service_request_id, layer_key, code) {}"
                        ).format(_pieces_query(only_changed=True)),
                        {"key": gen.key, "gen": gen.generation},
                    )
            return {}
    # writers wait (write_batch holds this lock already): rows they would add to a
    # partition about to be replaced would be lost with it
    conn.execute("LOCK TABLE requests IN SHARE ROW EXCLUSIVE MODE")
    conn.execute("ANALYZE requests")
    return {gen.key: replace_layer(conn, gen) for gen in gens}


#: Joining only changed requests looks each one up in ``area_pieces`` when they are fewer
#: than 1/SMALL_FRACTION of the stored requests.
SMALL_FRACTION: Final = 20


def partition_name(key: str) -> str:
    """Name of layer ``key``'s partition of ``request_areas`` (see migration 0003)."""
    return f"ra_layer_{key}"


def own_partitions(conn: psycopg.Connection, keys: Sequence[str]) -> set[str]:
    """The layer keys of ``keys`` that have a partition of ``request_areas`` of their
    own (:func:`partition_name`; a layer without one keeps its rows in ``ra_default``)."""
    found = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'request_areas'::regclass AND c.relname = ANY(%s)",
        ([partition_name(k) for k in keys],),
    ).fetchall()
    names = {row[0] for row in found}
    return {k for k in keys if partition_name(k) in names}


def stage_name(key: str) -> str:
    """Name of the committed table a big write fills as layer ``key``'s next partition
    on a connection of its own (:func:`geo.store.postgis_areas.stage_partitions`)."""
    return f"ra_stage_{key}"


def stage_key_name(key: str) -> str:
    """Name of that table's primary key until it is swapped in (a prefix no table name
    of ours starts with: ``ra_stage_pkey_<k>`` would be layer ``pkey_<k>``'s table)."""
    return f"ra_spk_{key}"


def replace_layer(conn: psycopg.Connection, gen: Generation) -> int:
    """Re-join every stored request to ``gen`` and swap in the layer's new partition.

    The rows are made by one ``CREATE TABLE … AS`` (which, unlike ``INSERT … SELECT``,
    may run on parallel workers); the old partition (or the layer's rows in
    ``ra_default``) is dropped; the fresh table gets its primary key in one sorted
    build and is attached as the layer's partition. Far cheaper than deleting and
    re-inserting a layer's rows through an index. ``DETACH``/``ATTACH`` lock
    ``request_areas`` until commit: readers wait for a whole-layer re-join.

    Parameters
    ----------
    conn
        Connection inside a transaction.
    gen
        The generation to join to; its layer key passed
        :func:`layers.registry.validate_layer_key`.

    Returns
    -------
    int
        Requests inside the layer (rows of the new partition).
    """
    fresh = sql.Identifier(f"ra_fresh_{gen.key}")
    # let the planner use parallel workers for the pieces: few rows, but each one is
    # a scan of the requests' index and thousands of ST_Covers tests
    for setting in ("parallel_setup_cost", "parallel_tuple_cost", "min_parallel_table_scan_size"):
        conn.execute("SELECT set_config(%s, '0', true)", (setting,))
    made = conn.execute(
        sql.SQL("CREATE TABLE {fresh} AS {rows}").format(
            fresh=fresh, rows=_pieces_query(only_changed=False)
        ),
        {"key": gen.key, "gen": gen.generation},
    )
    inside = made.rowcount
    swap_partition(conn, gen.key)
    return inside


def swap_partition(conn: psycopg.Connection, key: str, *, staged: bool = False) -> None:
    """Make the table ``ra_fresh_<key>`` layer ``key``'s partition of ``request_areas``.

    The old partition (or the layer's rows in ``ra_default``) is dropped; the fresh
    table gets its primary key in one sorted build, is attached and analyzed. With
    ``staged`` the table is :func:`stage_name`'s instead, keyed and analyzed already:
    it is renamed and attached.
    """
    name = sql.Identifier(partition_name(key))
    fresh = sql.Identifier(stage_name(key) if staged else f"ra_fresh_{key}")
    if own_partitions(conn, [key]):
        conn.execute(sql.SQL("ALTER TABLE request_areas DETACH PARTITION {}").format(name))
        conn.execute(sql.SQL("DROP TABLE {}").format(name))
    conn.execute("DELETE FROM ra_default WHERE layer_key = %s", (key,))
    conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(fresh, name))
    if staged:
        conn.execute(sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
            name, sql.Identifier(stage_key_name(key)), sql.Identifier(f"ra_pkey_{key}")))
    else:
        conn.execute(
            sql.SQL(
                "ALTER TABLE {} ALTER service_request_id SET NOT NULL,"
                " ALTER layer_key SET NOT NULL, ALTER code SET NOT NULL,"
                " ADD CONSTRAINT {} PRIMARY KEY (service_request_id, layer_key)"
            ).format(name, sql.Identifier(f"ra_pkey_{key}"))
        )
    conn.execute(
        sql.SQL("ALTER TABLE request_areas ATTACH PARTITION {} FOR VALUES IN ({})").format(
            name, sql.Literal(key)
        )
    )
    if staged:
        return
    # statistics now, while its pages are in memory: without them the planner sees a
    # fresh table and chose to scan a million-row partition for a 1,000-row write
    # (~3 s against ~0.3 s at 1M requests; bench/feeds.py --postgis)
    conn.execute(sql.SQL("ANALYZE {}").format(name))


def _pieces_query(*, only_changed: bool) -> sql.Composed:
    """Rows (id, layer key, lowest code) of the requests covered by a generation's areas.

    Pieces first: each ``area_pieces`` row (at most :data:`geo.joins.MAX_VERTICES`
    vertices) probes the GiST index of ``requests.geom_city``, so ``ST_Covers`` tests one
    small polygon against the points in its box, many times in a row, and PostGIS reuses
    the polygon's prepared form. ``LATERAL`` keeps that direction whatever the planner's
    estimates (per-point probes measured 10x slower). The first row per request in the
    order of ``code COLLATE "C"`` is the shared-edge rule (it also folds the pieces of
    one area that meet at a point); ``DISTINCT ON`` keeps it, the rows in id byte order
    (as a whole-layer load writes them: the key builds from presorted input, and
    :mod:`geo.store.id_order` merges them), 6% faster than ``GROUP BY``
    with ``min`` at 1M requests. Parameters ``key`` and ``gen``; with ``only_changed``,
    only requests in ``changed``.
    """
    only = (
        sql.SQL(
            " AND EXISTS (SELECT 1 FROM changed c"
            " WHERE c.service_request_id = r.service_request_id)"
        )
        if only_changed
        else sql.SQL("")
    )
    return sql.SQL(
        'SELECT DISTINCT ON (m.service_request_id COLLATE "C")'
        " m.service_request_id, %(key)s::text AS layer_key, p.code"
        " FROM area_pieces p CROSS JOIN LATERAL ("
        "   SELECT r.service_request_id FROM requests r"
        "   WHERE ST_Covers(p.geom, r.geom_city){only}) AS m"
        " WHERE p.layer_key = %(key)s AND p.generation = %(gen)s"
        ' ORDER BY m.service_request_id COLLATE "C", p.code COLLATE "C"'
    ).format(only=only)


def _join_few(conn: psycopg.Connection, params: dict[str, object]) -> None:
    """Join the requests in ``changed``: one ``area_pieces`` index probe per request."""
    conn.execute(
        "INSERT INTO request_areas (service_request_id, layer_key, code)"
        " SELECT r.service_request_id, best.layer_key, best.code"
        " FROM changed c JOIN requests r USING (service_request_id) CROSS JOIN LATERAL ("
        '   SELECT p.layer_key, min(p.code COLLATE "C") AS code'
        "   FROM area_pieces p"
        "   JOIN unnest(%(keys)s::text[], %(gens)s::int[]) AS a(layer_key, generation)"
        "     ON p.layer_key = a.layer_key AND p.generation = a.generation"
        "   WHERE ST_Covers(p.geom, r.geom_city)"
        "   GROUP BY p.layer_key) AS best"
        " WHERE r.geom_city IS NOT NULL",
        params,
    )
