"""The PostGIS store's answers to :mod:`geo.store.reads`: counts and few rows, in SQL.

Every statement is composed with :mod:`psycopg.sql` (identifiers) and bound parameters
(values). A filter becomes one ``WHERE`` clause (:func:`where_clause`): area filters are
semi-joins on ``request_areas`` (its primary key leads with the request id), a map box
uses the GiST index on ``geom_city`` (the box, segmentized and projected to the city CRS,
padded) and then the exact latitude/longitude test, so a box at street level reads only
the pages holding its requests. Counts are computed by the server; only the counts come
back (a grid cell, an area, a value: one row each).

The export log is the table ``export_audit`` (migration 0008), the one table the app's
read-only role may insert into (``hotspot311 db grant-readonly``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.types.json import Jsonb

from geo.store.embedded_reads import AUDIT_COLUMNS, order_counts
from geo.store.postgis_query import held
from geo.store.reads import (
    FACET_CELL_COLUMNS,
    FACET_COLUMNS,
    GROUPABLE,
    BatchLogHead,
    RequestFilter,
    RequestSummary,
    TableCounts,
    facet_cells_frame,
    lon_ranges,
    reason_counts,
)
from hotspot311.errors import InputError, StoreError, describe
from hotspot311.schema import CANONICAL_FIELDS, DERIVED_FIELDS, STORE_FIELDS

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from layers.registry import Generation

#: Stored request columns (besides layer codes) a select may return.
REQUEST_TABLE_COLUMNS = tuple(c for c in (*CANONICAL_FIELDS, *DERIVED_FIELDS, *STORE_FIELDS)
                              if c != "row_hash")
#: Tables the app's role must not change (``write_privileges``).
GUARDED_TABLES = ("requests", "request_areas", "quarantine", "batches", "layers",
                  "generations", "areas", "area_pieces", "hotspot_runs", "hotspots",
                  "hotspot_members", "contacts", "store_meta")
#: Widest box (degrees) for which the GiST index on geom_city is used.
_INDEXED_BOX_DEG = 5.0


class PostGISReads:
    """Pushed-down reads for :class:`geo.store.postgis.PostGISStore` (a mixin).

    Needs ``srid``, ``layer_keys()`` and ``_connection()`` of the store.
    """

    srid: int
    if TYPE_CHECKING:  # the store's own
        def layer_keys(self) -> tuple[str, ...]: ...
        def active(self) -> dict[str, Generation]: ...
        def describe(self) -> str: ...
        pool: ConnectionPool
        def _connection(self) -> AbstractContextManager[psycopg.Connection]: ...

    def request_summary(self, filt: RequestFilter, *, now: datetime | None = None
                        ) -> RequestSummary:
        """Headline numbers (see :meth:`geo.store.base.Store.request_summary`)."""
        where, params = where_clause(filt.check(self.layer_keys()), self.srid)
        stmt = sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE r.status = 'open'),"
            " count(*) FILTER (WHERE r.status = 'open' AND r.expected_datetime < %s),"
            " count(*) FILTER (WHERE r.synthetic),"
            " min(r.requested_datetime), max(r.requested_datetime)"
            " FROM requests r WHERE {}").format(where)
        with self._connection() as conn:
            row = conn.execute(stmt, [now, *params]).fetchone()
        if row is None or not row[0]:
            return RequestSummary()
        return RequestSummary(count=int(row[0]), open=int(row[1]), overdue=int(row[2] or 0),
                              synthetic=int(row[3]), first=_stamp(row[4]), last=_stamp(row[5]))

    def group_counts(self, filt: RequestFilter, column: str, *, now: datetime | None = None
                     ) -> pd.DataFrame:
        """Requests, open and overdue per value (see :meth:`geo.store.base.Store.group_counts`)."""
        keys = self.layer_keys()
        where, params = where_clause(filt.check(keys), self.srid)
        if column in keys:
            value: sql.Composable = sql.SQL("a.code")
            source = sql.SQL("requests r LEFT JOIN request_areas a ON a.service_request_id"
                             " = r.service_request_id AND a.layer_key = %s")
            params = [now, column, *params]
        elif column in GROUPABLE:
            value, source = sql.Identifier("r", column), sql.SQL("requests r")
            params = [now, *params]
        else:
            raise InputError(f"column: got {describe(column)}; allowed: "
                             f"{', '.join((*GROUPABLE, *keys))}")
        stmt = sql.SQL(
            "SELECT {value}, count(*), count(*) FILTER (WHERE r.status = 'open'),"
            " count(*) FILTER (WHERE r.status = 'open' AND r.expected_datetime < %s)"
            " FROM {source} WHERE {where} GROUP BY 1").format(value=value, source=source,
                                                              where=where)
        with self._connection() as conn:
            rows = conn.execute(stmt, params).fetchall()
        out = pd.DataFrame([r[1:] for r in rows], columns=["requests", "open", "overdue"],
                           index=pd.Index([r[0] for r in rows], dtype=object))
        return order_counts(out.fillna(0))

    def grid_cells(self, filt: RequestFilter, *, grid_deg: float) -> pd.DataFrame:
        """Requests per grid cell (see :meth:`geo.store.base.Store.grid_cells`)."""
        where, params = where_clause(filt.check(self.layer_keys()), self.srid)
        stmt = sql.SQL(
            "SELECT floor(r.lat / %s)::int8, floor(r.lon / %s)::int8, count(*) FROM requests r"
            " WHERE {} AND r.lat IS NOT NULL AND r.lon IS NOT NULL"
            " AND r.lat <> 'NaN' AND r.lon <> 'NaN' GROUP BY 1, 2 ORDER BY 1, 2").format(where)
        size = float(grid_deg)
        table = self._fetch_arrow(stmt, [size, size, *params])
        if table is not None:  # tens of thousands of cells: as Arrow, no tuple per cell
            return pd.DataFrame({name: table.column(i).to_numpy().astype("int64", copy=False)
                                 for i, name in enumerate(("row", "col", "n"))})
        with self._connection() as conn, conn.cursor(binary=True) as cur:
            cur.execute(stmt, [size, size, *params])
            rows = cur.fetchall()
        return pd.DataFrame(rows, columns=["row", "col", "n"]).astype("int64")

    def facet_cells(self, *, grid_deg: float, limit: int | None = None
                    ) -> pd.DataFrame | None:
        """Requests per grid cell and facet, one scan (see
        :meth:`geo.store.base.Store.facet_cells`)."""
        stmt: sql.SQL | sql.Composed = sql.SQL(
            "SELECT service_name, agency_responsible, status, floor(r.lat / %s)::int8 AS row,"
            " floor(r.lon / %s)::int8 AS col, count(*) AS n FROM requests r"
            " WHERE r.lat IS NOT NULL AND r.lon IS NOT NULL AND r.lat <> 'NaN'"
            " AND r.lon <> 'NaN' GROUP BY 1, 2, 3, 4, 5")
        params: list[Any] = [float(grid_deg), float(grid_deg)]
        if limit is not None:
            stmt = sql.SQL("{} LIMIT %s").format(stmt)
            params.append(int(limit) + 1)
        table = self._fetch_arrow(stmt, params)
        if table is None:
            with self._connection() as conn, conn.cursor(binary=True) as cur:
                cur.execute(stmt, params)
                rows = cur.fetchall()
            table = pa.table({c: [r[i] for r in rows] for i, c in enumerate(
                FACET_CELL_COLUMNS)}, schema=pa.schema([
                    *((c, pa.string()) for c in FACET_CELL_COLUMNS[:3]),
                    *((c, pa.int64()) for c in FACET_CELL_COLUMNS[3:])]))
        if limit is not None and table.num_rows > limit:
            return None
        return facet_cells_frame(table if table.num_rows else None)

    def select_requests(self, filt: RequestFilter, columns: Sequence[str] | None = None, *,
                        limit: int | None = None) -> pd.DataFrame:
        """Some columns of the matching rows (see :meth:`geo.store.base.Store.select_requests`)."""
        keys = self.layer_keys()
        where, params = where_clause(filt.check(keys), self.srid)
        wanted = list(dict.fromkeys(columns)) if columns is not None else [
            *REQUEST_TABLE_COLUMNS, *keys]
        names = [c for c in wanted if c in REQUEST_TABLE_COLUMNS or c in keys]
        exprs: list[sql.Composable] = []
        joins: list[sql.Composable] = []
        join_params: list[Any] = []
        for i, c in enumerate(names):
            if c in keys and c not in REQUEST_TABLE_COLUMNS:
                alias = f"a{i}"
                exprs.append(sql.SQL("{}.code").format(sql.Identifier(alias)))
                joins.append(sql.SQL(
                    " LEFT JOIN request_areas {a} ON {a}.service_request_id ="
                    " r.service_request_id AND {a}.layer_key = %s").format(
                        a=sql.Identifier(alias)))
                join_params.append(c)
            elif c == "extra":
                exprs.append(sql.SQL("r.extra::text"))
            else:
                exprs.append(sql.Identifier("r", c))
        # each column named as asked (the area codes are all "code" otherwise)
        exprs = [sql.SQL("{} AS {}").format(e, sql.Identifier(n))
                 for e, n in zip(exprs, names, strict=True)] or [sql.SQL("NULL")]
        stmt = sql.SQL("SELECT {} FROM requests r{} WHERE {}").format(
            sql.SQL(", ").join(exprs), sql.SQL("").join(joins), where)
        if limit is not None:
            stmt = sql.SQL("{} LIMIT {}").format(stmt, sql.Literal(int(limit)))
        elif names and not filt.ids and not filt.problems:
            # a window, a box, a filter: maybe many rows, read as Arrow (no Python
            # object per value; a hotspot run's window at 1M is ~200k rows)
            frame = self._arrow_rows(stmt, [*join_params, *params], names, keys)
            if frame is not None:
                return frame
        with self._connection() as conn:
            rows = conn.execute(stmt, [*join_params, *params]).fetchall()
        frame = pd.DataFrame(rows if names else [], columns=names, dtype=object)
        return _typed(frame)

    def facet_counts(self, *, now: datetime | None = None) -> pd.DataFrame:
        """Counts by type, department and status, one scan (see
        :meth:`geo.store.base.Store.facet_counts`)."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT service_name, agency_responsible, status, count(*),"
                " count(*) FILTER (WHERE status = 'open' AND expected_datetime < %s),"
                " count(*) FILTER (WHERE synthetic), min(requested_datetime),"
                " max(requested_datetime) FROM requests GROUP BY 1, 2, 3", (now,)).fetchall()
        frame = pd.DataFrame(rows, columns=list(FACET_COLUMNS), dtype=object)
        for c in ("requests", "overdue", "synthetic"):
            frame[c] = frame[c].astype("int64")
        for c in ("first", "last"):
            frame[c] = pd.to_datetime(frame[c], utc=True)
        return frame

    def _adbc_uri(self) -> str | None:
        """The URI ADBC reads this store with; ``None`` when ADBC cannot take its
        connection string (see :func:`geo.store.postgis_read.adbc_uri`)."""
        from geo.store import postgis_read

        conninfo = self.pool.conninfo
        return postgis_read.adbc_uri(conninfo) if isinstance(conninfo, str) else None

    def _fetch_arrow(self, stmt: sql.Composable, params: Sequence[Any]) -> pa.Table | None:
        """Rows of ``stmt`` through ADBC as an Arrow table (the values bound by psycopg's
        client-side binding); ``None`` when ADBC cannot connect with this store's
        connection string."""
        from geo.store import postgis_read

        uri = self._adbc_uri()
        if uri is None:
            return None
        with self._connection() as conn:
            text = psycopg.ClientCursor(conn).mogrify(sql.Composed([stmt]), list(params))
        try:
            return postgis_read.fetch_arrow(uri, text)
        except Exception as err:  # the ADBC driver's own error types
            raise StoreError(f"{self.describe()}: reading requests failed ({err})") from err

    def _arrow_rows(self, stmt: sql.Composable, params: list[Any], names: list[str],
                    keys: tuple[str, ...]) -> pd.DataFrame | None:
        """Rows of ``stmt`` through ADBC as Arrow (the values bound by psycopg's client-side
        binding); ``None`` when ADBC cannot connect with this store's connection string."""
        from geo.store import postgis_read

        table = self._fetch_arrow(stmt, params)
        if table is None:
            return None
        types = postgis_read.read_types(())
        texts = [c for c in names if c in keys or types.get(c) == pa.string()
                 or c == "extra"]
        frame = postgis_read.frame_from_arrow(table, text_columns=texts, compact=True)
        del table
        postgis_read.return_freed_memory()
        frame.columns = names
        return _typed(frame)

    def latest_request(self, filt: RequestFilter) -> pd.Timestamp | None:
        """Newest request time (see :meth:`geo.store.base.Store.latest_request`): for one
        service type, a probe of the index ``requests_service_order`` (migration 0012)."""
        where, params = where_clause(filt.check(self.layer_keys()), self.srid)
        stmt = sql.SQL("SELECT max(r.requested_datetime) FROM requests r WHERE {}").format(where)
        with self._connection() as conn:
            row = conn.execute(stmt, params).fetchone()
        return None if row is None else _stamp(row[0])

    def problem_count(self, filt: RequestFilter) -> int:
        """Distinct problems (see :meth:`geo.store.base.Store.problem_count`)."""
        where, params = where_clause(filt.check(self.layer_keys()), self.srid)
        stmt = sql.SQL("SELECT count(DISTINCT coalesce(r.problem_id, 'request:' ||"
                       " r.service_request_id)) FROM requests r WHERE {}").format(where)
        with self._connection() as conn:
            row = conn.execute(stmt, params).fetchone()
        return int(row[0]) if row else 0

    def area_names(self, key: str) -> dict[str, str]:
        """Code → name of the active areas of ``key`` (no geometry read)."""
        generation = self.active()[key].generation if key in self.active() else None
        if generation is None:
            raise StoreError(f"layer {key!r} is not in {self.describe()}; layers: "
                             f"{list(self.layer_keys())}")
        with self._connection() as conn:
            rows = conn.execute("SELECT code, name FROM areas WHERE layer_key = %s AND"
                                " generation = %s", (key, generation)).fetchall()
        return {str(r[0]): str(r[1]) for r in rows}

    def request_centre(self) -> tuple[float, float] | None:
        """Median (lat, lon) of the stored requests, ``None`` when there are none."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lat),"
                " percentile_cont(0.5) WITHIN GROUP (ORDER BY lon) FROM requests"
                " WHERE lat <> 'NaN' AND lon <> 'NaN'").fetchone()
        if row is None or row[0] is None:
            return None
        return float(row[0]), float(row[1])

    def contact_counts(self, request_id: str) -> tuple[int, int]:
        """Contacts, and phone calls among them, that named ``request_id``."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE channel = 'phone') FROM contacts"
                " WHERE service_request_id = %s", (str(request_id),)).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def table_counts(self) -> TableCounts:
        """Quarantine, contact and batch counts, counted by the server."""
        with self._connection() as conn:
            quarantine = conn.execute(
                "SELECT reason, count(*) FROM quarantine GROUP BY reason").fetchall()
            held = conn.execute(
                "SELECT reason, count(*) FROM contact_quarantine GROUP BY reason").fetchall()
            contacts = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE synthetic), min(received_datetime),"
                " max(received_datetime) FROM contacts").fetchone()
            batches = conn.execute("SELECT count(*) FROM batches").fetchone()
        n, synthetic, first, last = contacts if contacts else (0, 0, None, None)
        return TableCounts(
            quarantine=reason_counts(quarantine), contact_quarantine=reason_counts(held),
            contacts=int(n), contacts_synthetic=int(synthetic),
            contacts_first=pd.Timestamp(first).tz_convert("UTC") if first else None,
            contacts_last=pd.Timestamp(last).tz_convert("UTC") if last else None,
            batches=int(batches[0]) if batches else 0)

    def batch_log_head(self) -> BatchLogHead:
        """Rows, newest ``batch_id`` and newest ``ingested_at`` of the ingest log, from
        the server (the newest row by ``seq``, the primary key)."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT count(*), date_trunc('second', max(ingested_at)),"
                " (SELECT batch_id FROM batches ORDER BY seq DESC LIMIT 1) FROM batches"
            ).fetchone()
        if row is None or not row[0]:
            return BatchLogHead()
        return BatchLogHead(batches=int(row[0]), last_batch=str(row[2]),
                            last_ingested=pd.Timestamp(row[1]).tz_convert("UTC"))

    def write_privileges(self) -> list[str]:
        """Tables of requests and layers this role may insert into, change or empty
        (superusers may change every one); ``export_audit`` is not counted."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
                " AND c.relname = ANY(%s) AND (has_table_privilege(c.oid,"
                " 'INSERT, UPDATE, DELETE, TRUNCATE')"
                " OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))"
                " ORDER BY c.relname", (list(GUARDED_TABLES),)).fetchall()
        return [str(r[0]) for r in rows]

    # --- the export log ---------------------------------------------------------------
    def record_export(self, *, user: str, role: str, department: str | None, what: str,
                      filters: dict[str, Any], rows: int) -> None:
        """Insert one export into ``export_audit`` (see
        :meth:`geo.store.base.Store.record_export`)."""
        with self._connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO export_audit (user_name, role, department, what, filters, rows)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (user, role, department, what, Jsonb(filters), int(rows)))

    def exports(self) -> pd.DataFrame:
        """Every recorded export, oldest first (see :meth:`geo.store.base.Store.exports`)."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT exported_at, user_name, role, department, what, filters, rows"
                " FROM export_audit ORDER BY audit_id").fetchall()
        frame = pd.DataFrame(rows, columns=list(AUDIT_COLUMNS), dtype=object)
        frame["exported_at"] = [t.isoformat(timespec="seconds") for t in frame["exported_at"]]
        frame["rows"] = frame["rows"].astype("int64")
        return frame


def where_clause(filt: RequestFilter, srid: int) -> tuple[sql.Composable, list[Any]]:
    """The ``WHERE`` condition on ``requests r`` for ``filt``, and its parameters.

    Examples
    --------
    >>> cond, params = where_clause(RequestFilter(status="open"), 2272)
    >>> params
    ['open']
    """
    parts: list[sql.Composable] = []
    params: list[Any] = []

    def add(text: str | sql.Composable, *values: Any) -> None:
        # fixed fragments only: every value is a parameter
        parts.append(sql.SQL(text) if isinstance(text, str) else text)
        params.extend(values)

    if len(filt.services) == 1:  # equality on the prefix of requests_service_order
        # (migration 0012: left(service_name, 200), requested_datetime, id) gives max()
        # and time ranges in index order; then the whole name
        add("left(r.service_name, 200) = left(%s, 200) AND r.service_name = %s",
            filt.services[0], filt.services[0])
    elif filt.services:
        add("r.service_name = ANY(%s)", list(filt.services))
    if filt.agencies:
        add("r.agency_responsible = ANY(%s)", list(filt.agencies))
    if filt.ids:  # (an id with a NUL character: no stored id holds one)
        add("r.service_request_id = ANY(%s)", held(filt.ids))
    if filt.problems:
        add("r.problem_id = ANY(%s)", list(filt.problems))
    if filt.status != "all":
        add("r.status = %s", filt.status)
    for text, bound in (("r.requested_datetime >= %s", filt.start),
                        ("r.requested_datetime < %s", filt.end),
                        ("r.requested_datetime > %s", filt.after),
                        ("r.requested_datetime <= %s", filt.until)):
        if bound is not None:
            add(text, bound)
    if filt.located:
        add("r.x IS NOT NULL AND r.y IS NOT NULL AND r.x <> 'NaN' AND r.y <> 'NaN'")
    for key, codes in filt.area_map().items():
        add("EXISTS (SELECT 1 FROM request_areas f WHERE f.service_request_id ="
            " r.service_request_id AND f.layer_key = %s AND f.code = ANY(%s))",
            key, list(codes))
    if filt.box is not None:
        _box_clause(filt.box, srid, add)
    if not parts:
        return sql.SQL("true"), params
    return sql.SQL(" AND ").join(parts), params


def _box_clause(box: tuple[float, float, float, float], srid: int,
                add: Callable[..., None]) -> None:
    """The box as an index condition on ``geom_city`` (small boxes) and the exact test."""
    south, _west, north, _east = (float(v) for v in box)
    ranges = lon_ranges(box)
    exact = sql.SQL(" OR ").join(sql.SQL("(r.lon >= %s AND r.lon <= %s)") for _ in ranges)
    add(sql.SQL("r.lat >= %s AND r.lat <= %s AND ({})").format(exact), south, north,
        *[v for pair in ranges for v in pair])
    if len(ranges) == 1 and south >= -85 and north <= 85:
        west, east = ranges[0]
        if east - west <= _INDEXED_BOX_DEG and north - south <= _INDEXED_BOX_DEG:
            step = max(east - west, north - south, 1e-6) / 32
            # the projected box bounds the projected requests: segmentized before the
            # transform (a parallel is curved in the city CRS) and padded by 1 unit
            add("r.geom_city && ST_Expand(ST_Transform(ST_Segmentize(ST_MakeEnvelope("
                "%s, %s, %s, %s, 4326), %s), %s), 1)", west, south, east, north, step,
                int(srid))


def _stamp(value: datetime | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value).tz_convert("UTC")


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows from psycopg → the embedded store's column types."""
    for c in frame.columns:
        if c.endswith("_datetime"):
            frame[c] = pd.to_datetime(frame[c], utc=True).astype("datetime64[ns, UTC]")
        elif c in ("lat", "lon", "x", "y", "geocode_score"):
            frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
        elif c == "synthetic":
            frame[c] = frame[c].astype(bool)
    return frame
