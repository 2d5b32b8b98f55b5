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
(:func:`geo.store.postgis_join.swap_partition`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

import geopandas as gpd
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from psycopg import sql

from geo.joins import (
    INDEX_FORMAT,
    AreaIndex,
    build_index,
    index_from_bytes,
    index_to_bytes,
    locate_layers,
    ranks_text,
)
from geo.store.pgcopy import copy_arrow
from geo.store.postgis_join import swap_partition
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
              indexes: dict[str, AreaIndex]) -> dict[str, pa.Table]:
    """Rows of ``request_areas`` (id, layer key, code) per layer, for the points given,
    in id order; a point outside every area of a layer has no row for it (the rule of
    :func:`geo.joins.locate`, codes built in Arrow from their ranks)."""
    out: dict[str, pa.Table] = {}
    # rows in id order (the bytes' order): the primary key of a fresh partition is then
    # built from presorted input (in a database of the C collation)
    by_id = pc.sort_indices(ids).to_numpy().astype(np.int64)
    sorted_ids = ids.take(pa.array(by_id))
    for key, rank in locate_layers(x, y, indexes).items():
        index = indexes[key]
        ranked = rank[by_id]
        inside = ranked >= 0
        codes = ranks_text(ranked[inside], index)
        out[key] = pa.table({
            "service_request_id": sorted_ids.filter(pa.array(inside)),
            "layer_key": pa.repeat(pa.scalar(key, pa.string()), len(codes)),
            "code": codes,
        })
    return out


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
        fresh = sql.Identifier(f"ra_fresh_{key}")
        # NOT NULL columns and the layer's CHECK from the start: the swap then has no scan
        # to make for them, nor to prove the rows belong to the partition it attaches
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE request_areas, CHECK (layer_key = {}))")
                     .format(fresh, sql.Literal(key)))
        conn.execute(
            sql.SQL(
                "INSERT INTO {} SELECT ra.service_request_id, ra.layer_key, ra.code"
                " FROM request_areas ra WHERE ra.layer_key = %s AND NOT EXISTS ("
                " SELECT 1 FROM changed c WHERE c.service_request_id = ra.service_request_id)"
            ).format(fresh), (key,))
        if table.num_rows:
            copy_arrow(conn, f"ra_fresh_{key}", table)
        swap_partition(conn, key)
