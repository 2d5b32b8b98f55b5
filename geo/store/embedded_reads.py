"""The embedded store's answers to :mod:`geo.store.reads`: only the columns each read needs.

Each read opens the current snapshot's request parts
(:class:`geo.store.embedded_parts.RequestParts`), reads the columns the filter and the
answer need (never the geometry), applies the filter as an Arrow expression while reading
(row groups whose statistics rule them out are skipped; superseded rows are dropped), and
counts or returns what is left. The export log is ``STORE/audit/exports.jsonl``, one
JSON object a line, appended under the store's lock and flushed to disk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from geo.store.embedded_parts import RequestParts
from geo.store.reads import (
    FACET_COLUMNS,
    BatchLogHead,
    RequestFilter,
    RequestSummary,
    TableCounts,
    cell_counts,
    facet_cells_frame,
    grid_index,
    log_head,
    lon_ranges,
    reason_counts,
)

_T = TypeVar("_T")
AUDIT_FILE = Path("audit") / "exports.jsonl"
AUDIT_COLUMNS = ("exported_at", "user_name", "role", "department", "what", "filters", "rows")


class EmbeddedReads:
    """Pushed-down reads for :class:`geo.store.embedded.EmbeddedStore` (a mixin).

    Needs ``root``, ``layer_keys()``, ``_lock()``, ``_current_file(name)`` and
    ``_read_requests(reader)`` of the store.
    """

    root: Path
    if TYPE_CHECKING:  # the store's own
        def layer_keys(self) -> tuple[str, ...]: ...
        def _current_file(self, name: str) -> Path | None: ...
        def _lock(self) -> AbstractContextManager[None]: ...
        def _read(self, path: Path, reader: Callable[[Path], _T]) -> _T: ...
        def _read_requests(self, reader: Callable[[RequestParts], _T]) -> _T | None: ...

    def _filtered(self, filt: RequestFilter, columns: Sequence[str]) -> pd.DataFrame:
        """Columns ``columns`` (those stored) of the rows passing ``filt``."""
        filt.check(self.layer_keys())
        frame = self._read_requests(lambda view: _read_table(view, filt, columns).to_pandas())
        if frame is None:
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
        return frame

    def _table(self, filt: RequestFilter, columns: Sequence[str]) -> pa.Table | None:
        """Columns ``columns`` (those stored) of the rows passing ``filt``, as Arrow (no
        Python object per row); ``None`` when the store holds no requests."""
        filt.check(self.layer_keys())
        return self._read_requests(lambda view: _read_table(view, filt, columns))

    def request_summary(self, filt: RequestFilter, *, now: datetime | None = None
                        ) -> RequestSummary:
        """Headline numbers (see :meth:`geo.store.base.Store.request_summary`)."""
        table = self._table(filt, ["status", "expected_datetime", "synthetic",
                                   "requested_datetime"])
        if table is None or table.num_rows == 0:
            return RequestSummary()
        is_open, overdue = _flags(table, now)
        when = pc.min_max(table.column("requested_datetime"))
        first, last = when["min"].as_py(), when["max"].as_py()
        synthetic = pc.sum(table.column("synthetic")).as_py() \
            if "synthetic" in table.column_names else 0
        return RequestSummary(
            count=table.num_rows, open=int(pc.sum(is_open).as_py() or 0),
            overdue=int(pc.sum(overdue).as_py() or 0), synthetic=int(synthetic or 0),
            first=None if first is None else pd.Timestamp(first).tz_convert("UTC"),
            last=None if last is None else pd.Timestamp(last).tz_convert("UTC"))

    def group_counts(self, filt: RequestFilter, column: str, *, now: datetime | None = None
                     ) -> pd.DataFrame:
        """Requests, open and overdue per value (see :meth:`geo.store.base.Store.group_counts`)."""
        table = self._table(filt, [column, "status", "expected_datetime"])
        empty = pd.DataFrame({"requests": [], "open": [], "overdue": []})
        if table is None or table.num_rows == 0:
            return order_counts(empty)
        if column not in table.column_names:
            table = table.append_column(column, pa.nulls(table.num_rows, pa.string()))
        is_open, overdue = _flags(table, now)
        parts = pa.table({"value": table.column(column),
                          "open": pc.cast(is_open, pa.int64()),
                          "overdue": pc.cast(overdue, pa.int64())})
        grouped = parts.group_by("value").aggregate(
            [("open", "count"), ("open", "sum"), ("overdue", "sum")]).to_pandas()
        out = pd.DataFrame({"requests": grouped["open_count"].to_numpy(),
                            "open": grouped["open_sum"].to_numpy(),
                            "overdue": grouped["overdue_sum"].to_numpy()},
                           index=pd.Index(grouped["value"].astype(object), dtype=object))
        return order_counts(out)

    def grid_cells(self, filt: RequestFilter, *, grid_deg: float) -> pd.DataFrame:
        """Requests per grid cell (see :meth:`geo.store.base.Store.grid_cells`)."""
        table = self._table(filt, ["lat", "lon"])
        if table is None:
            return pd.DataFrame({"row": [], "col": [], "n": []}, dtype="int64")
        lat = table.column("lat").to_numpy(zero_copy_only=False).astype(float)
        lon = table.column("lon").to_numpy(zero_copy_only=False).astype(float)
        ok = np.isfinite(lat) & np.isfinite(lon)
        return cell_counts(grid_index(lat[ok], grid_deg), grid_index(lon[ok], grid_deg))

    def facet_cells(self, *, grid_deg: float, limit: int | None = None
                    ) -> pd.DataFrame | None:
        """Requests per grid cell and facet, one read of five columns (see
        :meth:`geo.store.base.Store.facet_cells`)."""
        keys = ["service_name", "agency_responsible", "status"]
        table = self._table(RequestFilter(), [*keys, "lat", "lon"])
        if table is None or table.num_rows == 0:
            return facet_cells_frame(None)
        lat = table.column("lat").to_numpy(zero_copy_only=False).astype(float)
        lon = table.column("lon").to_numpy(zero_copy_only=False).astype(float)
        ok = np.isfinite(lat) & np.isfinite(lon)
        where = pa.array(np.flatnonzero(ok))
        parts = pa.table({
            **{c: pc.cast(table.column(c), pa.string()).take(where) if c in
               table.column_names else pa.nulls(len(where), pa.string()) for c in keys},
            "row": grid_index(lat[ok], grid_deg), "col": grid_index(lon[ok], grid_deg)})
        grouped = parts.group_by([*keys, "row", "col"], use_threads=False).aggregate(
            [([], "count_all")])
        grouped = grouped.select([*keys, "row", "col", "count_all"]).rename_columns(
            [*keys, "row", "col", "n"])
        if limit is not None and grouped.num_rows > limit:
            return None
        return facet_cells_frame(grouped)

    def select_requests(self, filt: RequestFilter, columns: Sequence[str] | None = None, *,
                        limit: int | None = None) -> pd.DataFrame:
        """Some columns of the matching rows (see :meth:`geo.store.base.Store.select_requests`)."""
        if columns is None:
            names = self._read_requests(lambda view: view.schema.names)
            columns = [c for c in names or [] if c != "geometry"]
        frame = self._filtered(filt, list(columns))
        if limit is not None:
            frame = frame.head(limit)
        return frame.reset_index(drop=True)

    def facet_counts(self, *, now: datetime | None = None) -> pd.DataFrame:
        """Counts by type, department and status, one read of five columns (see
        :meth:`geo.store.base.Store.facet_counts`)."""
        keys = ["service_name", "agency_responsible", "status"]
        table = self._table(RequestFilter(), [*keys, "expected_datetime", "synthetic",
                                              "requested_datetime"])
        if table is None or table.num_rows == 0:
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in FACET_COLUMNS})
        for c in keys:
            if c not in table.column_names:
                table = table.append_column(c, pa.nulls(table.num_rows, pa.string()))
        _open, overdue = _flags(table, now)
        synthetic = table.column("synthetic") if "synthetic" in table.column_names else \
            pa.array([False] * table.num_rows)
        parts = pa.table({**{c: pc.cast(table.column(c), pa.string()) for c in keys},
                          "overdue": pc.cast(overdue, pa.int64()),
                          "synthetic": pc.cast(pc.fill_null(synthetic, False), pa.int64()),
                          "when": table.column("requested_datetime")})
        grouped = parts.group_by(keys, use_threads=False).aggregate(
            [("overdue", "count"), ("overdue", "sum"), ("synthetic", "sum"),
             ("when", "min"), ("when", "max")]).to_pandas()
        out = pd.DataFrame({c: grouped[c].astype(object).where(grouped[c].notna(), None)
                            for c in keys})
        out["requests"] = grouped["overdue_count"].astype("int64")
        out["overdue"] = grouped["overdue_sum"].fillna(0).astype("int64")
        out["synthetic"] = grouped["synthetic_sum"].fillna(0).astype("int64")
        out["first"] = pd.to_datetime(grouped["when_min"], utc=True)
        out["last"] = pd.to_datetime(grouped["when_max"], utc=True)
        return out

    def problem_count(self, filt: RequestFilter) -> int:
        """Distinct problems (see :meth:`geo.store.base.Store.problem_count`)."""
        table = self._table(filt, ["service_request_id", "problem_id"])
        if table is None or table.num_rows == 0:
            return 0
        ids = table.column("service_request_id")
        if "problem_id" in table.column_names:
            problems = table.column("problem_id")
            problem = pc.if_else(pc.is_valid(problems), pc.binary_join_element_wise(
                "problem:", pc.cast(problems, pa.string()), ""), pc.binary_join_element_wise(
                "request:", pc.cast(ids, pa.string()), ""))
        else:
            problem = ids
        return int(pc.count_distinct(problem).as_py())

    def request_centre(self) -> tuple[float, float] | None:
        """Median (lat, lon) of the stored requests, ``None`` when there are none."""
        table = self._table(RequestFilter(), ["lat", "lon"])
        if table is None:
            return None
        lat = table.column("lat").to_numpy(zero_copy_only=False).astype(float)
        lon = table.column("lon").to_numpy(zero_copy_only=False).astype(float)
        if not np.isfinite(lat).any():
            return None
        return float(np.nanmedian(lat)), float(np.nanmedian(lon))

    def contact_counts(self, request_id: str) -> tuple[int, int]:
        """Contacts, and phone calls among them, that named ``request_id``."""
        path = self._current_file("contacts.parquet")
        if path is None:
            return 0, 0
        table = ds.dataset(str(path), format="parquet").to_table(
            columns=["channel"], filter=pc.field("service_request_id") == str(request_id))
        channels = table.column("channel").to_pylist()
        return len(channels), sum(1 for c in channels if c == "phone")

    def batch_log_head(self) -> BatchLogHead:
        """Rows, newest ``batch_id`` and newest ``ingested_at`` of the ingest log, from
        those two columns of its file."""
        path = self._current_file("batches.parquet")
        if path is None:
            return BatchLogHead()
        log = self._read(path, lambda p: pd.read_parquet(p, columns=["batch_id", "ingested_at"]))
        return log_head(log["batch_id"], log["ingested_at"])

    def table_counts(self) -> TableCounts:
        """Quarantine, contact and batch counts from the columns they need (the reasons;
        the contacts' ``synthetic`` and ``received_datetime``) and the batch log's row
        count, not from the whole files."""
        def columns(name: str, wanted: list[str]) -> pa.Table | None:
            path = self._current_file(name)
            if path is None:
                return None
            return self._read(path, lambda p: pq.read_table(p, columns=wanted))

        def reasons(table: pa.Table | None) -> dict[str, int]:
            if table is None or table.num_rows == 0:
                return {}
            counted = pc.value_counts(table.column("reason")).to_pylist()
            return reason_counts([(c["values"], c["counts"]) for c in counted])

        contacts = columns("contacts.parquet", ["synthetic", "received_datetime"])
        out = TableCounts(
            quarantine=reasons(columns("quarantine.parquet", ["reason"])),
            contact_quarantine=reasons(columns("contact_quarantine.parquet", ["reason"])))
        batches = self._current_file("batches.parquet")
        if batches is not None:
            out = replace(out, batches=self._read(
                batches, lambda p: pq.ParquetFile(p).metadata.num_rows))
        if contacts is not None and contacts.num_rows:
            received = pd.to_datetime(contacts.column("received_datetime").to_pandas(), utc=True)
            out = replace(out, contacts=contacts.num_rows,
                          contacts_synthetic=int(pc.sum(contacts.column("synthetic")).as_py()
                                                 or 0),
                          contacts_first=received.min(), contacts_last=received.max())
        return out

    # --- the export log ---------------------------------------------------------------
    def record_export(self, *, user: str, role: str, department: str | None, what: str,
                      filters: dict[str, Any], rows: int) -> None:
        """Append one export to ``STORE/audit/exports.jsonl`` (see
        :meth:`geo.store.base.Store.record_export`)."""
        entry = {"exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
                 "user_name": user, "role": role, "department": department, "what": what,
                 "filters": filters, "rows": int(rows)}
        path = self.root / AUDIT_FILE
        with self._lock():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry, default=str, sort_keys=True) + "\n")
                out.flush()
                os.fsync(out.fileno())

    def exports(self) -> pd.DataFrame:
        """Every recorded export, oldest first (see :meth:`geo.store.base.Store.exports`)."""
        path = self.root / AUDIT_FILE
        rows = list(_lines(path)) if path.exists() else []
        frame = pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))
        frame["rows"] = frame["rows"].astype("int64")
        return frame


def _read_table(view: RequestParts, filt: RequestFilter, columns: Sequence[str]) -> pa.Table:
    """Columns ``columns`` (those stored) of the live requests passing ``filt``."""
    schema = view.schema
    names = set(schema.names)
    wanted = [c for c in dict.fromkeys(columns) if c in names and c != "geometry"]
    expr = _expression(filt, names)
    if expr is False:
        return pa.schema([schema.field(c) for c in wanted]).empty_table()
    if expr is None:
        return view.table(wanted)
    return view.table(wanted, filter=expr)


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def order_counts(out: pd.DataFrame) -> pd.DataFrame:
    """Counts indexed by value, most requests first, then by value (missing last)."""
    out = out.astype("int64")
    index = [None if (v is None or (isinstance(v, float) and np.isnan(v))) else v
             for v in out.index]
    out.index = pd.Index(index, dtype=object, name="value")
    order = sorted(range(len(out)), key=lambda i: (-int(out["requests"].iloc[i]),
                                                   index[i] is None, str(index[i])))
    return out.iloc[order]


def _flags(table: pa.Table, now: datetime | None) -> tuple[pa.Array, pa.Array]:
    """Open, and open past ``expected_datetime`` at ``now``, per row (nulls as false)."""
    is_open = pc.fill_null(pc.equal(table.column("status"), "open"), False)
    if now is None or "expected_datetime" not in table.column_names:
        return is_open, pc.and_(is_open, pa.scalar(False))
    due = table.column("expected_datetime")
    limit = pa.scalar(pd.Timestamp(now).tz_convert("UTC"), type=pa.timestamp("ns", tz="UTC"))
    late = pc.fill_null(pc.less(due, pc.cast(limit, due.type)), False)
    return is_open, pc.and_(is_open, late)


def _expression(filt: RequestFilter, names: set[str]) -> ds.Expression | bool | None:
    """The Arrow filter for ``filt``; ``False`` when it can match nothing (a filtered
    column the file does not have); ``None`` when it keeps every row."""
    parts: list[ds.Expression] = []

    def isin(column: str, values: Sequence[str]) -> bool:
        if column not in names:
            return False
        parts.append(pc.field(column).isin(pa.array(list(values), type=pa.string())))
        return True

    if filt.services and not isin("service_name", filt.services):
        return False
    if filt.agencies and not isin("agency_responsible", filt.agencies):
        return False
    if filt.ids and not isin("service_request_id", filt.ids):
        return False
    if filt.problems and not isin("problem_id", filt.problems):
        return False
    for key, codes in filt.area_map().items():
        if not isin(key, codes):
            return False
    if filt.status != "all":
        parts.append(pc.field("status") == filt.status)
    when = pc.field("requested_datetime")
    for bound, compare in ((filt.start, "ge"), (filt.end, "lt"), (filt.after, "gt"),
                           (filt.until, "le")):
        if bound is not None:
            value = pa.scalar(pd.Timestamp(bound).tz_convert("UTC"),
                              type=pa.timestamp("ns", tz="UTC"))
            parts.append({"ge": when >= value, "lt": when < value, "gt": when > value,
                          "le": when <= value}[compare])
    if filt.located:
        parts.append(pc.field("x").is_valid() & pc.field("y").is_valid()
                     & pc.is_finite(pc.field("x")) & pc.is_finite(pc.field("y")))
    if filt.box is not None:
        south, _west, north, _east = filt.box
        lat, lon = pc.field("lat"), pc.field("lon")
        ranges = [(lon >= lo) & (lon <= hi) for lo, hi in lon_ranges(filt.box)]
        either = ranges[0] if len(ranges) == 1 else ranges[0] | ranges[1]
        parts.append((lat >= float(south)) & (lat <= float(north)) & either)
    if not parts:
        return None
    out = parts[0]
    for part in parts[1:]:
        out = out & part
    return out
