"""The embedded store's write of many batches as one snapshot (:mod:`geo.ingest.stream`).

Each batch is decided against the store as it was when the write began (a file's ids are
unique across its batches once its duplicates are resolved), and its new and changed rows
are written at once as a request part into a staging directory; the deletion files, the
quarantine, the ingest log and the manifest follow at the end, and one snapshot commit
makes all of it current. Memory holds one batch and the store's key columns, never the
file. A failure (or a kill) half-way leaves the previous snapshot current; the staging
directory is removed, or by the next writer. Parts are not compacted here: the next
ordinary write does it (:func:`geo.store.embedded_parts.compaction_plan`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.ingest.sink import WriteResult
from geo.ingest.validate import ValidatedBatch
from geo.store import embedded_upsert as upsert
from geo.store.embedded_parts import (
    PART,
    ROW,
    Part,
    RequestParts,
    needs_migration,
    new_part_name,
    part_table,
    with_parts,
    write_part,
)
from layers.profile import CityProfile
from layers.registry import Generation

STAGING_PREFIX = ".stage-"


class EmbeddedStream:
    """``write_stream`` for :class:`geo.store.embedded.EmbeddedStore` (a mixin)."""

    root: Path
    profile: CityProfile
    if TYPE_CHECKING:  # the store's own
        def _lock(self) -> AbstractContextManager[None]: ...
        def _manifest(self) -> dict[str, Any]: ...
        def _current_dir(self) -> Path | None: ...
        def _view(self) -> RequestParts | None: ...
        def _commit(self, writes: dict[str, Any]) -> None: ...
        def _full(self, manifest: dict[str, Any], frame: gpd.GeoDataFrame,
                  writes: dict[str, Any]) -> None: ...
        def _join(self, frame: gpd.GeoDataFrame, gens: dict[str, Generation]
                  ) -> gpd.GeoDataFrame: ...
        def _logged(self, rows_read: int, result: WriteResult, info: dict[str, object]
                    ) -> pd.DataFrame: ...
        def _read_requests(self, reader: Callable[[RequestParts], Any]) -> Any: ...
        def requests(self) -> gpd.GeoDataFrame: ...
        def quarantine(self) -> pd.DataFrame: ...
        def active(self) -> dict[str, Generation]: ...
        def layer_keys(self) -> tuple[str, ...]: ...

    def write_stream(self, batches: Iterable[ValidatedBatch], *,
                     info: dict[str, object]) -> WriteResult:
        """Upsert every batch of one source as one atomic snapshot.

        Parameters
        ----------
        batches
            Validated batches of one file, its duplicates resolved across them
            (:func:`geo.ingest.stream.ingest_stream`); consumed once.
        info
            The batch record fields (one ingest log record for the whole file).

        Returns
        -------
        WriteResult
            The sums over the batches.
        """
        from geo.store.embedded import _align, _decide

        with self._lock():
            if needs_migration(self._manifest(), self._current_dir()):
                writes: dict[str, Any] = {}  # the layout before parts: rewrite it first
                self._full(self._manifest(), self.requests(), writes)
                self._commit(writes)
            snaps = self.root / "snapshots"
            snaps.mkdir(parents=True, exist_ok=True)
            for stray in snaps.glob(f"{STAGING_PREFIX}*"):
                shutil.rmtree(stray, ignore_errors=True)
            staging = snaps / f"{STAGING_PREFIX}{os.getpid()}"
            staging.mkdir()
            try:
                return self._stream(batches, info, staging, _align, _decide)
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    def _stream(self, batches: Iterable[ValidatedBatch], info: dict[str, object],
                staging: Path, align: Any, decide: Any) -> WriteResult:
        manifest = self._manifest()
        manifest["city"] = self.profile.name
        view = self._view()
        stored_rows = upsert.read_stored(view, problems=False) if view is not None else None
        parts = list(view.parts) if view is not None else []
        quarantine = self.quarantine()
        known_q = set(quarantine["quarantine_id"])
        new_q: list[pd.DataFrame] = []
        superseded: list[pd.DataFrame] = []
        writes: dict[str, Any] = {}
        result = WriteResult()
        rows_read = 0
        active = self.active()
        for batch in batches:
            rows_read += batch.rows_read
            incoming = batch.current()
            stored = (upsert.match_stored(stored_rows, incoming["service_request_id"])
                      if stored_rows is not None and len(incoming) else None)
            decision = decide(stored if stored is not None else pd.DataFrame(), incoming)
            result.inserted += int(decision.eq("insert").sum())
            result.updated += int(decision.eq("update").sum())
            result.unchanged += int(decision.eq("keep").sum())
            fresh = batch.requests_where(decision.isin(["insert", "update"]).to_numpy()).copy()
            if len(fresh):
                fresh = self._join(fresh, active)
                fresh["problem_id"] = None
                name, manifest = new_part_name(manifest)
                write_part(staging / name, part_table(align(fresh, self.layer_keys())))
                parts.append(Part(name, len(fresh)))
                writes[name] = staging / name
                if stored is not None:
                    gone = upsert.ids_in(stored["service_request_id"], fresh["service_request_id"])
                    superseded.append(stored.loc[gone, [PART, ROW]])
            for reason, n in batch.quarantine["reason"].value_counts().items():
                result.quarantined[str(reason)] = result.quarantined.get(str(reason), 0) + int(n)
            fresh_q = batch.quarantine[~batch.quarantine["quarantine_id"].isin(known_q)]
            if len(fresh_q):
                new_q.append(fresh_q)
        if superseded:
            replaced = pd.concat(superseded)
            assert view is not None  # superseded rows are stored rows
            for i, rows in replaced.groupby(PART)[ROW]:
                index = int(i)  # type: ignore[arg-type]
                deleted = np.union1d(view.deleted(index), rows.to_numpy(dtype=np.int64))
                parts[index] = Part(parts[index].file, parts[index].rows, len(deleted))
                deletion = parts[index].deletion_file
                assert deletion is not None
                writes[deletion] = deleted
        writes["manifest.json"] = with_parts(manifest, parts)
        if new_q:
            frames = [f for f in (quarantine, *new_q) if len(f)]
            writes["quarantine.parquet"] = pd.concat(frames, ignore_index=True)
        writes["batches.parquet"] = self._logged(rows_read, result, info)
        self._commit(writes)
        return result


__all__ = ["STAGING_PREFIX", "EmbeddedStream"]
