"""The store interface shared by the embedded store and the PostGIS store.

A store keeps requests (joined to every active boundary layer), the quarantine, the
ingest batches and the boundary layers with their generations. Writes are atomic: a
batch is applied whole or not at all, and re-applying it changes nothing.

Upsert rule, keyed on ``service_request_id``: an incoming row replaces the stored one
when its ``updated_datetime`` is newer, or when both times are equal (or both missing)
and the content differs (the later ingest wins a tie). An older incoming row changes
nothing.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.ingest.contacts import ContactBatch
from geo.ingest.sink import ProblemAssigner, WriteResult
from geo.ingest.validate import ValidatedBatch
from geo.store.query import QUERY_COLUMNS, AsyncQueries, PageKeys, RequestQuery, frame_rows
from geo.store.reads import (
    BatchLogHead,
    RequestFilter,
    RequestSummary,
    TableCounts,
    log_head,
    reason_counts,
)
from geo.store.sources import Source, SourceConfig, SourceState
from hotspot311.errors import InputError, StoreError
from hotspot311.settings import is_postgres_url
from layers.profile import CityProfile, LayerSpec
from layers.registry import Generation, active_generations, generation_for, load_layer

if TYPE_CHECKING:
    from geo.store.api_keys import ApiKey
    from geo.store.runs import RunResult

BATCH_COLUMNS = (
    "batch_id",
    "source_file",
    "format",
    "encoding",
    "rows_read",
    "inserted",
    "updated",
    "unchanged",
    "quarantined",
    "ingested_at",
)


class Store(ABC):
    """A place to keep requests, quarantine, batches and boundary layers."""

    profile: CityProfile

    # --- writes -----------------------------------------------------------------
    @abstractmethod
    def write_batch(
        self,
        batch: ValidatedBatch,
        *,
        info: dict[str, object],
        release: Sequence[str] = (),
        problems: ProblemAssigner | None = None,
        source_state: SourceState | None = None,
    ) -> WriteResult:
        """Upsert a validated batch and its quarantine rows, atomically.

        Parameters
        ----------
        batch
            Requests and quarantine rows of one source.
        info
            Batch record fields (``batch_id``, ``source_file``, ``format``, …).
        release
            Quarantine ids to remove in the same transaction (rows now usable).
        problems
            The problem rule (:class:`clustering.problems.ProblemAssigner`): the
            written requests join or start problems, and the problems they touch are
            recomputed, in the same transaction (:mod:`geo.store.problem_ids`). Without
            one the written requests are left without a ``problem_id``.
        source_state
            A feed source's new state (watermark, rows), written in the same
            transaction as the batch (:mod:`geo.feeds`): a sync killed at any moment
            resumes at the last page written.

        Returns
        -------
        WriteResult
            Counts that add up to ``batch.rows_read``.
        """

    @abstractmethod
    def rebuild_problems(self, problems: ProblemAssigner) -> int:
        """Recompute the ``problem_id`` of every stored request, atomically.

        Parameters
        ----------
        problems
            The problem rule.

        Returns
        -------
        int
            Requests whose ``problem_id`` changed.
        """

    @abstractmethod
    def add_generation(self, spec: LayerSpec, areas: gpd.GeoDataFrame) -> Generation:
        """Store a new generation of a layer and re-join that layer only.

        Parameters
        ----------
        spec
            The layer's key, title, fields and ``valid_from``.
        areas
            ``code``, ``name``, ``geometry`` in the city CRS.

        Returns
        -------
        Generation
            The stored generation's metadata.
        """

    @abstractmethod
    def rejoin(self, keys: Sequence[str] | None = None) -> dict[str, int]:
        """Join every stored request to the active generation of ``keys`` (all when None).

        Returns
        -------
        dict
            Layer key → requests outside every area of that layer.
        """

    @abstractmethod
    def write_contacts(self, batch: ContactBatch, *, info: dict[str, object]) -> WriteResult:
        """Upsert validated contacts and their quarantine rows, atomically.

        Keyed on ``contact_id``: a row whose content differs replaces the stored one, an
        equal row changes nothing (see :mod:`geo.ingest.contacts`). The batch is logged
        in :meth:`batches` with format ``contacts-csv``.

        Parameters
        ----------
        batch
            Contacts and quarantine rows of one source.
        info
            Batch record fields (``batch_id``, ``source_file``, ``format``, …).

        Returns
        -------
        WriteResult
            Counts that add up to ``batch.rows_read``.
        """

    # --- feed sources (geo.store.sources) ----------------------------------------
    @abstractmethod
    def sources(self) -> list[Source]:
        """Every registered feed source with its state, ordered by name."""

    @abstractmethod
    def save_source(self, config: SourceConfig, *, replace: bool = False) -> None:
        """Register a feed source (a new one starts with an empty state).

        Raises
        ------
        InputError
            When a source of that name exists and ``replace`` is false.
        """

    @abstractmethod
    def remove_source(self, name: str) -> bool:
        """Forget a source and its service list (its requests stay); whether it existed."""

    @abstractmethod
    def save_source_state(self, state: SourceState) -> None:
        """Replace a source's state alone (a run's start, outcome or error)."""

    @abstractmethod
    def save_source_services(self, name: str, services: list[dict[str, Any]]) -> None:
        """Replace the service list (Open311 ``services.json`` records) of a source."""

    @abstractmethod
    def source_services(self, name: str) -> list[dict[str, Any]]:
        """The stored service list of a source (empty when none)."""

    def source(self, name: str) -> Source:
        """One registered source.

        Raises
        ------
        InputError
            When no source has ``name``; the message lists the registered ones.
        """
        found = {s.config.name: s for s in self.sources()}
        if name not in found:
            known = ", ".join(found) or "none"
            raise InputError(f"source: no source named {name!r}; registered: {known}")
        return found[name]

    # --- reads ------------------------------------------------------------------
    @abstractmethod
    def contacts(self) -> pd.DataFrame:
        """Every stored contact, ordered by ``contact_id`` (code-point order)."""

    @abstractmethod
    def contact_quarantine(self) -> pd.DataFrame:
        """Every quarantined contact row (see ``CONTACT_QUARANTINE_COLUMNS``)."""

    @abstractmethod
    def requests(self) -> gpd.GeoDataFrame:
        """Every stored request: canonical, derived and one column per layer key."""

    def request_columns(self, columns: Sequence[str], *,
                        categories: Sequence[str] = ()) -> pd.DataFrame:
        """Some columns of every stored request, without geometry objects.

        Parameters
        ----------
        columns
            Column names; names the store does not have are left out.
        categories
            Columns (of ``columns``) to return as ``category`` dtype, categories sorted:
            for text with few distinct values (service type, status, area codes), which
            is then cheaper to read, hold and filter.

        Returns
        -------
        pandas.DataFrame
            One row per request.
        """
        return self.request_reader().read(columns, categories=categories)

    def request_reader(self) -> RequestReader:
        """A reader of request columns that all come from the data as it is now.

        The default holds every stored request, read once on first use; stores that can
        read columns alone (the embedded store) override this.
        """
        return RequestReader(self.requests)

    # --- reads that ask only for what they show (geo.store.reads) ----------------
    @abstractmethod
    def request_summary(self, filt: RequestFilter, *, now: datetime | None = None
                        ) -> RequestSummary:
        """Count, open, overdue (at ``now``), synthetic, first and last request time of
        the requests passing ``filt``, counted by the store."""

    @abstractmethod
    def group_counts(self, filt: RequestFilter, column: str, *, now: datetime | None = None
                     ) -> pd.DataFrame:
        """Requests, open and overdue per value of one column, counted by the store.

        Parameters
        ----------
        filt
            Which requests.
        column
            A layer key (the area code; ``None`` for requests outside every area) or one
            of :data:`geo.store.reads.GROUPABLE`.
        now
            Reference time for ``overdue`` (0 everywhere when ``None``).

        Returns
        -------
        pandas.DataFrame
            Indexed by value (``None`` for missing), columns ``requests``, ``open``,
            ``overdue``; most requests first, ties by value.
        """

    @abstractmethod
    def grid_cells(self, filt: RequestFilter, *, grid_deg: float) -> pd.DataFrame:
        """Requests per latitude/longitude grid cell, counted by the store.

        Returns
        -------
        pandas.DataFrame
            ``row`` = floor(lat / grid_deg), ``col`` = floor(lon / grid_deg), ``n``; one row
            per non-empty cell, ordered by row and column.
        """

    @abstractmethod
    def facet_cells(self, *, grid_deg: float, limit: int | None = None
                    ) -> pd.DataFrame | None:
        """Every located request counted by grid cell, service type, department and status.

        One pass; the heat map of any filter on those three alone comes from it
        (:func:`geo.store.reads.cells_from_facets`) with no read of its own.

        Parameters
        ----------
        grid_deg
            Cell size in degrees, as for :meth:`grid_cells`.
        limit
            Most rows to return; ``None``: no limit.

        Returns
        -------
        pandas.DataFrame or None
            :data:`geo.store.reads.FACET_CELL_COLUMNS` (facets ``None`` for missing; the
            cells as :meth:`grid_cells` numbers them, located requests only), in no
            particular order; ``None`` when there would be more than ``limit`` rows.
        """

    @abstractmethod
    def select_requests(self, filt: RequestFilter, columns: Sequence[str] | None = None, *,
                        limit: int | None = None) -> pd.DataFrame:
        """Some columns of the requests passing ``filt`` (never the geometry).

        Parameters
        ----------
        filt
            Which requests: a box, ids, a hotspot window… The store reads only those.
        columns
            Column names (layer keys give area codes); names the store does not have are
            left out. ``None``: every stored column.
        limit
            At most this many rows (which ones is up to the store).
        """

    @abstractmethod
    def facet_counts(self, *, now: datetime | None = None) -> pd.DataFrame:
        """Every stored request counted by service type, department and status, in one
        pass: the sidebar's choices and the headline numbers of any filter on those three
        alone come from it (:func:`geo.store.reads.summary_from_facets`).

        Returns
        -------
        pandas.DataFrame
            ``service_name``, ``agency_responsible``, ``status`` (``None`` for missing),
            ``requests``, ``overdue`` (open past ``expected_datetime`` at ``now``),
            ``synthetic``, ``first``, ``last`` (request times, UTC).
        """

    def latest_request(self, filt: RequestFilter) -> pd.Timestamp | None:
        """Newest ``requested_datetime`` of the requests passing ``filt`` (``None`` when
        there are none); the PostGIS store answers from an index."""
        return self.request_summary(filt).last

    @abstractmethod
    def problem_count(self, filt: RequestFilter) -> int:
        """Distinct problems among the requests passing ``filt`` (a request without a
        ``problem_id`` is a problem of its own), counted by the store."""

    def area_names(self, key: str) -> dict[str, str]:
        """Code → name of the active areas of layer ``key`` (no geometry read where the
        store can avoid it)."""
        areas = self.areas(key)
        return dict(zip(areas["code"].astype(str), areas["name"].astype(str), strict=True))

    @abstractmethod
    def request_centre(self) -> tuple[float, float] | None:
        """Median (lat, lon) of the stored requests; ``None`` when there are none."""

    @abstractmethod
    def contact_counts(self, request_id: str) -> tuple[int, int]:
        """Stored contacts that named ``request_id``, and how many of them were calls."""

    @abstractmethod
    def record_export(self, *, user: str, role: str, department: str | None, what: str,
                      filters: dict[str, Any], rows: int) -> None:
        """Record one export in the audit log (who, role, department, what, filters, rows;
        the store adds the time)."""

    @abstractmethod
    def exports(self) -> pd.DataFrame:
        """The audit log of exports, oldest first: ``exported_at`` (ISO text, UTC),
        ``user_name``, ``role``, ``department``, ``what``, ``filters``, ``rows``."""

    @abstractmethod
    def quarantine(self) -> pd.DataFrame:
        """Every quarantined row (see :data:`geo.ingest.validate.QUARANTINE_COLUMNS`)."""

    def quarantined(self, service_request_id: str) -> pd.DataFrame:
        """The quarantined rows of one request id, in the order quarantined (what a
        keyed Open311 post checks); stores read only those rows (this default reads the
        whole quarantine)."""
        q = self.quarantine()
        return q[q["service_request_id"] == service_request_id].reset_index(drop=True)

    @abstractmethod
    def batches(self) -> pd.DataFrame:
        """The ingest log, one row per batch (see :data:`BATCH_COLUMNS`)."""

    def batch_log_head(self) -> BatchLogHead:
        """Rows, newest ``batch_id`` and newest ``ingested_at`` of the ingest log (what the
        app checks on every rerun); stores answer without reading the log (this default
        reads it)."""
        log = self.batches()
        return log_head(log["batch_id"], log["ingested_at"])

    def table_counts(self) -> TableCounts:
        """The quarantine, contact and batch counts ``status`` shows (see
        :class:`geo.store.reads.TableCounts`); stores count them without reading the
        tables (this default reads them)."""
        contacts = self.contacts()
        received = contacts["received_datetime"]
        return TableCounts(
            quarantine=reason_counts(self.quarantine()["reason"].value_counts().items()),
            contacts=len(contacts),
            contacts_synthetic=int(contacts["synthetic"].sum()),
            contacts_first=received.min() if len(contacts) else None,
            contacts_last=received.max() if len(contacts) else None,
            contact_quarantine=reason_counts(
                self.contact_quarantine()["reason"].value_counts().items()),
            batches=len(self.batches()),
        )

    @abstractmethod
    def generations(self) -> list[Generation]:
        """Every stored generation of every layer."""

    @abstractmethod
    def areas(self, key: str, generation: int | None = None) -> gpd.GeoDataFrame:
        """The areas of one generation of a layer (the active one by default)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the store is, for messages (never a password)."""

    # --- stored hotspot runs ----------------------------------------------------
    @abstractmethod
    def save_run(self, result: RunResult, *, created_at: datetime | None = None) -> int:
        """Store a hotspot run: parameters, data snapshot, hotspots, members, time.

        Parameters
        ----------
        result
            From :func:`clustering.run.run_hotspots`.
        created_at
            Time to record (now when omitted).

        Returns
        -------
        int
            The new run's id.
        """

    @abstractmethod
    def runs(self) -> pd.DataFrame:
        """Stored runs, oldest first (see :data:`geo.store.runs.RUNS_COLUMNS`)."""

    @abstractmethod
    def load_run(self, run_id: int) -> tuple[dict[str, Any], gpd.GeoDataFrame, pd.DataFrame]:
        """Parameters, ranked hotspots and members (``hotspot_id``, ``service_request_id``).

        Raises
        ------
        InputError
            When no stored run has ``run_id``.
        """

    # --- the Open311 server ------------------------------------------------------
    @abstractmethod
    def query_requests(self, query: RequestQuery, *,
                       columns: Sequence[str] = QUERY_COLUMNS) -> pd.DataFrame:
        """One page of stored requests matching an Open311 query, newest first.

        Parameters
        ----------
        query
            Filters, keyset position and size (:class:`geo.store.query.RequestQuery`).
        columns
            Columns to return (default :data:`geo.store.query.QUERY_COLUMNS`).

        Returns
        -------
        pandas.DataFrame
            At most ``query.limit`` rows, ordered by ``requested_datetime`` then
            ``service_request_id`` (code-point order), both descending.
        """

    def data_version(self) -> str | None:
        """A token that changes whenever the stored requests change, or ``None`` when the
        store cannot tell (the default): what a cache of answers checks before serving
        one again.

        Two calls answer the same token only if no write of requests committed between
        them; a token names one state of the requests, whenever it is seen again.
        """
        return None

    def page_keys(self, query: RequestQuery) -> PageKeys | None:
        """The ids of :meth:`query_rows`' page, with the :meth:`data_version` of the
        state they were read in; ``None`` when the store cannot read both in one state
        (the default). A server that keeps rendered rows asks for these instead of the
        rows, then for the rows it does not hold (:meth:`rows_by_id`)."""
        return None

    def rows_by_id(self, ids: Sequence[str], *, columns: Sequence[str] = QUERY_COLUMNS
                   ) -> tuple[str | None, dict[str, list[Any]]]:
        """The stored rows of ``ids`` as column lists (as :meth:`query_rows`, in no
        particular order), and the :meth:`data_version` of the state they were read in
        (``None``: the store cannot read both in one state, the default's answer)."""
        rows = self.query_rows(RequestQuery(ids=tuple(ids), limit=max(1, len(ids))),
                               columns=columns)
        return None, rows

    def async_reads(self, *, max_size: int) -> AsyncQueries | None:
        """Reads an asyncio server can await without a worker thread, or ``None`` (the
        default): the server then runs :meth:`query_rows` on its thread pool.

        Parameters
        ----------
        max_size
            Most connections (or the like) the reads may hold at once.
        """
        return None

    def query_rows(self, query: RequestQuery, *,
                   columns: Sequence[str] = QUERY_COLUMNS) -> dict[str, list[Any]]:
        """The page of :meth:`query_requests` as column lists (what the Open311 server
        serves from): times as aware datetimes, missing values as ``None``. Stores
        override it to skip the data frame."""
        return frame_rows(self.query_requests(query, columns=columns))

    @abstractmethod
    def api_keys(self) -> list[ApiKey]:
        """Every account's key record (hash, role, revoked), by name."""

    @abstractmethod
    def add_api_key(self, name: str, role: str, key_hash: str) -> ApiKey:
        """Store a new account with the hash of its key.

        Raises
        ------
        InputError
            When the name is taken, or the name or role is not allowed.
        """

    @abstractmethod
    def revoke_api_key(self, name: str) -> ApiKey:
        """Revoke an account's key (its record stays).

        Raises
        ------
        InputError
            When there is no such account.
        """

    @abstractmethod
    def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key record with this hash (revoked or not), or ``None``."""

    # --- shared helpers ---------------------------------------------------------
    def active(self) -> dict[str, Generation]:
        """Layer key → active generation."""
        return active_generations(self.generations())

    def layer_keys(self) -> tuple[str, ...]:
        """Keys of the stored layers, in the order they were first added."""
        seen: dict[str, None] = {}
        for gen in sorted(self.generations(), key=lambda g: g.generation):
            seen.setdefault(gen.key, None)
        return tuple(seen)

    def ensure_profile_layers(self) -> list[Generation]:
        """Load every profile layer the store does not hold yet.

        Returns
        -------
        list of Generation
            The generations added (empty when the store already had every layer).
        """
        have = {g.key for g in self.generations()}
        added = []
        for spec in self.profile.layers:
            if spec.key not in have:
                areas = load_layer(spec, crs=self.profile.crs)
                added.append(self.add_generation(spec, areas))
        return added

    def add_layer_file(self, spec: LayerSpec) -> Generation:
        """Read a layer file (see :func:`layers.registry.load_layer`) and store it."""
        return self.add_generation(spec, load_layer(spec, crs=self.profile.crs))

    def write_privileges(self) -> list[str]:
        """Tables of requests and layers this connection may change (the app wants none);
        the embedded store's files are guarded by the file system, so it names none."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (connections); the embedded store holds none."""


class RequestReader:
    """Columns of the stored requests, read when asked, all from one snapshot.

    A page can read the columns its first view needs now and others later (ids and
    addresses for popups, projected positions for a hotspot run) and still have rows
    that line up: every read comes from the data as it was when the reader was made,
    whatever was ingested since. Reads may come from several threads.

    Parameters
    ----------
    load
        Returns every stored request; called once, on the first read.
    """

    def __init__(self, load: Callable[[], pd.DataFrame]) -> None:
        self._load = load
        self._frame: pd.DataFrame | None = None
        self._lock = threading.Lock()

    def read(self, columns: Sequence[str], *, categories: Sequence[str] = ()) -> pd.DataFrame:
        """Some columns of every request (see :meth:`Store.request_columns`).

        Parameters
        ----------
        columns
            Column names; names the store does not have are left out.
        categories
            Columns (of ``columns``) to return as sorted categoricals.

        Returns
        -------
        pandas.DataFrame
            One row per request, in the same order on every read.
        """
        with self._lock:
            if self._frame is None:
                self._frame = self._load()
            frame = self._frame
        out = pd.DataFrame(frame[[c for c in columns if c in frame.columns and
                                  c != "geometry"]])
        return as_categories(out, categories)


def as_categories(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with ``columns`` (those it has) as ``category`` dtype, categories sorted.

    Sorted categories make sorting and tie-breaking by these columns the same as on the
    text. Columns that already are categorical get their categories sorted.

    Examples
    --------
    >>> out = as_categories(pd.DataFrame({"s": ["b", "a", None]}), ["s", "missing"])
    >>> list(out["s"].cat.categories), out["s"].isna().tolist()
    (['a', 'b'], [False, False, True])
    """
    out = frame
    for col in columns:
        if col not in frame.columns:
            continue
        values = frame[col]
        if not isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype("category")
        cats = values.cat.categories
        order = np.argsort(cats.to_numpy(), kind="stable")
        if (order != np.arange(len(order))).any():
            # recode with one take (reorder_categories re-validates every code)
            rank = np.empty(len(order) + 1, dtype=np.int64)
            rank[order] = np.arange(len(order))
            rank[-1] = -1  # code -1 (missing) stays missing
            codes = rank[values.cat.codes.to_numpy()]
            values = pd.Series(pd.Categorical.from_codes(codes, categories=cats[order]),
                               index=values.index, name=col)
        if out is frame:
            out = frame.copy(deep=False)
        out[col] = values
    return out


def next_generation_number(existing: list[Generation], key: str) -> int:
    """1 + the highest generation number stored for ``key``."""
    return 1 + max((g.generation for g in existing if g.key == key), default=0)


def describe_generation(
    spec: LayerSpec, areas: gpd.GeoDataFrame, existing: list[Generation]
) -> Generation:
    """Metadata for ``areas`` as the next generation of ``spec.key``."""
    return generation_for(spec, areas, generation=next_generation_number(existing, spec.key))


def open_store(location: str | Path, profile: CityProfile, *,
               pool_size: int | None = None) -> Store:
    """Open the store named by ``location``.

    Parameters
    ----------
    location
        A directory (embedded store, created when missing) or a ``postgresql://`` URL
        (PostGIS store; ``postgresql:`` alone uses the libpq ``PG*`` variables).
    profile
        The city profile the store serves.
    pool_size
        PostGIS: the most pooled connections (the store's default when ``None``).

    Returns
    -------
    Store
        The opened store.

    Raises
    ------
    StoreError
        When the store cannot be opened or belongs to another city.
    """
    text = str(location)
    if is_postgres_url(text):
        try:
            from geo.store.postgis import PostGISStore
        except ImportError as err:
            raise StoreError(f"the PostGIS store is not available in this build ({err})") from err
        if pool_size is not None:
            return PostGISStore.open(text, profile, max_size=pool_size)
        return PostGISStore.open(text, profile)
    from geo.store.embedded import EmbeddedStore

    return EmbeddedStore(Path(text), profile)
