"""The embedded store's Open311 reads: filters pushed into the Parquet scan.

A query reads the order keys (and the columns its filters need) of the live rows that
pass the filters (:class:`geo.store.embedded_parts.RequestParts`), picks the page, then
reads the page's columns for those ids alone; the Parquet reader skips row groups whose
statistics exclude the filters. API keys live in
``STORE/api_keys.json`` (written atomically under the writers' lock), beside the
snapshots: they are accounts, not request data.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from geo.ingest.validate import to_city
from geo.store.api_keys import ApiKey, check_account
from geo.store.embedded_parts import RequestParts
from geo.store.query import QUERY_COLUMNS, RequestQuery, unit_metres
from hotspot311.errors import InputError

_T = TypeVar("_T")
_KEYS_FILE = "api_keys.json"
_METRES_PER_DEGREE = 111_320.0


def empty_result(columns: Sequence[str]) -> pd.DataFrame:
    """No rows, the asked-for columns."""
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})


def query_file(view: RequestParts | None, query: RequestQuery, *, crs: str,
               columns: Sequence[str] = QUERY_COLUMNS) -> pd.DataFrame:
    """Answer ``query`` from a snapshot's request parts.

    Parameters
    ----------
    view
        The snapshot's parts (``None``: the store is empty).
    query
        Filters, order position and size.
    crs
        The city CRS of the ``x``/``y`` columns (for ``near``).
    columns
        Columns to return (those the file has).

    Returns
    -------
    pandas.DataFrame
        The page, in query order (newest first).
    """
    table = query_table(view, query, crs=crs, columns=columns)
    return empty_result(columns) if table is None else table.to_pandas()


def query_table(view: RequestParts | None, query: RequestQuery, *, crs: str,
                columns: Sequence[str] = QUERY_COLUMNS) -> pa.Table | None:
    """The page of :func:`query_file` as an Arrow table in query order (``None`` when
    nothing can match: no parts, or an empty query)."""
    if view is None or query.empty:
        return None
    dataset = view
    schema = view.schema
    wanted = [c for c in columns if c in schema.names]
    if query.ids and query.near is None:  # few rows: one pass, sorted here
        read = list(dict.fromkeys([*wanted, "requested_datetime", "service_request_id"]))
        page = dataset.table(read, filter=_expression(query, schema, crs))
        order = pc.sort_indices(page, sort_keys=[("requested_datetime", "descending"),
                                                 ("service_request_id", "descending")])
        page = page.take(order.slice(query.offset, query.limit))
        return page.select(wanted)
    keys = ["requested_datetime", "service_request_id"]
    extra = ["lat", "lon", "x", "y"] if query.near is not None else []
    table = dataset.table(keys + extra, filter=_expression(query, schema, crs))
    if query.near is not None and table.num_rows:
        table = table.filter(_within(table, query.near, crs))
    if table.num_rows == 0:
        return dataset.schema.empty_table().select(wanted)
    order = pc.sort_indices(table, sort_keys=[("requested_datetime", "descending"),
                                              ("service_request_id", "descending")])
    order = order.slice(query.offset, query.limit)
    ids = table.column("service_request_id").take(order)
    page = dataset.table(wanted, filter=ds.field("service_request_id").isin(ids))
    rank = pc.index_in(page.column("service_request_id"), value_set=ids)
    return page.take(pc.sort_indices(rank))


def table_rows(table: pa.Table | None, columns: Sequence[str]) -> dict[str, list[Any]]:
    """Column lists of a page (times as aware datetimes, missing values ``None``)."""
    if table is None:
        return {c: [] for c in columns}
    out: dict[str, list[Any]] = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):  # microseconds, UTC: plain aware datetimes
            col = col.cast(pa.timestamp("us", tz=col.type.tz or "UTC"), safe=False)
        out[name] = col.to_pylist()
    return out


def _scalar(value: datetime, field: pa.Field) -> pa.Scalar:
    return pa.scalar(value.astimezone(UTC), type=field.type)


def _expression(query: RequestQuery, schema: pa.Schema, crs: str) -> ds.Expression:
    terms: list[ds.Expression] = []
    rid, req = ds.field("service_request_id"), ds.field("requested_datetime")
    if query.ids:
        terms.append(rid.isin(list(query.ids)))
    if query.service_names is not None:
        terms.append(ds.field("service_name").isin(list(query.service_names)))
    if query.status is not None:
        terms.append(ds.field("status") == query.status)
    rf = schema.field("requested_datetime")
    if query.start is not None:
        terms.append(req >= _scalar(query.start, rf))
    if query.end is not None:
        terms.append(req < _scalar(query.end, rf))
    uf = schema.field("updated_datetime")
    upd = pc.coalesce(ds.field("updated_datetime"), req)  # the last change
    if uf.type != rf.type:
        upd = pc.coalesce(ds.field("updated_datetime"), req.cast(uf.type))
    if query.updated_after is not None:
        terms.append(upd > _scalar(query.updated_after, uf))
    if query.updated_before is not None:
        terms.append(upd < _scalar(query.updated_before, uf))
    lat, lon = ds.field("lat"), ds.field("lon")
    if query.bbox is not None:
        w, s, e, n = query.bbox
        terms += [lon >= w, lon <= e, lat >= s, lat <= n]
    if query.near is not None:
        clat, clon, radius = query.near
        dlat = radius / _METRES_PER_DEGREE * 1.01
        dlon = dlat / max(math.cos(math.radians(clat)), 1e-6)
        terms += [lat >= clat - dlat, lat <= clat + dlat, lon >= clon - dlon, lon <= clon + dlon]
    if query.after is not None:
        t, last = query.after
        ts = _scalar(t, rf)
        terms.append((req < ts) | ((req == ts) & (rid < last)))
    out = ds.scalar(True)
    for term in terms:
        out = out & term
    return out


def _within(table: pa.Table, near: tuple[float, float, float], crs: str) -> pa.Array:
    """Rows within ``near``'s radius, measured in the city CRS (as PostGIS does)."""
    clat, clon, radius = near
    x0, y0 = to_city(crs).transform(clon, clat)
    unit = unit_metres(crs)
    r = radius / unit
    dx = pc.subtract(table.column("x"), x0)
    dy = pc.subtract(table.column("y"), y0)
    d2 = pc.add(pc.multiply(dx, dx), pc.multiply(dy, dy))
    return pc.fill_null(pc.less_equal(d2, r * r), False)


