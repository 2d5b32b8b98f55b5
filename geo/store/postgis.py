"""The PostGIS store: requests, quarantine, batches and boundary layers in PostgreSQL.

Selected by a ``postgresql://`` URL, or by ``postgresql:`` alone, which connects with the
libpq defaults and ``PG*`` variables (``PGHOST``, ``PGPORT``, ``PGDATABASE``, ``PGUSER``,
``PGPASSWORD``, …). Connections come from a :class:`psycopg_pool.ConnectionPool`.

Opening a store applies pending migrations (:mod:`geo.store.postgis_schema`) and binds the
database to the profile's city and SRID. Each write is one transaction, so a failure
part-way leaves the database as it was:

- :meth:`PostGISStore.write_batch` COPYs the batch into a temporary table, upserts it
  with ``INSERT … ON CONFLICT`` (:mod:`geo.store.postgis_load`), joins only the inserted and
  updated requests to every active layer (:mod:`geo.store.postgis_join`), writes the
  quarantine and the batch record.
- :meth:`PostGISStore.add_generation` stores areas and pieces and re-joins that layer.

Area codes per request are rows of ``request_areas``; :meth:`PostGISStore.requests`
reads them layer by layer and matches them to the requests by id in Arrow, one column per
layer key, giving the embedded store's frame shape.
Text PostgreSQL cannot hold (U+0000) follows the rule in :mod:`geo.store.postgis_text`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, Literal, overload

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import shapely
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from geo.ingest.contacts import ContactBatch
from geo.ingest.model import empty_requests, with_points
from geo.ingest.sink import ProblemAssigner, WriteResult
from geo.ingest.validate import QUARANTINE_COLUMNS, ValidatedBatch, empty_quarantine
from geo.joins import AreaIndex
from geo.store import (
    adbc_pool,
    id_order,
    pgcopy_out,
    postgis_areas,
    postgis_contacts,
    postgis_load,
    postgis_problems,
    postgis_read,
    postgis_runs,
)
from geo.store.base import BATCH_COLUMNS, RequestReader, Store, as_categories, describe_generation
from geo.store.helper_stop import HelperStop
from geo.store.postgis_async import AsyncReads, store_error
from geo.store.postgis_join import (
    insert_generation,
    join_requests,
    own_partitions,
    partition_name,
    set_active,
    swap_partition,
)
from geo.store.postgis_load import (
    apply_nul_rule,
    arrow_column,
    nul_id_quarantine,
    record_batch,
    upsert_request_rows,
    write_quarantine,
)
from geo.store.postgis_query import PostGISApiMixin
from geo.store.postgis_read import T, U
from geo.store.postgis_reads import PostGISReads
from geo.store.postgis_schema import bind_city, migrate
from geo.store.postgis_sources import PostGISSources, write_state
from geo.store.query import unit_metres
from geo.store.runs import RunResult, pack_run
from geo.store.sources import SourceState
from hotspot311.errors import StoreConnectionError, StoreError
from hotspot311.schema import TIME_FIELDS
from layers import geometry
from layers.profile import CityProfile, LayerSpec, validate_layer_key
from layers.registry import Generation, active_generations

_CONNECT_TIMEOUT = 10

_READ_COLUMNS = postgis_read.READ_COLUMNS
#: The id column every request read carries for ordering and for its area codes.
_ORDER_ID = "_order_id"


def conninfo_for(url: str) -> str:
    """The libpq connection string for a store location.

    ``postgresql:`` alone means "libpq defaults and ``PG*`` variables" (an empty
    connection string); a URL is passed on as it is.
    """
    return "" if url.strip() == "postgresql:" else url


def server_label(conninfo: str) -> str:
    """``user@host:port/dbname`` of a connection string, never the password."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        params = {}

    def get(key: str, env: str, default: str) -> str:
        value = params.get(key) or os.environ.get(env) or default
        return str(value)

    user = get("user", "PGUSER", "(default user)")
    host = get("host", "PGHOST", "localhost")
    port = get("port", "PGPORT", "5432")
    dbname = get("dbname", "PGDATABASE", user)
    return f"{user}@{host}:{port}/{dbname}"


