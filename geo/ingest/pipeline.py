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

from geo.ingest.contacts import ContactBatch, validate_contacts
from geo.ingest.contacts_mapping import ContactMapping, apply_contact_mapping
from geo.ingest.mapping import ColumnMapping, apply_mapping
from geo.ingest.parts import is_part, prepare_part
from geo.ingest.readers import Format, read_requests
from geo.ingest.sink import BatchSink, ContactSink, ProblemAssigner, WriteResult
from geo.ingest.validate import ValidatedBatch, foreign, validate


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
    located, outside
        Rows with coordinates, and those of them outside the store's city.
    city
        The store's city (its profile name).
    streamed
        Whether the file was read in batches (:func:`geo.ingest.stream.ingest_stream`),
        its requests written without the problem rule.
    """

    batch_id: str
    path: Path
    format: str
    encoding: str
    rows_read: int
    result: WriteResult
    flags: dict[str, int]
    located: int = 0
    outside: int = 0
    city: str = ""
    streamed: bool = False

    @property
    def balanced(self) -> bool:
        """Whether every row read is accounted for."""
        return self.result.total == self.rows_read

    @property
    def hint(self) -> str | None:
        """A suggestion when nearly every located row lies outside the city (another
        city's file read with the wrong profile), else ``None``."""
        if not foreign(self.located, self.outside):
            return None
        return (
            f"{self.outside:,} of the {self.located:,} rows with coordinates lie outside "
            f"{self.city}: if this file is another city's, ingest it with --city NAME "
            "(a profile in layers/profiles/) or --city FILE.toml (see 'Your own city' "
            "in the README), into a store of its own"
        )


def _batch_id(path: Path, started: datetime, digest: str = "") -> str:
    """Batch id: the start time and the file's SHA-1 (``digest`` when the reader gave it,
    so the file is not read a second time)."""
    digest = (digest or hashlib.sha1(path.read_bytes()).hexdigest())[:10]
    return f"{started:%Y%m%dT%H%M%SZ}-{digest}"


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
    if is_part(path):  # a Parquet part (join --engine dask --output, export)
        return prepare_part(path, store, mapping=mapping, now=now)
    raw = read_requests(path, fmt=fmt)
    mapped = apply_mapping(raw.frame, mapping or ColumnMapping(), fmt=raw.format)
    started = now or datetime.now(UTC)
    batch_id = _batch_id(path, started, raw.digest)
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
    In a script, with a file and a store of yours::

        from geo.store.base import open_store
        report = ingest("requests.csv", open_store(".hotspot311", profile))
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
        located=batch.located,
        outside=batch.outside,
        city=store.profile.name,
    )


def prepare_contacts(path: str | Path, store: ContactSink, *,
                     mapping: ContactMapping | None = None,
                     now: datetime | None = None) -> tuple[ContactBatch, dict[str, object]]:
    """Read, map and validate a contact log (CSV) without writing anything.

    Parameters
    ----------
    path
        Contact CSV file.
    store
        Target store (its profile gives the time zone).
    mapping
        Column mapping, constants and the city's codes.
    now
        Reference time for future-time checks.

    Returns
    -------
    tuple
        The validated contacts and the batch record fields.
    """
    path = Path(path)
    mapping = mapping or ContactMapping()
    raw = read_requests(path, fmt=Format.CSV)
    mapped = apply_contact_mapping(raw.frame, mapping)
    started = now or datetime.now(UTC)
    batch_id = _batch_id(path, started, raw.digest)
    batch = validate_contacts(mapped, profile=store.profile, mapping=mapping,
                              batch_id=batch_id, source_file=path.name, now=started)
    info: dict[str, object] = {"batch_id": batch_id, "source_file": str(path),
                               "format": "contacts-csv", "encoding": raw.encoding}
    return batch, info


def ingest_contacts(path: str | Path, store: ContactSink, *,
                    mapping: ContactMapping | None = None,
                    now: datetime | None = None) -> IngestReport:
    """Ingest one contact log (CSV) into ``store``.

    The same rules as requests: every row stored or quarantined with a reason,
    re-running the same file changes nothing, a failure part-way writes nothing.

    Parameters
    ----------
    path
        Contact CSV file.
    store
        Target store.
    mapping
        Column mapping, constants and value maps (``--value-map``, ``[values]``).
    now
        Reference time for future-time checks.

    Returns
    -------
    IngestReport
        Counts that add up to the rows read.

    Raises
    ------
    geo.errors.InputError
        When the file or the mapping cannot be used (nothing is written).
    """
    batch, info = prepare_contacts(path, store, mapping=mapping, now=now)
    result = store.write_contacts(batch, info=info)
    return IngestReport(batch_id=str(info["batch_id"]), path=Path(path),
                        format=str(info["format"]), encoding=str(info["encoding"]),
                        rows_read=batch.rows_read, result=result, flags={})