class EmbeddedApiMixin:
    """Open311 reads and API keys for :class:`geo.store.embedded.EmbeddedStore`."""

    root: Path

    def _current_file(self, name: str) -> Path | None:  # provided by the store
        raise NotImplementedError

    def _read_requests(self, reader: Callable[[RequestParts], _T]) -> _T | None:
        raise NotImplementedError  # provided by the store

    def _lock(self) -> AbstractContextManager[None]:  # provided by the store
        raise NotImplementedError

    def query_requests(self, query: RequestQuery, *,
                       columns: Sequence[str] = QUERY_COLUMNS) -> pd.DataFrame:
        """Answer an Open311 query (see :func:`query_file`)."""
        crs = str(self.profile.crs)  # type: ignore[attr-defined]
        page = self._read_requests(lambda view: query_file(view, query, crs=crs,
                                                           columns=columns))
        return empty_result(columns) if page is None else page

    def query_rows(self, query: RequestQuery, *,
                   columns: Sequence[str] = QUERY_COLUMNS) -> dict[str, list[Any]]:
        """Answer an Open311 query as column lists (see :func:`query_table`)."""
        crs = str(self.profile.crs)  # type: ignore[attr-defined]
        table = self._read_requests(lambda view: query_table(view, query, crs=crs,
                                                             columns=columns))
        return table_rows(table, columns)

    def data_version(self) -> str | None:
        """The committed snapshot's name, with the inode and change time of ``CURRENT``
        (every commit replaces that file, so a name written there again by hand is
        another token); ``None`` before the first commit."""
        pointer = self.root / "CURRENT"
        try:
            stat = pointer.stat()
            name = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return f"{name}:{stat.st_ino}:{stat.st_ctime_ns}"

    def api_keys(self) -> list[ApiKey]:
        """Every account's key record, by name."""
        return sorted(_read_keys(self.root / _KEYS_FILE), key=lambda k: k.name)

    def add_api_key(self, name: str, role: str, key_hash: str) -> ApiKey:
        """Store a new account's key hash (see :meth:`geo.store.base.Store.add_api_key`)."""
        check_account(name, role)
        with self._lock():
            keys = _read_keys(self.root / _KEYS_FILE)
            if any(k.name == name for k in keys):
                raise InputError(f"NAME: account {name!r} already has a key; revoke it or "
                                 "choose another name")
            record = ApiKey(name, role, key_hash, datetime.now(UTC))
            _write_keys(self.root / _KEYS_FILE, [*keys, record])
        return record

    def revoke_api_key(self, name: str) -> ApiKey:
        """Mark an account's key revoked (see :meth:`geo.store.base.Store.revoke_api_key`)."""
        with self._lock():
            keys = _read_keys(self.root / _KEYS_FILE)
            found = [k for k in keys if k.name == name]
            if not found:
                raise InputError(f"NAME: no account {name!r}; accounts: "
                                 f"{sorted(k.name for k in keys)}")
            old = found[0]
            new = old if old.revoked_at else ApiKey(old.name, old.role, old.key_hash,
                                                    old.created_at, datetime.now(UTC))
            _write_keys(self.root / _KEYS_FILE, [new if k.name == name else k for k in keys])
        return new

    def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The record whose hash is ``key_hash`` (revoked or not), or ``None``."""
        return next((k for k in _read_keys(self.root / _KEYS_FILE) if k.key_hash == key_hash),
                    None)


def _read_keys(path: Path) -> list[ApiKey]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    return [ApiKey(r["name"], r["role"], r["key_hash"],
                   datetime.fromisoformat(r["created_at"]),
                   datetime.fromisoformat(r["revoked_at"]) if r.get("revoked_at") else None)
            for r in raw]


def _write_keys(path: Path, keys: list[ApiKey]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = [
        {"name": k.name, "role": k.role, "key_hash": k.key_hash,
         "created_at": k.created_at.isoformat(),
         "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None} for k in keys]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(rows, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


__all__ = ["EmbeddedApiMixin", "empty_result", "query_file", "query_table", "table_rows"]
