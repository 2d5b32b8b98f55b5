"""Ingest many request files on a Dask cluster: read, map and validate in parallel.

Each file is read, mapped and validated (:func:`geo.ingest.pipeline.prepare`, the costly
part: parsing, times, coordinates, projection) as one Dask task. The validated batches
are then written by the store one file at a time, in the order given, each through the
store's own atomic, idempotent upsert with its quarantine — exactly what
:func:`geo.ingest.pipeline.ingest` does file after file, so the stored result and the
counts are the same, and ingesting the same files again changes nothing.

The files must be readable by the workers at the same paths (a shared file system on a
remote cluster). The load itself is not split: the embedded store writes one snapshot per
file. (Into PostGIS, :mod:`geo.store.postgis_parallel` splits the load too: the workers
COPY the files into staging tables and one transaction applies them.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geo.ingest.mapping import ColumnMapping
from geo.ingest.pipeline import IngestReport, prepare
from geo.ingest.readers import Format
from geo.ingest.sink import BatchSink, ProblemAssigner, WriteResult
from geo.ingest.validate import ValidatedBatch
from layers.profile import CityProfile

if TYPE_CHECKING:
    from collections.abc import Iterator

    from distributed import Client

__all__ = ["ProfileOnly", "ingest_partitioned"]


@dataclass(frozen=True)
class ProfileOnly:
    """What :func:`prepare` needs of a store, small enough to ship to the workers."""

    profile: CityProfile

    def ensure_profile_layers(self) -> Any:  # pragma: no cover - never called by prepare
        raise NotImplementedError

    def write_batch(self, batch: ValidatedBatch, *, info: dict[str, object],
                    release: Sequence[str] = (), problems: ProblemAssigner | None = None
                    ) -> WriteResult:  # pragma: no cover - never called
        raise NotImplementedError


def ingest_partitioned(
    paths: Sequence[str | Path],
    store: BatchSink,
    *,
    client: Client,
    fmt: Format | str = Format.AUTO,
    mapping: ColumnMapping | None = None,
    now: datetime | None = None,
    problems: ProblemAssigner | None = None,
) -> Iterator[IngestReport]:
    """Ingest files: prepared in parallel on ``client``, written in order by ``store``.

    Parameters
    ----------
    paths
        Request files (CSV, JSON, GeoJSON), readable by the workers at these paths.
    store
        Target store.
    client
        A ``distributed.Client``.
    fmt, mapping, now, problems
        As for :func:`geo.ingest.pipeline.ingest` (``now`` is shared by every file; the
        problem rule runs in each file's write, on the client).

    Yields
    ------
    IngestReport
        One per file, in the order given, after that file's batch is written.

    Raises
    ------
    InputError
        When a file or the mapping cannot be used; the files before it are stored, it
        and the files after it are not.
    """
    started = now or datetime.now(UTC)
    shipped = ProfileOnly(store.profile)
    futures = [
        client.submit(prepare, Path(p), shipped, fmt=fmt, mapping=mapping, now=started,
                      pure=False)
        for p in paths
    ]
    store.ensure_profile_layers()
    try:
        for path, future in zip(paths, futures, strict=True):
            batch, info = future.result()
            result = store.write_batch(batch, info=info, problems=problems)
            yield IngestReport(
                batch_id=str(info["batch_id"]), path=Path(path), format=str(info["format"]),
                encoding=str(info["encoding"]), rows_read=batch.rows_read, result=result,
                flags=batch.flags, located=batch.located, outside=batch.outside,
                city=store.profile.name,
            )
    finally:
        client.cancel(futures)
