"""Ingest: read a request file, map its columns, validate, and write it to a store.

``ingest`` is the one call behind ``hotspot311 ingest``; every step is a plain
function of its own module (:mod:`geo.ingest.readers`, :mod:`geo.ingest.mapping`,
:mod:`geo.ingest.validate`), so a caller can stop after any of them. The store is any
:class:`geo.ingest.sink.BatchSink` (both stores are).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from geo.ingest.mapping import ColumnMapping, apply_mapping
from geo.ingest.readers import Format, read_requests
from geo.ingest.sink import BatchSink, ProblemAssigner, WriteResult
from geo.ingest.validate import ValidatedBatch, validate


@dataclass
class IngestReport:
    """The outcome of one ingest.

    Attributes
    ----------
    batch_id
        Identifier of the batch (time and file fingerprint).
    path
        The file read.
    format, encoding
        Detected or given format; text encoding used.
    rows_read
        Records in the file.
    result
        What the store did (inserted, updated, unchanged, quarantined by reason).
    flags
        Repairs and doubts flagged on stored rows, by flag.
    """

    batch_id: str
    path: Path
    format: str
    encoding: str
    rows_read: int
    result: WriteResult
    flags: dict[str, int]

    @property
    def balanced(self) -> bool:
        """Whether every row read is accounted for."""
        return self.result.total == self.rows_read


def prepare(
    path: str | Path,
    store: BatchSink,
    *,
    fmt: Format | str = Format.AUTO,
    mapping: ColumnMapping | None = None,
    now: datetime | None = None,
) -> tuple[ValidatedBatch, dict[str, object]]:
    """Read, map and validate a file without writing anything.

    Parameters
    ----------
    path
        Request file.
    store
        Target store (its profile gives time zone, CRS and extent).
    fmt
        Source format or ``auto``.
    mapping
        Extra column mapping and constants.
    now
        Reference time for future-time checks.

    Returns
    -------
    tuple
        The validated batch and the batch record fields.
    """
    path = Path(path)
    raw = read_requests(path, fmt=fmt)
    mapped = apply_mapping(raw.frame, mapping or ColumnMapping(), fmt=raw.format)
    started = now or datetime.now(UTC)
    digest = hashlib.sha1(path.read_bytes()).hexdigest()[:10]
    batch_id = f"{started:%Y%m%dT%H%M%SZ}-{digest}"
    batch = validate(
        mapped, profile=store.profile, batch_id=batch_id, source_file=path.name, now=started
    )
    info: dict[str, object] = {
        "batch_id": batch_id,
        "source_file": str(path),
        "format": raw.format.value,
        "encoding": raw.encoding,
    }
    return batch, info


def ingest(
    path: str | Path,
    store: BatchSink,
    *,
    fmt: Format | str = Format.AUTO,
    mapping: ColumnMapping | None = None,
    now: datetime | None = None,
    problems: ProblemAssigner | None = None,
) -> IngestReport:
    """Ingest one request file into ``store``.

    The store's boundary layers are loaded from the profile first if missing, so every
    stored request is joined. Re-running the same file changes nothing; a failure
    part-way leaves the store as it was.

    Parameters
    ----------
    path
        Request file (CSV, JSON, GeoJSON).
    store
        Target store.
    fmt
        Source format or ``auto``.
    mapping
        Extra column mapping and constants.
    now
        Reference time for future-time checks.
    problems
        Keeps ``problem_id`` up to date in the same write
        (:class:`clustering.problems.ProblemAssigner`); without one, the written
        requests are left without a problem until the next write that has one.

    Returns
    -------
    IngestReport
        Counts that add up to the rows read.

    Raises
    ------
    geo.errors.InputError
        When the file or the mapping cannot be used (nothing is written).

    Examples
    --------
    >>> from geo.store.base import open_store                      # doctest: +SKIP
    >>> report = ingest("requests.csv", open_store(".hotspot311", profile))  # doctest: +SKIP
    """
    batch, info = prepare(path, store, fmt=fmt, mapping=mapping, now=now)
    store.ensure_profile_layers()
    result = store.write_batch(batch, info=info, problems=problems)
    return IngestReport(
        batch_id=str(info["batch_id"]),
        path=Path(path),
        format=str(info["format"]),
        encoding=str(info["encoding"]),
        rows_read=batch.rows_read,
        result=result,
        flags=batch.flags,
    )