class PostGISStore(PostGISSources, PostGISApiMixin, PostGISReads, Store):
    """A store in a PostGIS database (see the module docstring).

    Use :meth:`open`; the constructor only stores its arguments.

    Parameters
    ----------
    pool
        An open connection pool to a migrated database bound to ``profile``.
    profile
        The city profile.
    srid
        The city SRID.
    label
        ``user@host:port/dbname`` for messages.
    """

    def __init__(
        self, pool: ConnectionPool, profile: CityProfile, *, srid: int, label: str
    ) -> None:
        self.pool = pool
        self.profile = profile
        self.srid = srid
        self.label = label

    @classmethod
    def open(cls, url: str, profile: CityProfile, *, max_size: int = 4) -> PostGISStore:
        """Connect, migrate the schema and bind the database to ``profile``.

        Parameters
        ----------
        url
            ``postgresql://user@host:port/dbname`` or ``postgresql:`` for the ``PG*``
            variables.
        profile
            The city profile.
        max_size
            Largest number of pooled connections.

        Returns
        -------
        PostGISStore
            The open store; call :meth:`close` when done.

        Raises
        ------
        StoreConnectionError
            When the server cannot be reached or refuses the login (the message names
            user, host, port and database, never the password).
        StoreError
            When the database belongs to another city or cannot be migrated.
        """
        conninfo = conninfo_for(url)
        label = server_label(conninfo)
        try:
            with psycopg.connect(conninfo, connect_timeout=_CONNECT_TIMEOUT) as conn:
                migrate(conn)
                srid = bind_city(conn, profile)
        except psycopg.OperationalError as err:
            first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise StoreConnectionError(
                f"cannot connect to PostgreSQL at {label}: {first}"
            ) from None
        except psycopg.Error as err:
            raise StoreError(f"cannot prepare the PostGIS store at {label}: {err}") from err
        pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_size,
            open=False,
            kwargs={"connect_timeout": _CONNECT_TIMEOUT},
            name="hotspot311",
        )
        pool.open(wait=True, timeout=_CONNECT_TIMEOUT * 2)
        return cls(pool, profile, srid=srid, label=label)

    def close(self) -> None:
        """Close the connection pool and the idle ADBC connections to this database."""
        uri = self._adbc_uri()
        if uri is not None:
            adbc_pool.close_idle(uri)
        self.pool.close()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; database failures become :class:`StoreError`.

        A server that stops or a connection that breaks mid-statement gives
        :class:`StoreConnectionError`; an error the server reports (disk full, a read-only
        database, no privilege) gives :class:`StoreError` with the server's message. Either
        way the open transaction is rolled back: the store keeps its previous state.
        """
        try:
            with self.pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.Error) as err:
            raise store_error(err, self.describe()) from err

    @contextmanager
    def _statement(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in autocommit, for one read-only statement.

        A lone ``SELECT`` needs no transaction: without one it costs one round trip to
        the server instead of three (``BEGIN``, the statement, ``COMMIT``), which is most
        of an Open311 look-up's database time. Failures are reported as
        :meth:`_connection` reports them; the connection goes back to the pool with
        autocommit off, as every other method expects it.
        """
        with self._connection() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    conn.autocommit = False

    def async_reads(self, *, max_size: int) -> AsyncReads:
        """Open311 reads for an asyncio server (:mod:`geo.store.postgis_async`): a pool of
        up to ``max_size`` asyncio connections to this database, to open and close in the
        event loop that uses it."""
        conninfo = self.pool.conninfo
        return AsyncReads(conninfo if isinstance(conninfo, str) else conninfo(),
                          where=self.describe(), srid=self.srid,
                          unit_m=unit_metres(str(self.profile.crs)), max_size=max_size)

    def describe(self) -> str:
        """``PostGIS store user@host:port/dbname``."""
        return f"PostGIS store {self.label}"

    # --- writes -----------------------------------------------------------------
    def write_batch(
        self,
        batch: ValidatedBatch,
        *,
        info: dict[str, object],
        release: Sequence[str] = (),
        problems: ProblemAssigner | None = None,
        source_state: SourceState | None = None,
    ) -> WriteResult:
        """Upsert requests and quarantine rows in one transaction (see :class:`Store`).

        ``problem_id`` is brought up to date in the same transaction
        (:mod:`geo.store.postgis_problems`). A big write (:func:`postgis_load.is_bulk`)
        fills each layer's next partition on a second connection while this one loads
        the requests and builds their indexes, and swaps them in before it commits
        (:func:`geo.store.postgis_areas.stage_partitions`): a 1M first write took
        12.6 s this way against 16.0-16.2 s with the partitions filled after the
        indexes. If the write fails, the second connection's work is stopped (its
        running statement cancelled: :class:`geo.store.helper_stop.HelperStop`) and any
        tables it staged are dropped.
        """
        requests, rejected = apply_nul_rule(batch.current())
        quarantine = batch.quarantine
        if len(rejected):
            extra_q = nul_id_quarantine(rejected, info)
            frames = [f for f in (quarantine, extra_q) if len(f)]
            quarantine = pd.concat(frames, ignore_index=True)
        result = WriteResult(
            quarantined={str(k): int(v) for k, v in quarantine["reason"].value_counts().items()}
        )
        staged: list[Future[list[str]]] = []
        try:
            self._write(requests, quarantine, release, info, batch, result, problems,
                        source_state, staged)
        except BaseException:
            if staged and staged[0].done() and staged[0].exception() is None:
                postgis_areas.drop_stages(self._conninfo(), staged[0].result())
            raise
        return result

    def _write(self, requests: pd.DataFrame, quarantine: pd.DataFrame,
               release: Sequence[str], info: dict[str, object], batch: ValidatedBatch,
               result: WriteResult, problems: ProblemAssigner | None,
               source_state: SourceState | None, staged: list[Future[list[str]]]) -> None:
        """The transaction of :meth:`write_batch`; a big write's staged partitions are
        appended to ``staged`` as soon as they are asked for."""
        stop = HelperStop()
        # on an error the helper connection is stopped first, then waited for (the pool),
        # then the transaction rolls back
        with self._connection() as conn, conn.transaction(), \
                ThreadPoolExecutor(1, thread_name_prefix="locate") as pool, stop.on_error():
            if len(requests):
                stored = postgis_load.stored_estimate(conn)
                located: list[Future[dict[str, pa.Table]]] = []

                def locate(new: np.ndarray, newer: np.ndarray) -> None:
                    # the written rows are located on a thread while the server takes
                    # them and builds the indexes (the client would wait on it idle); a
                    # big write's partitions are then filled on a second connection
                    # while this one is still busy
                    gens = list(self.active_of(_generations(conn)).values())
                    if gens and (len(new) or len(newer)):
                        written = np.concatenate([new, newer])
                        indexes = postgis_areas.area_indexes(conn, gens, self.profile.crs)
                        located.append(pool.submit(_area_rows, requests, written, indexes))
                        if postgis_load.is_bulk(len(written), stored):
                            staged.append(pool.submit(_stage, self._conninfo(), located[0],
                                                      requests, written, stop))

                new, newer = upsert_request_rows(conn, requests, self.srid, decided=locate)
                result.inserted, result.updated = len(new), len(newer)
                result.unchanged = len(requests) - result.inserted - result.updated
                stage_keys = _staged_keys(staged)
                if stage_keys is not None:
                    for key in stage_keys:
                        swap_partition(conn, key, staged=True)
                elif located:
                    postgis_areas.load_area_rows(
                        conn, located[0].result(),
                        bulk=postgis_load.is_bulk(len(new) + len(newer), stored))
                if result.inserted or result.updated:
                    postgis_problems.update_problems(conn, problems)
            result.released = write_quarantine(conn, quarantine, release)
            record = {c: info.get(c) for c in BATCH_COLUMNS if c != "ingested_at"}
            record.update(
                rows_read=batch.rows_read,
                inserted=result.inserted,
                updated=result.updated,
                unchanged=result.unchanged,
                quarantined=sum(result.quarantined.values()),
            )
            record_batch(conn, record)
            if source_state is not None:
                write_state(conn, source_state)

    def _conninfo(self) -> str:
        """The connection string of this store's connections."""
        conninfo = self.pool.conninfo
        return conninfo if isinstance(conninfo, str) else conninfo()

    def write_contacts(self, batch: ContactBatch, *, info: dict[str, object]) -> WriteResult:
        """Upsert contacts and their quarantine rows in one transaction (see :class:`Store`)."""
        result = WriteResult(quarantined={
            str(k): int(v) for k, v in batch.quarantine["reason"].value_counts().items()})
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("LOCK TABLE contacts IN SHARE ROW EXCLUSIVE MODE")
            result.inserted, result.updated = postgis_contacts.upsert_contacts(
                conn, batch.contacts)
            result.unchanged = len(batch.contacts) - result.inserted - result.updated
            postgis_contacts.write_contact_quarantine(conn, batch.quarantine)
            record = {c: info.get(c) for c in BATCH_COLUMNS if c != "ingested_at"}
            record.update(rows_read=batch.rows_read, inserted=result.inserted,
                          updated=result.updated, unchanged=result.unchanged,
                          quarantined=sum(result.quarantined.values()))
            record_batch(conn, record)
        return result

    def contacts(self) -> pd.DataFrame:
        """Every stored contact, ordered by ``contact_id`` (byte order)."""
        with self.pool.connection() as conn:
            return postgis_contacts.read_contacts(conn)

    def contact_quarantine(self) -> pd.DataFrame:
        """Every quarantined contact row, in the order quarantined."""
        with self.pool.connection() as conn:
            return postgis_contacts.read_contact_quarantine(conn)

    def rebuild_problems(self, problems: ProblemAssigner) -> int:
        """Recompute every ``problem_id`` in one transaction (see :class:`Store`)."""
        with self.pool.connection() as conn, conn.transaction():
            return postgis_problems.rebuild(conn, problems)

    def add_generation(self, spec: LayerSpec, areas: gpd.GeoDataFrame) -> Generation:
        """Store a layer generation and re-join that layer (see :class:`Store`).

        The generation's index is built and kept (``join_indexes``), and every stored
        request is located in it as :meth:`rejoin` locates them, in the transaction that
        stores the generation: the layer's codes come from the rule every write uses.
        """
        validate_layer_key(spec.key)
        uri = self._adbc_uri()
        with self._connection() as conn, conn.transaction():
            conn.execute("LOCK TABLE generations IN SHARE ROW EXCLUSIVE MODE")
            existing = _generations(conn)
            gen = describe_generation(spec, areas, existing)
            # the points are read back while the generation is stored and indexed
            with postgis_areas.points_read(conn, uri) as points:
                insert_generation(conn, gen, areas, self.srid)
                postgis_areas.keep_index(conn, gen, areas)
                active = self.active_of([*existing, gen])
                set_active(conn, active)
                self._join_layers(conn, points, [active[spec.key]])
        return gen

    def rejoin(self, keys: Sequence[str] | None = None) -> dict[str, int]:
        """Re-join every request to the active generation of ``keys``.

        The requests are located again by the embedded store's index and rule
        (:func:`geo.store.postgis_areas.relocate_layers`), as a write and a new
        generation locate them; only when ADBC cannot read them does PostgreSQL join them
        (:func:`geo.store.postgis_join.join_requests`).
        """
        uri = self._adbc_uri()
        with self._connection() as conn, conn.transaction():
            # as add_generation: the active set read here holds until commit
            conn.execute("LOCK TABLE generations IN SHARE ROW EXCLUSIVE MODE")
            active = self.active_of(_generations(conn))
            unknown = [k for k in keys or () if k not in active]
            if unknown:
                raise StoreError(
                    f"layers {unknown} are not in {self.describe()}; layers: {list(active)}"
                )
            chosen = [active[k] for k in (keys or list(active))]
            set_active(conn, active)
            with postgis_areas.points_read(conn, uri) as points:
                inside = self._join_layers(conn, points, chosen)
            row = conn.execute("SELECT count(*) FROM requests").fetchone()
            total = int(row[0]) if row else 0
            return {g.key: total - inside[g.key] for g in chosen}

    def _join_layers(self, conn: psycopg.Connection, points: Future[pa.Table] | None,
                     gens: Sequence[Generation]) -> dict[str, int]:
        """Join every stored request to ``gens`` (in ``conn``'s transaction): located in
        Python (:func:`geo.store.postgis_areas.relocate_layers`), or joined by PostgreSQL
        (:func:`geo.store.postgis_join.join_requests`) when ADBC cannot read the points
        (``points`` is ``None``, or the read failed). Layer key → requests inside."""
        located = (None if points is None else
                   postgis_areas.relocate_layers(conn, points, gens, self.profile.crs))
        if located is not None:
            return located
        return join_requests(conn, gens, only_changed=False)

    # --- reads ------------------------------------------------------------------
    def requests(self) -> gpd.GeoDataFrame:
        """Every stored request, one column per layer key, ordered by id.

        The requests and each layer's codes (straight from the layer's partition) are
        read by one statement each, as Arrow (binary COPY decoded by
        :mod:`geo.store.pgcopy_out`, else through ADBC; see :mod:`geo.store.postgis_read`):
        the requests on one connection and the codes on a second at the same time, both
        in one read-only snapshot. Each table is used as soon as it is read: the
        requests are put in id order and their points made while the codes still come,
        and each layer is matched to them (:mod:`geo.store.id_order`) while the next is
        read. No Python object per row but the points, and no join on the server.
        """
        keys = self.layer_keys()
        frame = self._read_columns([*_READ_COLUMNS, *keys], keys, points=True)
        if frame is None:
            return self._requests_by_copy(keys)
        if frame.empty:
            return empty_requests(keys)
        return frame

    def request_columns(self, columns: Sequence[str], *,
                        categories: Sequence[str] = ()) -> pd.DataFrame:
        """Some columns of every stored request (see :meth:`Store.request_columns`),
        read alone by one statement, as Arrow."""
        keys = self.layer_keys()
        frame = self._read_columns(columns, keys)
        if frame is None:
            return super().request_columns(columns, categories=categories)
        return as_categories(frame, categories)

    def request_reader(self) -> RequestReader:
        """A reader holding every request column but the geometry, read once on first
        use by one statement (so all its reads come from one state of the store)."""
        def load() -> pd.DataFrame:
            keys = self.layer_keys()
            frame = self._read_columns([*_READ_COLUMNS, *keys], keys)
            return frame if frame is not None else self._requests_by_copy(keys)

        return RequestReader(load)

    @overload
    def _read_columns(self, columns: Sequence[str], keys: tuple[str, ...], *,
                      points: Literal[True]) -> gpd.GeoDataFrame | None: ...

    @overload
    def _read_columns(self, columns: Sequence[str], keys: tuple[str, ...], *,
                      points: Literal[False] = False) -> pd.DataFrame | None: ...

    def _read_columns(self, columns: Sequence[str], keys: tuple[str, ...], *,
                      points: bool = False) -> pd.DataFrame | None:
        """The named request columns (those that exist; layer keys give area codes), in
        ``service_request_id`` order, with their points when ``points`` (``lon`` and
        ``lat`` among ``columns``): read by binary COPY on two pooled connections
        (:meth:`_table_by_copy`), else through ADBC; ``None`` when neither can read
        with this store's connection string."""
        known = [c for c in dict.fromkeys(columns) if c in _READ_COLUMNS or c in keys]
        wanted_keys = [k for k in keys if k in known]
        id_column = "service_request_id" if "service_request_id" in known else _ORDER_ID
        cols: list[sql.Composable] = [] if id_column != _ORDER_ID else [
            sql.SQL("r.service_request_id AS {}").format(sql.Identifier(_ORDER_ID))]
        for c in known:
            if c in keys:
                continue
            if c == "extra":
                cols.append(sql.SQL("r.extra::text AS extra"))
            else:
                cols.append(sql.Identifier("r", c))
        first = sql.SQL("SELECT {} FROM requests r").format(sql.SQL(", ").join(cols))
        with self._statement() as conn:
            own = own_partitions(conn, wanted_keys) if wanted_keys else set()
        rest = [_codes_query(k, own=k in own) for k in wanted_keys]
        made: np.ndarray | None = None
        if pgcopy_out.available():
            table, made = self._table_by_copy(first, rest, wanted_keys, id_column,
                                              points=points)
        else:
            uri = self._adbc_uri()
            if uri is None:
                return None
            with self._connection() as conn:
                queries = [postgis_read.render(pgcopy_out.select_of(stmt), conn)
                           for stmt in [first, *rest]]
            try:
                rows, codes = postgis_read.fetch_arrow_split(uri, queries[0], queries[1:])
            except Exception as err:  # the ADBC driver's own error types
                raise StoreError(f"{self.describe()}: reading requests failed ({err})") from err
            table = id_order.with_codes(rows, dict(zip(wanted_keys, codes, strict=True)),
                                        id_column=id_column, keep_id=id_column != _ORDER_ID)
        table = table.select(known)
        if not known:
            return pd.DataFrame(index=pd.RangeIndex(table.num_rows))
        texts = [c for c in known if c in keys or postgis_read.read_types(()).get(c) == pa.string()]
        frame = postgis_read.frame_from_arrow(table, text_columns=texts)
        return with_points(frame, made) if points else frame

    def _table_by_copy(self, first: sql.Composable, rest: Sequence[pgcopy_out.Source],
                       keys: Sequence[str], id_column: str, *, points: bool
                       ) -> tuple[pa.Table, np.ndarray | None]:
        """``first``'s rows in id order with one column of codes per statement of
        ``rest`` (named by ``keys``), read by :meth:`_fetch_by_copy`: the rows are put
        in order, and each layer matched to them, while the layers after it are read;
        with ``points``, the rows' points are made meanwhile too."""
        keep_id = id_column != _ORDER_ID
        with ThreadPoolExecutor(2) as pool:
            def on_rows(rows: pa.Table
                        ) -> tuple[id_order.RowsInIdOrder, Future[np.ndarray] | None]:
                ordered = id_order.order_rows(rows, id_column, pool, keep_id=keep_id)
                made = (pool.submit(_points_of, ordered.rows) if points and rows.num_rows
                        else None)
                return ordered, made

            (ordered, made), matching = self._fetch_by_copy(
                first, rest, on_rows,
                lambda head, codes: pool.submit(head[0].codes_of_copy, codes))
            table = ordered.rows
            for key, codes_in_order in zip(keys, matching, strict=True):
                table = table.append_column(key, codes_in_order.result())
            return table, None if made is None else made.result()

    def _fetch_by_copy(self, first: sql.Composable, rest: Sequence[pgcopy_out.Source],
                       on_first: Callable[[pa.Table], T],
                       on_rest: Callable[[T, pgcopy_out.RawCopy], U]) -> tuple[T, list[U]]:
        """``first`` on one pooled connection and ``rest`` on a second, in one snapshot,
        each handed on as soon as it is read (:func:`postgis_read.fetch_copy_then`;
        ``first`` as a table, each of ``rest`` as rows not decoded);
        all on one connection when the pool holds one connection at most, or has no
        second one free within half a second."""
        try:
            with self._connection() as conn, ExitStack() as stack:
                other: psycopg.Connection | None = None
                if rest and self.pool.max_size > 1:
                    with suppress(PoolTimeout):
                        other = stack.enter_context(self.pool.connection(timeout=0.5))
                return postgis_read.fetch_copy_then(conn, other, first, rest,
                                                    on_first, on_rest,
                                                    read_rest=pgcopy_out.copy_raw)
        except pgcopy_out.CopyOutError as err:
            raise StoreError(f"{self.describe()}: reading requests failed ({err})") from err

    def _requests_by_copy(self, keys: tuple[str, ...]) -> gpd.GeoDataFrame:
        """:meth:`requests` read as CSV through ``COPY … TO STDOUT`` and parsed by Arrow
        (for a connection string ADBC cannot take)."""
        cols: list[sql.Composable] = []
        for c in _READ_COLUMNS:
            ident = sql.Identifier("r", c)
            if c in TIME_FIELDS:
                cols.append(sql.SQL("(extract(epoch FROM {}) * 1000000)::int8").format(ident))
            elif c == "extra":
                cols.append(sql.SQL("{}::text").format(ident))
            else:
                cols.append(ident)
        cols += [sql.Identifier("a", f"k{i}") for i in range(len(keys))]
        if keys:
            pivot = sql.SQL(", ").join(
                sql.SQL("max(code) FILTER (WHERE layer_key = {}) AS {}").format(
                    sql.Literal(k), sql.Identifier(f"k{i}")
                )
                for i, k in enumerate(keys)
            )
            source: sql.Composable = sql.SQL(
                "requests r LEFT JOIN (SELECT service_request_id, {} FROM request_areas"
                " GROUP BY service_request_id) a USING (service_request_id)"
            ).format(pivot)
        else:
            source = sql.SQL("requests r")
        stmt = sql.SQL(
            'COPY (SELECT {} FROM {} ORDER BY r.service_request_id COLLATE "C")'
            " TO STDOUT (FORMAT csv)"
        ).format(sql.SQL(", ").join(cols), source)
        sink = pa.BufferOutputStream()
        with self._connection() as conn, conn.cursor() as cur, cur.copy(stmt) as copy:
            for chunk in copy:
                sink.write(chunk)
        return postgis_read.request_frame(sink.getvalue(), keys)

    def quarantine(self) -> pd.DataFrame:
        """Every quarantined row, in the order quarantined."""
        return self._quarantine_rows(None)

    def quarantined(self, service_request_id: str) -> pd.DataFrame:
        """The quarantined rows of one request id, in the order quarantined (the
        ``quarantine_request`` index, migration 0014)."""
        return self._quarantine_rows(service_request_id)

    def _quarantine_rows(self, service_request_id: str | None) -> pd.DataFrame:
        cols = [
            sql.SQL("(extract(epoch FROM quarantined_at) * 1000000)::int8")
            if c == "quarantined_at"
            else sql.Identifier(c)
            for c in QUARANTINE_COLUMNS
        ]
        where = sql.SQL("true") if service_request_id is None else sql.SQL(
            "service_request_id = %s")
        params = [] if service_request_id is None else [service_request_id]
        with self._connection() as conn:
            rows = conn.execute(
                sql.SQL("SELECT {} FROM quarantine WHERE {} ORDER BY seq").format(
                    sql.SQL(", ").join(cols), where), params
            ).fetchall()
        if not rows:
            return empty_quarantine()
        frame = pd.DataFrame(rows, columns=list(QUARANTINE_COLUMNS), dtype=object)
        frame["source_row"] = frame["source_row"].astype("int64")
        frame["quarantined_at"] = _times(frame["quarantined_at"])
        return frame

    def batches(self) -> pd.DataFrame:
        """The ingest log, one row per batch."""
        names = [c for c in BATCH_COLUMNS if c != "ingested_at"]
        with self._connection() as conn:
            rows = conn.execute(
                sql.SQL("SELECT {}, ingested_at FROM batches ORDER BY seq").format(
                    sql.SQL(", ").join(map(sql.Identifier, names))
                )
            ).fetchall()
        frame = pd.DataFrame(rows, columns=[*names, "ingested_at"], dtype=object)
        for c in ("rows_read", "inserted", "updated", "unchanged", "quarantined"):
            frame[c] = frame[c].astype("int64")
        frame["ingested_at"] = [
            t.astimezone(UTC).isoformat(timespec="seconds") for t in frame["ingested_at"]
        ]
        return frame.astype({"ingested_at": object})

    def generations(self) -> list[Generation]:
        """Every stored generation, in the order stored."""
        with self._connection() as conn:
            return _generations(conn)

    def areas(self, key: str, generation: int | None = None) -> gpd.GeoDataFrame:
        """Areas of a layer generation (the active one by default), sorted by code."""
        gens = [g for g in self.generations() if g.key == key]
        if not gens:
            raise StoreError(
                f"layer {key!r} is not in {self.describe()}; layers: {list(self.layer_keys())}"
            )
        if generation is None:
            generation = self.active()[key].generation
        if generation not in {g.generation for g in gens}:
            raise StoreError(
                f"layer {key!r} has no generation {generation};"
                f" it has {[g.generation for g in gens]}"
            )
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT code, name, ST_AsBinary(geom) FROM areas WHERE layer_key = %s"
                ' AND generation = %s ORDER BY code COLLATE "C"',
                (key, generation),
            ).fetchall()
        return gpd.GeoDataFrame(
            {"code": [r[0] for r in rows], "name": [r[1] for r in rows]},
            geometry=gpd.GeoSeries(
                shapely.from_wkb([bytes(r[2]) for r in rows]), crs=self.profile.crs
            ),
        )

    def count(self) -> int:
        """Number of stored requests."""
        with self._connection() as conn:
            row = conn.execute("SELECT count(*) FROM requests").fetchone()
        return int(row[0]) if row else 0

    # --- stored hotspot runs (see geo.store.postgis_runs) ------------------------------
    def save_run(self, result: RunResult, *, created_at: datetime | None = None) -> int:
        """Store a hotspot run in one transaction (see :meth:`Store.save_run`)."""
        packed = pack_run(result)
        with self._connection() as conn, conn.transaction():
            return postgis_runs.insert_run(
                conn, packed, srid=self.srid, created_at=created_at or datetime.now(UTC)
            )

    def runs(self) -> pd.DataFrame:
        """Stored runs, oldest first (see :meth:`Store.runs`)."""
        with self._connection() as conn:
            return postgis_runs.list_runs(conn)

    def load_run(self, run_id: int) -> tuple[dict[str, Any], gpd.GeoDataFrame, pd.DataFrame]:
        """Parameters, hotspots and members of a stored run (see :meth:`Store.load_run`)."""
        with self._connection() as conn:
            return postgis_runs.load_run(conn, run_id, crs=self.profile.crs)

    def active_of(self, gens: list[Generation]) -> dict[str, Generation]:
        """Layer key → active generation among ``gens`` (see ``active_generations``)."""
        return active_generations(gens)


