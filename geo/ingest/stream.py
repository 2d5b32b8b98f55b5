"""Ingest a big CSV file in batches, with memory bounded by the batch, not the file.

:func:`ingest_stream` gives what :func:`geo.ingest.pipeline.ingest` gives — the same
stored requests, the same quarantine rows, reasons and ids, the same counts — reading
the file twice with Arrow's streaming CSV reader (``pyarrow.csv.open_csv``), never whole:

1. every batch is mapped and validated, and of each request kept, its id,
   ``updated_datetime`` and row are noted: the file-wide duplicate rule (newest
   ``updated_datetime`` wins, then the later row) needs them across batches;
2. every batch is mapped and validated again with the file's winners
   (:func:`geo.ingest.validate.validate`'s ``winners``), and handed to the store's
   :meth:`write_stream`, which writes each batch as a request part into the pending
   snapshot and commits once at the end: a failure half-way leaves the store as it was.

Peak memory is about one batch's frames plus, for the whole file, three small columns
(id, time, row) and the store's key columns. A file the streaming reader cannot take
(not UTF-8, not CSV, ragged rows) is read whole by :func:`~geo.ingest.pipeline.ingest`.
The stream does not run the problem rule: the written requests get no ``problem_id``
until the next write that has the rule (as :func:`~geo.ingest.pipeline.ingest` without
``problems``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from geo.ingest.mapping import ColumnMapping, apply_mapping
from geo.ingest.model import text_frame
from geo.ingest.pipeline import IngestReport, ingest
from geo.ingest.readers import GEOMETRY_ERROR_COLUMN, ROW_COLUMN, Format, _detect, unique_names
from geo.ingest.sink import ProblemAssigner, WriteResult
from geo.ingest.validate import ValidatedBatch, validate
from layers.profile import CityProfile

__all__ = ["StreamSink", "ingest_stream", "read_batches"]



class StreamSink(Protocol):
    """A store that writes many validated batches as one atomic write."""

    @property
    def profile(self) -> CityProfile:
        """The city of the store."""
        ...

    def ensure_profile_layers(self) -> Any:
        """Load every profile layer the store does not hold yet."""
        ...

    def write_stream(self, batches: Iterable[ValidatedBatch], *,
                     info: dict[str, object]) -> WriteResult:
        """Upsert every batch, committing once."""
        ...


class _NotStreamable(Exception):
    """The file needs the whole-file reader."""


def read_batches(path: Path, *, batch_rows: int) -> Iterator[pd.DataFrame]:
    """The records of a UTF-8 CSV file as text frames of about ``batch_rows`` rows, with
    :data:`~geo.ingest.readers.ROW_COLUMN` numbered across the file (what
    :func:`geo.ingest.readers.read_requests` gives, in pieces).

    Raises
    ------
    _NotStreamable
        When Arrow's streaming reader cannot read the file as text.
    """
    with open(path, "rb") as handle:
        head = handle.read(1 << 20)
    if not head.strip() or b"\x00" in head[:65536]:
        raise _NotStreamable
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        cut = head.rfind(b"\n") + 1
        try:
            text = head[:cut].decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise _NotStreamable from err
    if _detect(text, path) not in (Format.CSV, Format.PHILA) or text.lstrip()[:1] in "[{":
        raise _NotStreamable
    # the header, as the whole-file reader parses it
    cut = head.rfind(b"\n") + 1 or len(head)
    try:
        with pa_csv.open_csv(pa.py_buffer(head[:cut]),
                             read_options=pa_csv.ReadOptions(block_size=1 << 21)) as first:
            names = first.schema.names
    except (pa.ArrowException, ValueError) as err:
        raise _NotStreamable from err
    renamed = unique_names([str(c).strip() for c in names])
    if ROW_COLUMN in renamed or GEOMETRY_ERROR_COLUMN in renamed:
        raise _NotStreamable  # the whole-file reader explains the error
    block = max(1 << 20, min(64 << 20, batch_rows * 256))
    options = pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                    strings_can_be_null=True, null_values=[""],
                                    quoted_strings_can_be_null=True)
    start = 1
    pending: pa.Table | None = None
    try:
        with pa_csv.open_csv(str(path), read_options=pa_csv.ReadOptions(block_size=block),
                             convert_options=options) as reader:
            for record in reader:
                if not all(pa.types.is_string(t) for t in record.schema.types):
                    raise _NotStreamable
                table = pa.Table.from_batches([record])
                pending = table if pending is None else pa.concat_tables([pending, table])
                while pending.num_rows >= batch_rows:
                    frame = _frame(pending.slice(0, batch_rows), renamed, start)
                    start += len(frame)
                    pending = pending.slice(batch_rows)
                    yield frame
    except (pa.ArrowException, ValueError) as err:
        raise _NotStreamable from err
    if pending is not None and pending.num_rows:
        yield _frame(pending, renamed, start)


def _frame(table: pa.Table, names: list[str], start: int) -> pd.DataFrame:
    frame = text_frame(table)
    frame.columns = list(names)  # named (and typed) as the whole-file reader's columns
    frame.insert(0, ROW_COLUMN, range(start, start + len(frame)))
    return frame


def _file_digest(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()[:10]


def _winners(candidates: list[pa.Table]) -> dict[str, int]:
    """Id → the row the file keeps, for ids kept in more than one batch."""
    if not candidates:
        return {}
    table = pa.concat_tables(candidates)
    counts = pc.value_counts(table.column("id"))
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(repeated) == 0:
        return {}
    table = table.filter(pc.is_in(table.column("id"), value_set=repeated))
    frame = table.to_pandas()
    frame["upd_key"] = frame["upd"].fillna(pd.Timestamp.min.tz_localize("UTC"))
    frame = frame.sort_values(["id", "upd_key", "row"])
    last = frame.groupby("id", sort=False).tail(1)
    return dict(zip(last["id"].astype(object), last["row"].astype("int64"), strict=True))


def ingest_stream(path: str | Path, store: StreamSink, *, batch_rows: int = 250_000,
                  mapping: ColumnMapping | None = None,
                  now: datetime | None = None,
                  problems: ProblemAssigner | None = None) -> IngestReport:
    """Ingest one CSV file in batches of ``batch_rows`` (see the module docstring).

    Parameters
    ----------
    path
        Request CSV file.
    store
        Target store (one with ``write_stream``).
    batch_rows
        Rows read, validated and written at a time.
    mapping
        Extra column mapping and constants.
    now
        Reference time for future-time checks.
    problems
        The problem rule, for a file read whole (one the streaming reader cannot take);
        the batches are written without it.

    Returns
    -------
    IngestReport
        Equal to :func:`geo.ingest.pipeline.ingest`'s for the same file; ``streamed``
        says whether it was read in batches.
    """
    path = Path(path)
    started = now or datetime.now(UTC)
    mapping = mapping or ColumnMapping()
    try:
        fmt = _format(path)
        batch_id = f"{started:%Y%m%dT%H%M%SZ}-{_file_digest(path)}"
        candidates = [_candidates(batch) for batch in _validated(
            path, store.profile, mapping, fmt, batch_id, started, batch_rows, {})]
    except _NotStreamable:
        return ingest(path, store, mapping=mapping, now=now,  # type: ignore[arg-type]
                      problems=problems)
    winners = _winners(candidates)
    del candidates
    info: dict[str, object] = {"batch_id": batch_id, "source_file": str(path),
                               "format": fmt.value, "encoding": "utf-8"}
    totals = {"rows_read": 0, "located": 0, "outside": 0}
    flags: dict[str, int] = {}

    def batches() -> Iterator[ValidatedBatch]:
        for batch in _validated(path, store.profile, mapping, fmt, batch_id, started,
                                batch_rows, winners):
            totals["rows_read"] += batch.rows_read
            totals["located"] += batch.located
            totals["outside"] += batch.outside
            for k, v in batch.flags.items():
                flags[k] = flags.get(k, 0) + v
            yield batch

    store.ensure_profile_layers()
    result = store.write_stream(batches(), info=info)
    return IngestReport(batch_id=batch_id, path=path, format=fmt.value, encoding="utf-8",
                        rows_read=totals["rows_read"], result=result,
                        flags=dict(sorted(flags.items(), key=lambda kv: (-kv[1], kv[0]))),
                        located=totals["located"], outside=totals["outside"],
                        city=store.profile.name, streamed=True)


def _format(path: Path) -> Format:
    with open(path, "rb") as handle:
        head = handle.read(1 << 20)
    cut = head.rfind(b"\n") + 1 or len(head)
    try:
        text = head[:cut].decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _NotStreamable from err
    return _detect(text, path)


def _validated(path: Path, profile: CityProfile, mapping: ColumnMapping, fmt: Format,
               batch_id: str, now: datetime, batch_rows: int,
               winners: Mapping[str, int]) -> Iterator[ValidatedBatch]:
    for raw in read_batches(path, batch_rows=batch_rows):
        mapped = apply_mapping(raw, mapping, fmt=fmt)
        yield validate(mapped, profile=profile, batch_id=batch_id, source_file=path.name,
                       now=now, winners=winners)


def _candidates(batch: ValidatedBatch) -> pa.Table:
    """Id, ``updated_datetime`` and source row of the batch's kept requests."""
    requests = batch.rows  # no points: the first pass throws its batches away
    return pa.table({
        "id": pa.array(requests["service_request_id"].astype(object).to_numpy(),
                       type=pa.string()),
        "upd": pa.array(requests["updated_datetime"]),
        "row": pa.array(batch.source_rows, type=pa.int64())})
