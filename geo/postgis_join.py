"""Boundary layers in the PostGIS store: storing generations and joining requests to them.

A generation's areas go to ``areas`` (codes unique per layer and generation) and their
``ST_Subdivide`` pieces (at most :data:`geo.joins.MAX_VERTICES` vertices each) to
``area_pieces``, which has a GiST index. Joining a few requests (a small ingest) probes
that index once per request; joining many (a rejoin, a big load) is one statement over
the whole ``areas`` of the active generations, like a hand-written indexed ``ST_Covers``
join (measured at 1M requests: 2.5x faster than probing the pieces, which defeats
PostGIS's prepared-polygon cache). Either way a request gets, per layer, the lowest code
of the areas that ``ST_Covers`` it, compared with ``COLLATE "C"``: the shared-edge rule
of :mod:`geo.joins`. Results are rows of
``request_areas``; a request outside every area of a layer has no row for it.
"""

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
) -> None:
    """(Re)compute ``request_areas`` for the layers of ``gens``.

    Parameters
    ----------
    conn
        Connection inside a transaction.
    gens
        The generation to join to, one per layer.
    only_changed
        Join only the requests listed in the temporary table ``changed`` (written by
        :func:`geo.postgis_load.upsert_requests`); otherwise every stored request.
    """
    if not gens:
        return
    params = {"keys": [g.key for g in gens], "gens": [g.generation for g in gens]}
    conn.execute("ANALYZE changed" if only_changed else "ANALYZE requests")
    if only_changed:
        conn.execute(
            "DELETE FROM request_areas ra USING changed c"
            " WHERE ra.service_request_id = c.service_request_id AND ra.layer_key = ANY(%(keys)s)",
            params,
        )
        row = conn.execute(
            "SELECT (SELECT count(*) FROM changed),"
            " (SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = 'requests'::regclass)"
        ).fetchone()
        n_changed, n_stored = (int(row[0]), int(row[1])) if row else (0, 0)
        if n_changed * SMALL_FRACTION < n_stored:
            _join_few(conn, params)
            return
        only = sql.SQL(
            " WHERE EXISTS (SELECT 1 FROM changed c"
            " WHERE c.service_request_id = r.service_request_id)"
        )
    else:
        conn.execute("DELETE FROM request_areas WHERE layer_key = ANY(%(keys)s)", params)
        only = sql.SQL("")
    # The planner picks the direction (usually: each area probes the requests' GiST index,
    # so ST_Covers sees one polygon many times in a row and PostGIS reuses its prepared
    # form); min(code COLLATE "C") keeps the lowest code in code-point order per request
    # and layer, with a hash aggregate instead of sorting every match.
    conn.execute(
        sql.SQL(
            "INSERT INTO request_areas (service_request_id, layer_key, code)"
            ' SELECT r.service_request_id, a.layer_key, min(a.code COLLATE "C")'
            " FROM areas a"
            " JOIN unnest({keys}::text[], {gens}::int[]) AS g(layer_key, generation)"
            "   ON a.layer_key = g.layer_key AND a.generation = g.generation"
            " JOIN requests r ON ST_Covers(a.geom, r.geom_city){only}"
            " GROUP BY r.service_request_id, a.layer_key"
        ).format(keys=sql.Placeholder("keys"), gens=sql.Placeholder("gens"), only=only),
        params,
    )


#: Joining only changed requests looks each one up in ``area_pieces`` when they are fewer
#: than 1/SMALL_FRACTION of the stored requests; otherwise the whole-area join is used.
SMALL_FRACTION: Final = 20


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


def outside_counts(conn: psycopg.Connection, keys: Sequence[str]) -> dict[str, int]:
    """Layer key → stored requests with no area of that layer."""
    total_row = conn.execute("SELECT count(*) FROM requests").fetchone()
    total = int(total_row[0]) if total_row else 0
    counts: dict[str, int] = dict(
        conn.execute(
            "SELECT layer_key, count(*) FROM request_areas WHERE layer_key = ANY(%s)"
            " GROUP BY layer_key",
            (list(keys),),
        ).fetchall()
    )
    return {k: total - int(counts.get(k, 0)) for k in keys}