def _points_of(rows: pa.Table) -> np.ndarray:
    """The points of ``rows``' ``lon`` and ``lat`` (missing: NaN, as in the frame)."""
    lon, lat = (rows.column(c).to_numpy(zero_copy_only=False).astype("float64")
                for c in ("lon", "lat"))
    return geometry.points(lon, lat)


def _codes_query(key: str, *, own: bool) -> pgcopy_out.Source:
    """The ``service_request_id, code`` rows of layer ``key``: the whole of its
    partition when it has one of its own (``own``; at 1M rows the server sends them in
    0.125 s, against 0.148 s for ``SELECT`` from the partition and 0.18 s from the
    parent table filtered by key, which tests the key of every row), else from
    ``request_areas`` by key."""
    if own:
        return pgcopy_out.TableColumns(partition_name(key), ("service_request_id", "code"))
    return sql.SQL("SELECT service_request_id, code FROM request_areas"
                   " WHERE layer_key = {}").format(sql.Literal(key))


def _area_rows(requests: pd.DataFrame, written: np.ndarray,
               indexes: dict[str, AreaIndex]) -> dict[str, pa.Table]:
    """The written requests located in every active layer (the embedded store's index
    and rule), as rows of ``request_areas``.

    On one thread: this runs while the write's own thread makes the rows and sends them
    to the server, which would otherwise wait for it (a 1M first load: the server sat
    idle 1.5 s while two locating threads held both cores); one thread still finishes
    long before the server has taken the rows and built the indexes.
    """
    rows = requests.iloc[np.sort(written)]
    ids = arrow_column(rows, "service_request_id")
    return postgis_areas.area_rows(
        ids, rows["x"].to_numpy(dtype="float64"), rows["y"].to_numpy(dtype="float64"), indexes,
        threads=1)


