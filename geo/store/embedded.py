"""The embedded store: GeoParquet files under a directory, no server needed.

Layout::

    STORE/
      CURRENT                      name of the committed snapshot, replaced atomically
      snapshots/000042/
        requests-000007.parquet    requests in parts: GeoParquet, point geometry in WGS84
        requests-000007.deleted.npy  positions of a part's superseded rows
        quarantine.parquet
        batches.parquet
        manifest.json              city name, layer generations, the request parts
      layers/<key>/g<N>.parquet    areas of one generation (city CRS), never rewritten
      cache/joins/<sha256>.npz     the join index of a layer file, by its content
      .lock                        writers take an exclusive lock on it

A write builds a complete new snapshot in a temporary directory (unchanged files are
hard links; an upsert adds one request part and the deletion files of the parts whose rows
it supersedes, see :mod:`geo.store.embedded_parts`), renames it into place and then
replaces ``CURRENT``: a process killed at any moment leaves the previous snapshot
current, readable and intact. The three newest snapshots are kept; stray temporary
directories are removed by the next writer.

A write that fails (a full disk, a read-only file system) removes what it had begun and
raises :class:`StoreError`; ``CURRENT`` still names the previous snapshot. A snapshot file
that cannot be read (truncated, corrupt) raises :class:`StoreError` naming the file and
the earlier snapshots, which share nothing with it but unchanged files (hard links).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa

from geo.ingest.contacts import (
    ContactBatch,
    empty_contact_quarantine,
    empty_contacts,
    typed_contact_quarantine,
    typed_contacts,
)
from geo.ingest.model import TEXT, empty_requests
from geo.ingest.sink import ProblemAssigner, WriteResult
from geo.ingest.validate import ValidatedBatch, empty_quarantine
from geo.joins import (
    AreaIndex,
    build_index,
    index_from_bytes,
    index_to_bytes,
    locate_layers,
    ranks_text,
)
from geo.store import embedded_runs, problem_ids
from geo.store import embedded_upsert as upsert
from geo.store.base import (
    BATCH_COLUMNS,
    RequestReader,
    Store,
    as_categories,
    describe_generation,
)
from geo.store.embedded_contacts import merge_contacts
from geo.store.embedded_parts import (
    LEGACY_FILE,
    PART,
    PARTS_KEY,
    ROW,
    RequestParts,
    UnreadablePart,
    needs_migration,
    parts_of,
    referenced_files,
    write_deleted,
    write_part,
)
from geo.store.embedded_query import EmbeddedApiMixin
from geo.store.embedded_reads import EmbeddedReads
from geo.store.embedded_sources import EmbeddedSources, with_state
from geo.store.embedded_stream import EmbeddedStream
from geo.store.runs import RunResult, pack_run
from geo.store.sources import SourceState
from hotspot311.errors import StoreError
from layers.profile import CityProfile, LayerSpec, validate_layer_key
from layers.registry import Generation, active_generations

_CONTACT_FILES = ("contacts.parquet", "contact_quarantine.parquet")
_FILES = ("quarantine.parquet", "batches.parquet", "manifest.json",
          *_CONTACT_FILES, *embedded_runs.FILES, "sources.json")
_KEEP_SNAPSHOTS = 3
#: Area codes as Arrow-backed text (what the Parquet file reads back as).
_T = TypeVar("_T")


class EmbeddedStore(EmbeddedStream, EmbeddedSources, EmbeddedApiMixin, EmbeddedReads, Store):
    """GeoParquet store in a directory.

    Parameters
    ----------
    root
        Store directory; created on first write.
    profile
        City profile. A store holds one city: opening it with another profile's name
        raises :class:`StoreError`.
    """

    def __init__(self, root: Path, profile: CityProfile) -> None:
        self.root = Path(root)
        self.profile = profile
        self._index_cache: dict[tuple[str, int], AreaIndex] = {}
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"store {self.root}: exists and is not a directory")
        city = self._manifest().get("city")
        if city and city != profile.name:
            raise StoreError(
                f"store {self.root} holds {city!r} requests; it cannot be opened with the "
                f"{profile.name!r} profile (use another --store directory)"
            )

    # --- reads ------------------------------------------------------------------
    def describe(self) -> str:
        """The store directory."""
        return f"embedded store {self.root}"

    def requests(self) -> gpd.GeoDataFrame:
        """Every stored request."""
        frame = self._read_requests(lambda view: view.frame())
        return empty_requests(self.layer_keys()) if frame is None else frame

    def quarantine(self) -> pd.DataFrame:
        """Every quarantined row."""
        path = self._current_file("quarantine.parquet")
        return self._read(path, pd.read_parquet) if path is not None else empty_quarantine()

    def quarantined(self, service_request_id: str) -> pd.DataFrame:
        """The quarantined rows of one request id (the file read with that filter)."""
        path = self._current_file("quarantine.parquet")
        if path is None:
            return empty_quarantine()
        rows = self._read(path, lambda p: pd.read_parquet(
            p, filters=[("service_request_id", "==", service_request_id)]))
        return rows.reset_index(drop=True)

    def contacts(self) -> pd.DataFrame:
        """Every stored contact, ordered by ``contact_id``."""
        path = self._current_file("contacts.parquet")
        return typed_contacts(pd.read_parquet(path)) if path is not None else empty_contacts()

    def contact_quarantine(self) -> pd.DataFrame:
        """Every quarantined contact row."""
        path = self._current_file("contact_quarantine.parquet")
        if path is None:
            return empty_contact_quarantine()
        return typed_contact_quarantine(pd.read_parquet(path))

    def batches(self) -> pd.DataFrame:
        """The ingest log."""
        path = self._current_file("batches.parquet")
        if path is None:
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in BATCH_COLUMNS})
        return self._read(path, pd.read_parquet)

    def generations(self) -> list[Generation]:
        """Every stored layer generation."""
        return [Generation.from_dict(g) for g in self._manifest().get("generations", [])]

    def areas(self, key: str, generation: int | None = None) -> gpd.GeoDataFrame:
        """Areas of a layer generation (the active one by default)."""
        gen = self._generation(key, generation)
        return self._read(self._layer_path(gen), gpd.read_parquet)

    def request_reader(self) -> RequestReader:
        """A reader of the current snapshot's request columns (the Parquet file is held
        open: later reads see this snapshot even after new ones are written).

        Text columns read as categories are read dictionary-encoded, straight into
        ``category`` dtype (no Python string per row).
        """
        reader = self._read_requests(
            lambda view: _PartsRequests(RequestParts(view.directory, view.parts, hold=True)))
        if reader is None:
            return RequestReader(lambda: empty_requests(self.layer_keys()))
        return reader

    def _keys(self) -> pd.DataFrame:
        """Id, ``updated_datetime`` and ``row_hash`` of every stored request (no geometry)."""
        keys = self._read_requests(lambda view: view.table(list(upsert.KEY_COLUMNS)).to_pandas())
        if keys is None:
            return pd.DataFrame(columns=list(upsert.KEY_COLUMNS))
        return keys

    def count(self) -> int:
        """Number of stored requests, from the manifest (or the Parquet footer of a store
        written before parts)."""
        count = self._read_requests(lambda view: view.count)
        return count or 0

    def _view(self) -> RequestParts | None:
        """The current snapshot's request parts, ``None`` when it holds no requests."""
        current = self._current_dir()
        if current is None:
            return None
        parts = parts_of(self._manifest(), current)
        return RequestParts(current, parts) if parts else None

    def _read_requests(self, reader: Callable[[RequestParts], _T]) -> _T | None:
        """``reader`` of the current parts (``None`` when there are none); a part or
        deletion file that cannot be read raises a StoreError naming it."""
        try:
            view = self._view()
            return None if view is None else reader(view)
        except UnreadablePart as err:
            raise self._unreadable(err.path, err.__cause__ or err) from err

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
        """Upsert requests and quarantine rows in one atomic snapshot (see :class:`Store`).

        The snapshot gets one new request part with the written rows (and the stored rows
        whose ``problem_id`` changes), and deletion files for the rows they supersede
        (:mod:`geo.store.embedded_upsert`): the write reads the key columns and the
        columns the problem rule needs, not the stored rows. ``problem_id`` is brought up
        to date in the same snapshot (:mod:`geo.store.problem_ids`).
        """
        with self._lock():
            manifest = self._manifest()
            manifest["city"] = self.profile.name
            writes: dict[str, Any] = {}
            result = self._read_requests(
                lambda view: self._upsert(view, batch, manifest, problems, writes))
            if result is None:  # no requests stored yet
                result = self._upsert(None, batch, manifest, problems, writes)

            quarantine = self.quarantine()
            q_new = batch.quarantine
            result.quarantined = {str(k): int(v) for k, v in q_new["reason"].value_counts().items()}
            if release:
                before = len(quarantine)
                quarantine = quarantine[~quarantine["quarantine_id"].isin(set(release))]
                result.released = before - len(quarantine)
            fresh_q = q_new[~upsert.ids_in(q_new["quarantine_id"], quarantine["quarantine_id"])]
            if len(fresh_q) or result.released:
                frames = [f for f in (quarantine, fresh_q) if len(f)]
                writes["quarantine.parquet"] = (
                    pd.concat(frames, ignore_index=True) if frames else empty_quarantine()
                )

            writes["batches.parquet"] = self._logged(batch.rows_read, result, info)
            if source_state is not None:
                writes["sources.json"] = with_state(self._sources_doc(), source_state)
            writes.setdefault("manifest.json", manifest)
            self._commit(writes)
        return result

    def _upsert(self, view: RequestParts | None, batch: ValidatedBatch,
                manifest: dict[str, Any], problems: ProblemAssigner | None,
                writes: dict[str, Any]) -> WriteResult:
        """Decide each incoming row and put the request files of the write in ``writes``
        (points are made for the written rows alone)."""
        incoming = batch.current()
        current = self._current_dir()
        legacy = needs_migration(manifest, current)
        rows = (upsert.read_stored(view, problems=problems is not None and not legacy)
                if view is not None and len(incoming) else None)
        stored = (upsert.match_stored(rows, incoming["service_request_id"])
                  if rows is not None else None)
        decision = _decide(stored if stored is not None else pd.DataFrame(), incoming)
        result = WriteResult(
            inserted=int(decision.eq("insert").sum()),
            updated=int(decision.eq("update").sum()),
            unchanged=int(decision.eq("keep").sum()),
        )
        if not (result.inserted or result.updated):
            if legacy:  # migrate the store to parts on its next write
                self._full(manifest, self.requests(), writes)
            return result
        fresh = batch.requests_where(decision.isin(["insert", "update"]).to_numpy()).copy()
        fresh = self._join(fresh, self.active())
        fresh["problem_id"] = None
        superseded = (stored[upsert.ids_in(stored["service_request_id"],
                                           fresh["service_request_id"])]
                      if stored is not None else pd.DataFrame({PART: [], ROW: []}))
        again = None
        if problems is not None and view is not None and rows is not None and not legacy:
            rewrites = upsert.problem_rewrites(view, rows, superseded, fresh, problems)
            if rewrites is None:  # the whole city: the rewrite of every row
                legacy = True
            else:
                fresh["problem_id"], again = rewrites
                superseded = pd.concat([superseded[[PART, ROW]],
                                        again.select([PART, ROW]).to_pandas()])
        elif problems is not None and view is None:
            fresh = problem_ids.update_frame(fresh.reset_index(drop=True),
                                             np.ones(len(fresh), dtype=bool),
                                             pd.Series([], dtype=object), problems)
        if legacy:
            stored_all = self.requests()
            gone = upsert.ids_in(stored_all["service_request_id"], fresh["service_request_id"])
            old_ids = (stored_all.loc[gone, "problem_id"] if "problem_id" in stored_all
                       else pd.Series([], dtype=object))
            kept = stored_all[~gone]
            merged = (pd.concat([kept, fresh], ignore_index=True) if len(kept)
                      else fresh.reset_index(drop=True))
            changed = np.arange(len(merged)) >= len(kept)
            merged = problem_ids.update_frame(merged, changed, old_ids, problems)
            self._full(manifest, merged, writes)
            return result
        plan = upsert.plan_parts(view, manifest, _align(fresh, self.layer_keys()),
                                 superseded, again)
        writes.update(plan.files)
        writes["manifest.json"] = plan.manifest
        return result

    def _full(self, manifest: dict[str, Any], frame: gpd.GeoDataFrame,
              writes: dict[str, Any]) -> None:
        """Every request as one new part (a full rewrite) into ``writes``."""
        plan = upsert.full_write(manifest, _align(frame, _keys_of(manifest)))
        writes.update(plan.files)
        writes["manifest.json"] = plan.manifest

    def write_contacts(self, batch: ContactBatch, *, info: dict[str, object]) -> WriteResult:
        """Upsert contacts and their quarantine rows in one snapshot (see :class:`Store`)."""
        with self._lock():
            writes, result = merge_contacts(self.contacts(), self.contact_quarantine(), batch)
            writes["batches.parquet"] = self._logged(batch.rows_read, result, info)
            self._commit(writes)
        return result

    def _logged(self, rows_read: int, result: WriteResult, info: dict[str, object]
                ) -> pd.DataFrame:
        """The ingest log with one more batch record."""
        record = {c: info.get(c) for c in BATCH_COLUMNS}
        record.update(
            rows_read=rows_read, inserted=result.inserted, updated=result.updated,
            unchanged=result.unchanged, quarantined=sum(result.quarantined.values()),
            ingested_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        return pd.concat([self.batches(), pd.DataFrame([record])], ignore_index=True).astype(
            dict.fromkeys(("batch_id", "source_file", "format", "encoding"), object))

    def rebuild_problems(self, problems: ProblemAssigner) -> int:
        """Recompute every ``problem_id`` (see :meth:`Store.rebuild_problems`)."""
        with self._lock():
            stored = self.requests()
            if stored.empty:
                return 0
            rebuilt, n_changed = problem_ids.rebuild_frame(stored, problems)
            if n_changed:
                writes: dict[str, Any] = {}
                self._full(self._manifest(), rebuilt, writes)
                self._commit(writes)
        return n_changed

    def add_generation(self, spec: LayerSpec, areas: gpd.GeoDataFrame) -> Generation:
        """Store a layer generation and re-join that layer (see :class:`Store`)."""
        validate_layer_key(spec.key)  # the key names a directory: check it first
        with self._lock():
            manifest = self._manifest()
            gen = describe_generation(spec, areas, self.generations())
            path = self._layer_path(gen)
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic(path, lambda p: areas.to_parquet(p))
            manifest.setdefault("generations", []).append(gen.to_dict())
            manifest["city"] = self.profile.name
            writes: dict[str, Any] = {"manifest.json": manifest}
            stored = self.requests()
            if len(stored):
                active = self._active_from(manifest)
                joined = self._join(stored, {spec.key: active[spec.key]})
                self._full(manifest, joined, writes)
            self._commit(writes)
        return gen

    def rejoin(self, keys: Sequence[str] | None = None) -> dict[str, int]:
        """Re-join every request to the active generation of ``keys``."""
        with self._lock():
            active = self.active()
            chosen = {k: active[k] for k in (keys or active.keys())}
            stored = self.requests()
            if len(stored):
                joined = self._join(stored, chosen)
                writes: dict[str, Any] = {}
                self._full(self._manifest(), joined, writes)
                self._commit(writes)
                stored = joined
        return {k: int(stored[k].isna().sum()) if k in stored else 0 for k in chosen}

    # --- stored hotspot runs (see geo.store.embedded_runs) -----------------------------
    def save_run(self, result: RunResult, *, created_at: datetime | None = None) -> int:
        """Store a hotspot run (see :meth:`Store.save_run`)."""
        packed = pack_run(result)
        with self._lock():
            run_id, writes = embedded_runs.append_run(
                self._run_files(), packed, created_at=created_at or datetime.now(UTC)
            )
            self._commit(dict(writes))
        return run_id

    def runs(self) -> pd.DataFrame:
        """Stored runs, oldest first (see :meth:`Store.runs`)."""
        return embedded_runs.list_runs(self._run_file(embedded_runs.RUNS_FILE))

    def load_run(self, run_id: int) -> tuple[dict[str, Any], gpd.GeoDataFrame, pd.DataFrame]:
        """Parameters, hotspots and members of a stored run (see :meth:`Store.load_run`)."""
        return embedded_runs.load_run(self._run_files(), run_id, crs=self.profile.crs)

    def _run_files(self) -> dict[str, pd.DataFrame]:
        return {n: self._run_file(n) for n in embedded_runs.FILES}

    def _run_file(self, name: str) -> pd.DataFrame:
        path = self._current_file(name)
        if path is None:
            return embedded_runs.read(None, name)
        return self._read(path, lambda p: embedded_runs.read(p, name))

    # --- internals --------------------------------------------------------------
    def _join(self, frame: gpd.GeoDataFrame, gens: dict[str, Generation]) -> gpd.GeoDataFrame:
        """Set one code column per generation's layer, from the city-CRS x/y."""
        out = frame.copy()
        x = out["x"].to_numpy(dtype="float64")
        y = out["y"].to_numpy(dtype="float64")
        indexes = {key: self._index(gen) for key, gen in gens.items()}
        for key, rank in locate_layers(x, y, indexes).items():
            codes = ranks_text(rank, indexes[key])
            out[key] = pd.Series(codes.to_pandas(types_mapper={pa.string(): TEXT}.get).array,
                                 index=out.index)
        return out

    def _index(self, gen: Generation) -> AreaIndex:
        cache_key = (gen.key, gen.generation)
        if cache_key not in self._index_cache:
            self._index_cache[cache_key] = _index_for_file(self._layer_path(gen),
                                                          self.root / "cache" / "joins")
        return self._index_cache[cache_key]

    def _generation(self, key: str, generation: int | None) -> Generation:
        gens = [g for g in self.generations() if g.key == key]
        if not gens:
            raise StoreError(
                f"layer {key!r} is not in {self.describe()}; layers: {list(self.layer_keys())}"
            )
        if generation is None:
            return self.active()[key]
        for g in gens:
            if g.generation == generation:
                return g
        raise StoreError(
            f"layer {key!r} has no generation {generation}; "
            f"it has {[g.generation for g in gens]}"
        )

    def _active_from(self, manifest: dict[str, Any]) -> dict[str, Generation]:
        return active_generations(
            [Generation.from_dict(g) for g in manifest.get("generations", [])]
        )

    def _layer_path(self, gen: Generation) -> Path:
        return self.root / "layers" / gen.key / f"g{gen.generation}.parquet"

    def _current_dir(self) -> Path | None:
        pointer = self.root / "CURRENT"
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        path = self.root / "snapshots" / name
        if not path.is_dir():
            raise StoreError(
                f"{self.describe()}: CURRENT names snapshot {name!r}, which is missing"
            )
        return path

    def _current_name(self) -> str | None:
        """The snapshot ``CURRENT`` names, or ``None`` when it cannot be read."""
        try:
            return (self.root / "CURRENT").read_text(encoding="utf-8").strip()
        except OSError:
            return None

    def _current_file(self, name: str) -> Path | None:
        current = self._current_dir()
        if current is None:
            return None
        path = current / name
        return path if path.exists() else None

    def _manifest(self) -> dict[str, Any]:
        path = self._current_file("manifest.json")
        if path is None:
            return {}
        return self._read(path, lambda p: dict(json.loads(p.read_text(encoding="utf-8"))))

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """The writers' lock; an OS error of the write inside becomes a StoreError."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = open(self.root / ".lock", "a+b")  # noqa: SIM115 - closed below
        except OSError as err:
            raise self._write_error(err) from err
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            except OSError as err:
                raise self._write_error(err) from err
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write_error(self, err: OSError) -> StoreError:
        where = f" ({err.filename})" if err.filename else ""
        return StoreError(
            f"{self.describe()}: cannot write: {err.strerror or err}{where}; nothing was "
            "changed, the previous state is current"
        )

    def _read(self, path: Path, reader: Callable[[Path], _T]) -> _T:
        """``reader(path)``; a file that cannot be read raises a StoreError naming it."""
        try:
            return reader(path)
        except (OSError, ValueError, pa.ArrowException) as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise self._unreadable(path, err) from err

    def _unreadable(self, path: Path, err: BaseException) -> StoreError:
        """The error for a snapshot file that cannot be read, naming earlier snapshots."""
        snaps = self.root / "snapshots"
        current = self._current_dir()
        earlier = sorted(
            (p.name for p in snaps.iterdir() if p.name.isdigit()
             and (current is None or p.name < current.name)), reverse=True,
        ) if snaps.is_dir() else []
        hint = (f"; earlier snapshots: {', '.join(earlier)} (to go back to one, write "
                f"its name into {self.root / 'CURRENT'})" if earlier else "")
        return StoreError(
            f"{self.describe()}: {path.relative_to(self.root)} cannot be read "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
            f"{hint}"
        )

    def _commit(self, writes: dict[str, Any]) -> None:
        """Write a new snapshot with ``writes`` (others hard-linked) and make it current."""
        snaps = self.root / "snapshots"
        snaps.mkdir(parents=True, exist_ok=True)
        for stray in snaps.glob(".tmp-*"):
            shutil.rmtree(stray, ignore_errors=True)
        current = self._current_dir()
        numbers = [int(p.name) for p in snaps.iterdir() if p.name.isdigit()]
        name = f"{max(numbers, default=0) + 1:06d}"
        tmp = snaps / f".tmp-{name}-{os.getpid()}"
        tmp.mkdir()
        manifest = writes.get("manifest.json")
        if manifest is None:
            manifest = self._manifest()
        # the request parts the new manifest lists (a store written before parts keeps
        # its one requests.parquet until a write lists parts)
        files = [*_FILES, *referenced_files(manifest)]
        if PARTS_KEY not in manifest:
            files.append(LEGACY_FILE)
        try:
            for file in files:
                target = tmp / file
                if file in writes:
                    _write(target, writes[file])
                elif current is not None and (current / file).exists():
                    os.link(current / file, target)
                elif file not in _FILES and file != LEGACY_FILE:
                    raise StoreError(f"{self.describe()}: {file} is listed in the new "
                                     "manifest but neither written nor in the current "
                                     "snapshot")
            _fsync_dir(tmp)
            os.rename(tmp, snaps / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # CURRENT still names the previous one
            raise
        try:
            _fsync_dir(snaps)
            _atomic(self.root / "CURRENT", lambda p: p.write_text(name + "\n", encoding="utf-8"))
        except BaseException:
            if self._current_name() != name:  # never current: remove it
                shutil.rmtree(snaps / name, ignore_errors=True)
            raise
        for old in sorted((p for p in snaps.iterdir() if p.name.isdigit()), key=lambda p: p.name)[
            :-_KEEP_SNAPSHOTS
        ]:
            shutil.rmtree(old, ignore_errors=True)


class _PartsRequests(RequestReader):
    """Request columns read alone from the parts of one snapshot, held open."""

    def __init__(self, parts: RequestParts) -> None:
        super().__init__(pd.DataFrame)
        self._parts = parts

    def read(self, columns: Sequence[str], *, categories: Sequence[str] = ()) -> pd.DataFrame:
        schema = self._parts.schema
        wanted = [c for c in columns if c in schema.names and c != "geometry"]
        text = [c for c in categories if c in wanted
                and (pa.types.is_string(schema.field(c).type)
                     or pa.types.is_large_string(schema.field(c).type))]
        table = self._parts.table(wanted, read_dictionary=text)
        return as_categories(table.to_pandas(), [c for c in categories if c in wanted])


@lru_cache(maxsize=64)
def _index_by_digest(digest: str, path: str, cache: str) -> AreaIndex:
    """Index of a layer file, shared by every store in the process holding the same bytes.

    Kept in the store under ``cache/joins/<digest>.npz`` (:func:`geo.joins.index_to_bytes`),
    so that a new process loads it instead of building it again; a kept index of another
    format is built again and replaced. A cache that cannot be written is skipped.
    """
    kept = Path(cache) / f"{digest}.npz"
    if kept.is_file():
        index = index_from_bytes(kept.read_bytes())
        if index is not None:
            return index
    index = build_index(gpd.read_parquet(path))
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        _atomic(kept, lambda p: p.write_bytes(index_to_bytes(index)))
    except OSError:
        pass  # a read-only store: the next process builds it again
    return index


def _index_for_file(path: Path, cache: Path) -> AreaIndex:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return _index_by_digest(digest, str(path), str(cache))


def _decide(stored: pd.DataFrame, incoming: pd.DataFrame) -> pd.Series:
    """Per incoming row: ``insert``, ``update`` or ``keep`` (see the upsert rule), as a
    categorical.

    ``stored`` holds :func:`geo.store.embedded_upsert.match_stored`'s rows, which say
    which incoming row each belongs to; the times and hashes are compared as numbers (a
    pandas merge of the two id columns made a Python string per row: 0.5 s for a million
    unchanged rows).
    """
    n = len(incoming)
    at = np.full(n, -1, dtype=np.intp)  # per incoming row: its stored row, or -1
    if len(stored):
        old_all, old_missing = _nanoseconds(stored["updated_datetime"])
        owner = stored[upsert.INCOMING].to_numpy(dtype=np.int64)
        if np.bincount(owner, minlength=n).max() <= 1:  # each id stored once (the rule)
            at[owner] = np.arange(len(stored))
        else:  # an id stored twice: its newest version (then the later row) counts
            order = np.lexsort((np.arange(len(stored)),
                                np.where(old_missing, np.iinfo(np.int64).min, old_all), owner))
            last = np.r_[owner[order][1:] != owner[order][:-1], True]
            at[owner[order][last]] = order[last]
    found = at >= 0
    pos = np.where(found, at, 0)
    code = np.where(found, _KEEP, _INSERT).astype(np.int8)
    if found.any():
        upd, upd_na = _nanoseconds(incoming["updated_datetime"])
        old_upd, old_na = old_all[pos], old_missing[pos]
        both = ~upd_na & ~old_na
        newer = (both & (upd > old_upd)) | (~upd_na & old_na)
        tie = (both & (upd == old_upd)) | (upd_na & old_na)
        old_bits = stored["row_hash"].to_numpy(dtype="uint64", na_value=0)[pos]
        changed = incoming["row_hash"].to_numpy(dtype="uint64") != old_bits
        code[found & (newer | (tie & changed))] = _UPDATE
    return pd.Series(pd.Categorical.from_codes(code, categories=pd.Index(_DECISIONS)),
                     index=incoming.index)


#: The decisions of :func:`_decide`, by code.
_DECISIONS = ("insert", "update", "keep")
_INSERT, _UPDATE, _KEEP = range(3)


def _nanoseconds(times: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """UTC times (any unit) as int64 nanoseconds since the epoch, and which are missing.

    A time that nanoseconds cannot hold raises (``as_unit``), and times without a zone
    are refused: both stores keep request times in UTC.
    """
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        raise TypeError(f"updated_datetime: expected UTC times, got {times.dtype}")
    missing = times.isna().to_numpy(dtype=bool)
    bits = np.asarray(times.dt.as_unit("ns").array.asi8, dtype=np.int64)
    return np.where(missing, 0, bits), missing


def _keys_of(manifest: dict[str, Any]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for g in sorted(manifest.get("generations", []), key=lambda g: g["generation"]):
        seen.setdefault(g["key"], None)
    return tuple(seen)


def _align(frame: gpd.GeoDataFrame, keys: tuple[str, ...]) -> gpd.GeoDataFrame:
    """Put columns in canonical order with every layer column present."""
    template = empty_requests(keys)
    for col in template.columns:
        if col not in frame.columns:
            frame[col] = None
    ordered = list(template.columns) + [c for c in frame.columns if c not in template.columns]
    out = frame[ordered]
    return gpd.GeoDataFrame(out, geometry="geometry", crs="EPSG:4326")


def _write(path: Path, value: Any) -> None:
    if isinstance(value, Path):  # a part already written (and synced) in staging
        os.link(value, path)
    elif isinstance(value, pa.Table):
        write_part(path, value)
    elif isinstance(value, np.ndarray):
        write_deleted(path, value)
    elif path.suffix == ".json":
        path.write_text(json.dumps(value, indent=1, sort_keys=True), encoding="utf-8")
    elif isinstance(value, gpd.GeoDataFrame):
        value.to_parquet(path, index=False)
    else:
        value.to_parquet(path, index=False)
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _atomic(path: Path, writer: Any) -> None:
    """Write ``path`` through a temporary file and an atomic rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        writer(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


