"""The embedded store's answers to :mod:`geo.store.reads`: only the columns each read needs.

Each read opens the current snapshot's ``requests.parquet``, reads the columns the
filter and the answer need (never the geometry), applies the filter as an Arrow
expression while reading (row groups whose statistics rule them out are skipped), and
counts or returns what is left. The export log is ``STORE/audit/exports.jsonl``, one
JSON object a line, appended under the store's lock and flushed to disk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from geo.store.reads import RequestFilter, RequestSummary, grid_index, lon_ranges

AUDIT_FILE = Path("audit") / "exports.jsonl"
AUDIT_COLUMNS = ("exported_at", "user_name", "role", "department", "what", "filters", "rows")


class EmbeddedReads:
    """Pushed-down reads for :class:`geo.store.embedded.EmbeddedStore` (a mixin).

    Needs ``root``, ``layer_keys()``, ``_lock()`` and ``_current_file(name)`` of the store.
    """

    root: Path
    if TYPE_CHECKING:  # the store's own
        def layer_keys(self) -> tuple[str, ...]: ...
        def _current_file(self, name: str) -> Path | None: ...
        def _lock(self) -> AbstractContextManager[None]: ...

    def _filtered(self, filt: RequestFilter, columns: Sequence[str]) -> pd.DataFrame:
        """Columns ``columns`` (those stored) of the rows passing ``filt``."""
        filt.check(self.layer_keys())
        path = self._current_file("requests.parquet")
        if path is None:
            return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
        dataset = ds.dataset(str(path), format="parquet")
        names = set(dataset.schema.names)
        expr = _expression(filt, names)
        if expr is False:
            wanted = [c for c in columns if c in names and c != "geometry"]
            return dataset.to_table(columns=wanted).slice(0, 0).to_pandas()
        wanted = [c for c in dict.fromkeys(columns) if c in names and c != "geometry"]
        table = dataset.to_table(columns=wanted, filter=expr)
        return table.to_pandas()

    def request_summary(self, filt: RequestFilter, *, now: datetime | None = None
                        ) -> RequestSummary:
        """Headline numbers (see :meth:`geo.store.base.Store.request_summary`)."""
        frame = self._filtered(filt, ["status", "expected_datetime", "synthetic",
                                      "requested_datetime"])
        if frame.empty:
            return RequestSummary()
        is_open = frame["status"].eq("open").to_numpy(dtype=bool)
        when = frame["requested_datetime"].dropna()
        return RequestSummary(
            count=len(frame), open=int(is_open.sum()),
            overdue=int(_overdue(frame, now).sum()),
            synthetic=int(frame["synthetic"].fillna(False).astype(bool).sum())
            if "synthetic" in frame else 0,
            first=when.min() if len(when) else None, last=when.max() if len(when) else None)

    def group_counts(self, filt: RequestFilter, column: str, *, now: datetime | None = None
                     ) -> pd.DataFrame:
        """Requests, open and overdue per value (see :meth:`geo.store.base.Store.group_counts`)."""
        frame = self._filtered(filt, [column, "status", "expected_datetime"])
        if column not in frame.columns:
            frame[column] = None
        return counts_by(frame, column, now)

    def grid_cells(self, filt: RequestFilter, *, grid_deg: float) -> pd.DataFrame:
        """Requests per grid cell (see :meth:`geo.store.base.Store.grid_cells`)."""
        frame = self._filtered(filt, ["lat", "lon"])
        lat = frame["lat"].to_numpy(dtype=float)
        lon = frame["lon"].to_numpy(dtype=float)
        ok = np.isfinite(lat) & np.isfinite(lon)
        cells = pd.DataFrame({"row": grid_index(lat[ok], grid_deg),
                              "col": grid_index(lon[ok], grid_deg)})
        out = cells.groupby(["row", "col"], sort=True).size().rename("n").reset_index()
        return out.astype({"row": "int64", "col": "int64", "n": "int64"})

    def select_requests(self, filt: RequestFilter, columns: Sequence[str] | None = None, *,
                        limit: int | None = None) -> pd.DataFrame:
        """Some columns of the matching rows (see :meth:`geo.store.base.Store.select_requests`)."""
        if columns is None:
            path = self._current_file("requests.parquet")
            columns = [] if path is None else [
                c for c in pq.read_schema(path).names if c != "geometry"]
        frame = self._filtered(filt, list(columns))
        if limit is not None:
            frame = frame.head(limit)
        return frame.reset_index(drop=True)

    def request_centre(self) -> tuple[float, float] | None:
        """Median (lat, lon) of the stored requests, ``None`` when there are none."""
        frame = self._filtered(RequestFilter(), ["lat", "lon"])
        lat, lon = frame["lat"].to_numpy(dtype=float), frame["lon"].to_numpy(dtype=float)
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


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def counts_by(frame: pd.DataFrame, column: str, now: datetime | None) -> pd.DataFrame:
    """``requests``, ``open``, ``overdue`` per value of ``column`` (missing values as
    ``None``), most requests first, ties by value."""
    key = frame[column].astype(object).where(frame[column].notna(), None)
    is_open = frame["status"].eq("open").to_numpy(dtype=bool)
    parts = pd.DataFrame({"value": key.to_numpy(dtype=object), "requests": 1,
                          "open": is_open.astype("int64"),
                          "overdue": _overdue(frame, now).astype("int64")})
    out = parts.groupby("value", dropna=False, sort=False)[["requests", "open", "overdue"]].sum()
    return order_counts(out)


def order_counts(out: pd.DataFrame) -> pd.DataFrame:
    """Counts indexed by value, most requests first, then by value (missing last)."""
    out = out.astype("int64")
    index = [None if (v is None or (isinstance(v, float) and np.isnan(v))) else v
             for v in out.index]
    out.index = pd.Index(index, dtype=object, name="value")
    order = sorted(range(len(out)), key=lambda i: (-int(out["requests"].iloc[i]),
                                                   index[i] is None, str(index[i])))
    return out.iloc[order]


def _overdue(frame: pd.DataFrame, now: datetime | None) -> np.ndarray:
    if now is None or "expected_datetime" not in frame:
        return np.zeros(len(frame), dtype=bool)
    due = frame["expected_datetime"]
    return (frame["status"].eq("open") & due.notna() & (due < pd.Timestamp(now))).to_numpy(
        dtype=bool)


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