def _stage(conninfo: str, located: Future[dict[str, pa.Table]], requests: pd.DataFrame,
           written: np.ndarray, stop: HelperStop) -> list[str]:
    """A big write's partitions, filled on a connection of their own once the written
    requests are located (:func:`geo.store.postgis_areas.stage_partitions`), unless
    the write has failed meanwhile (``stop``)."""
    rows = located.result()
    stop.check()
    ids = arrow_column(requests[["service_request_id"]].iloc[written], "service_request_id")
    return postgis_areas.stage_partitions(conninfo, rows, ids, stop)


_log = logging.getLogger("hotspot311.store")


def _staged_keys(staged: list[Future[list[str]]]) -> list[str] | None:
    """The layers a big write staged, or ``None`` when it staged none or the second
    connection failed (no more connections allowed, say): the write then fills the
    partitions in its own transaction, as a write did before staging."""
    if not staged:
        return None
    try:
        return staged[0].result()
    except psycopg.Error as err:
        _log.warning("a big write filled its partitions in its own transaction: the second"
                     " connection failed (%s)", err)
        return None


def _generations(conn: psycopg.Connection) -> list[Generation]:
    rows = conn.execute(
        "SELECT layer_key, generation, title, valid_from, source, id_field, name_field, n_areas"
        " FROM generations ORDER BY seq"
    ).fetchall()
    return [Generation(*row) for row in rows]


def _times(values: pd.Series) -> pd.Series:
    """Epoch microseconds (or None) → ``datetime64[ns, UTC]``."""
    micros = pd.array(values.to_numpy(dtype=object), dtype="Int64")
    return pd.Series(pd.to_datetime(micros, unit="us", utc=True), index=values.index).astype(
        "datetime64[ns, UTC]"
    )
