"""Real HTTP servers for the feed tests: Socrata, CARTO, Open311 and a plain file, each
implementing the documented subset the connectors use, on a free port, in a thread.

They serve one :class:`Table` of rows, built from the real Philadelphia requests in
``data/philadelphia/requests/graffiti-sample.json``, each in its protocol's own shape
(Socrata with NYC 311's column names and system fields, CARTO as ``public_cases_fc`` run
through a real SQL engine (SQLite), Open311 GeoReport v2). Faults are queued on a
server (:meth:`FeedServer.fault`) and hooks run after a page is served
(:attr:`FeedServer.after_page`), so a test can change or delete rows between pages.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[3]
GRAFFITI = ROOT / "data" / "philadelphia" / "requests" / "graffiti-sample.json"
EASTERN = ZoneInfo("America/New_York")


def _ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def _local(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        local = datetime.strptime(text, "%m/%d/%Y %H:%M").replace(tzinfo=EASTERN)
    except ValueError:
        local = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return local.astimezone(UTC)


def iso(when: datetime | None, *, millis: bool = False) -> str | None:
    if when is None:
        return None
    if millis:
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
            f"{when.microsecond // 1000:03d}Z"
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Row:
    """One request as the servers keep it (canonical names, typed times)."""

    id: str
    cartodb_id: int
    status: str
    status_notes: str | None
    service_name: str
    requested: datetime
    updated: datetime
    expected: datetime | None
    closed: datetime | None
    address: str | None
    zipcode: str | None
    lat: float | None
    lon: float | None
    media_url: str | None
    description: str | None = None

    @property
    def row_id(self) -> str:
        """Socrata's ``:id``: random-looking, not in time order."""
        return "row-" + hashlib.sha1(str(self.cartodb_id).encode()).hexdigest()[:12]


def graffiti_rows() -> list[Row]:
    """The 528 real Philadelphia graffiti requests as :class:`Row`."""
    out = []
    for r in json.loads(GRAFFITI.read_text(encoding="utf-8")):
        out.append(Row(
            id=str(r["service_request_id"]), cartodb_id=int(r["cartodb_id"]),
            status=str(r["status"]), status_notes=r.get("status_notes"),
            service_name="Graffiti Removal", requested=_ms(r["requested_datetime"]),
            updated=_local(r["updated_datetime"]), expected=_local(r.get("expected_datetime")),
            closed=_ms(r.get("closed_datetime")), address=r.get("address"),
            zipcode=r.get("zipcode"), lat=r.get("lat"), lon=r.get("lon"),
            media_url=r.get("media_url")))
    return out


class Table:
    """The rows a server serves, changeable while it serves them."""

    def __init__(self, rows: list[Row]) -> None:
        self.lock = threading.RLock()
        self.rows = {r.id: r for r in rows}
        self.served: set[str] = set()
        self._sorted: list[tuple[datetime, str, str]] | None = None

    def snapshot(self) -> list[Row]:
        with self.lock:
            return list(self.rows.values())

    def update(self, row_id: str, when: datetime, **changes: Any) -> None:
        """Change a row and stamp it with a new update time."""
        with self.lock:
            row = self.rows[row_id]
            for key, value in changes.items():
                setattr(row, key, value)
            row.updated = when
            self._sorted = None

    def delete(self, row_id: str) -> None:
        with self.lock:
            del self.rows[row_id]
            self._sorted = None

    def keyset(self) -> list[tuple[datetime, str, str]]:
        """(updated, :id, id) of every row, sorted (cached until a change)."""
        with self.lock:
            if self._sorted is None:
                self._sorted = sorted((r.updated, r.row_id, r.id) for r in self.rows.values())
            return self._sorted


@dataclass
class FeedServer:
    """A running server: its URL, table, fault queue and request log."""

    url: str
    table: Table
    faults: list[str] = field(default_factory=list)
    after_page: Callable[[int], None] | None = None
    log: list[str] = field(default_factory=list)
    pages_served: int = 0
    token: str | None = None
    stall_seconds: float = 3.0
    drop: set[str] = field(default_factory=set)

    def fault(self, *names: str) -> None:
        """Queue faults for the next requests: ``429``, ``500``, ``stall``, ``truncate``,
        ``html``, ``reset``."""
        self.faults.extend(names)


class _Handler(BaseHTTPRequestHandler):
    server_state: FeedServer
    route: Callable[[_Handler, str, dict[str, str]], tuple[int, dict[str, str], bytes]]

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        state = self.server_state
        parsed = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        state.log.append(self.path)
        fault = state.faults.pop(0) if state.faults else None
        if fault == "429":
            return self._send(429, {"Retry-After": "1"}, b'{"error": "slow down"}')
        if fault is not None and fault.isdigit():  # 500, 502, 503, 404 …
            return self._send(int(fault), {}, b'{"error": "failed"}')
        if fault == "html":
            return self._send(200, {"Content-Type": "text/html"},
                              b"<html><body><h1>Down for maintenance</h1></body></html>")
        if fault == "stall":
            time.sleep(state.stall_seconds)
            return None
        if fault == "reset":  # the connection dropped without an answer: a TCP reset
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            return None
        try:
            status, headers, body = type(self).route(self, parsed.path, query)
        except _Refused as err:
            return self._send(err.status, {}, json.dumps({"error": err.message}).encode())
        if fault == "truncate":
            body = body[: len(body) // 2]
        self._send(status, headers, body)
        if status == 200 and state.after_page is not None:
            state.pages_served += 1
            state.after_page(state.pages_served)
        return None

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        headers = {"Content-Type": "application/json; charset=utf-8", **headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


@contextmanager
def serve(route: Callable[..., tuple[int, dict[str, str], bytes]], table: Table,
          **options: Any) -> Iterator[FeedServer]:
    """Run a server with ``route`` on a free port of 127.0.0.1 until the block ends."""
    state = FeedServer(url="", table=table, **options)
    handler = type("Handler", (_Handler,), {"server_state": state,
                                              "route": staticmethod(route)})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def _json(value: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return 200, headers or {}, json.dumps(value).encode("utf-8")


# --- Socrata ---------------------------------------------------------------------------
NYC_FIELDS = ["unique_key", "created_date", "closed_date", "agency", "complaint_type",
              "descriptor", "status", "resolution_description", "incident_address",
              "incident_zip", "latitude", "longitude"]
_WHERE = re.compile(
    r"^:updated_at > '(?P<t>[^']+)' OR \(:updated_at = '(?P=t)' AND :id > '(?P<id>(?:[^']|'')*)'\)$"
    r"|^:updated_at >= '(?P<t2>[^']+)'$")


def nyc_record(row: Row) -> dict[str, Any]:
    """A row as NYC 311 on Socrata shows it; nulls left out, as Socrata does."""
    def floating(when: datetime | None) -> str | None:
        return None if when is None else when.astimezone(EASTERN).strftime(
            "%Y-%m-%dT%H:%M:%S.000")

    record = {":id": row.row_id, ":created_at": iso(row.requested, millis=True),
              ":updated_at": iso(row.updated, millis=True), "unique_key": row.id,
              "created_date": floating(row.requested), "closed_date": floating(row.closed),
              "agency": "CLIP", "complaint_type": row.service_name,
              "descriptor": row.description, "status": row.status,
              "resolution_description": row.status_notes, "incident_address": row.address,
              "incident_zip": row.zipcode,
              "latitude": None if row.lat is None else f"{row.lat}",
              "longitude": None if row.lon is None else f"{row.lon}"}
    return {k: v for k, v in record.items() if v is not None}


def socrata_route(dataset: str) -> Callable[..., tuple[int, dict[str, str], bytes]]:
    """``/resource/{dataset}.json`` with ``$select``, ``$where``, ``$order``, ``$limit``."""

    def route(handler: _Handler, path: str, q: dict[str, str]) -> tuple[int, dict, bytes]:
        state = handler.server_state
        if path != f"/resource/{dataset}.json":
            raise _Refused(404, f"no dataset at {path}")
        if state.token and handler.headers.get("X-App-Token") != state.token:
            raise _Refused(403, "invalid app token")
        if q.get("$order", ":updated_at, :id").replace(" ", "") != ":updated_at,:id":
            raise _Refused(400, "this server orders by :updated_at, :id only")
        if "$offset" in q:
            raise _Refused(400, "use keyset paging")
        keys = state.table.keyset()
        start = 0
        if q.get("$where"):
            m = _WHERE.match(q["$where"])
            if m is None:
                raise _Refused(400, f"unsupported $where {q['$where']!r}")
            if m.group("t2"):
                t = datetime.fromisoformat(m.group("t2").replace("Z", "+00:00"))
                start = bisect.bisect_left(keys, (t, "", ""))
            else:
                t = datetime.fromisoformat(m.group("t").replace("Z", "+00:00"))
                rid = m.group("id").replace("''", "'")
                start = bisect.bisect_right(keys, (t, rid, "\U0010ffff"))
        limit = int(q.get("$limit", "1000"))
        with state.table.lock:
            chosen = [state.table.rows[k[2]] for k in keys[start:start + limit]]
            state.table.served.update(r.id for r in chosen)
        fields = [f for f in (":id", ":created_at", ":updated_at", *NYC_FIELDS)
                  if f not in state.drop]
        records = [{k: v for k, v in nyc_record(r).items() if k not in state.drop}
                   for r in chosen]
        body = json.dumps(records).encode("utf-8")
        return 200, {"X-SODA2-Fields": json.dumps(fields)}, body

    return route


# --- CARTO -------------------------------------------------------------------------------
CARTO_FIELDS = ["cartodb_id", "service_request_id", "status", "status_notes", "service_name",
                "requested_datetime", "updated_datetime", "expected_datetime",
                "closed_datetime", "address", "zipcode", "media_url", "lat", "lon"]


def carto_record(row: Row) -> dict[str, Any]:
    return {"cartodb_id": row.cartodb_id, "service_request_id": row.id, "status": row.status,
            "status_notes": row.status_notes, "service_name": row.service_name,
            "requested_datetime": iso(row.requested), "updated_datetime": iso(row.updated),
            "expected_datetime": iso(row.expected), "closed_datetime": iso(row.closed),
            "address": row.address, "zipcode": row.zipcode, "media_url": row.media_url,
            "lat": row.lat, "lon": row.lon}


def carto_route(table_name: str = "public_cases_fc"
                ) -> Callable[..., tuple[int, dict[str, str], bytes]]:
    """``/api/v2/sql?q=SELECT …``: the query runs in SQLite over the table's rows."""

    def route(handler: _Handler, path: str, q: dict[str, str]) -> tuple[int, dict, bytes]:
        state = handler.server_state
        if path != "/api/v2/sql":
            raise _Refused(404, f"no SQL API at {path}")
        sql = q.get("q", "")
        if not sql.lstrip().upper().startswith("SELECT"):
            raise _Refused(400, "only SELECT")
        db = sqlite3.connect(":memory:")
        try:
            db.execute(f'CREATE TABLE "{table_name}" ({", ".join(CARTO_FIELDS)})')
            rows = [carto_record(r) for r in state.table.snapshot()]
            db.executemany(
                f'INSERT INTO "{table_name}" VALUES ({", ".join("?" * len(CARTO_FIELDS))})',
                [[r[f] for f in CARTO_FIELDS] for r in rows])
            cursor = db.execute(sql)
            names = [d[0] for d in cursor.description]
            found = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        except sqlite3.Error as err:
            raise _Refused(400, str(err)) from err
        finally:
            db.close()
        state.table.served.update(str(r["service_request_id"]) for r in found)
        return _json({"rows": found, "time": 0.01,
                      "fields": {n: {"type": "string"} for n in names},
                      "total_rows": len(found)})

    return route


# --- Open311 -----------------------------------------------------------------------------
def open311_record(row: Row) -> dict[str, Any]:
    return {"service_request_id": row.id, "status": "closed" if row.closed else "open",
            "status_notes": row.status_notes, "service_name": row.service_name,
            "service_code": "GRAFFITI", "description": row.description,
            "agency_responsible": "Community Life Improvement Program",
            "requested_datetime": row.requested.isoformat(),
            "updated_datetime": row.updated.isoformat(),
            "expected_datetime": row.expected.isoformat() if row.expected else None,
            "address": row.address, "zipcode": row.zipcode, "lat": row.lat, "long": row.lon,
            "media_url": row.media_url}


def open311_route(*, limit: int = 1000, paging: bool = False, jurisdiction: str | None = None,
                  strict_updated: bool = False
                  ) -> Callable[..., tuple[int, dict[str, str], bytes]]:
    """GeoReport v2 ``services.json`` and ``requests.json`` (dates, optional paging).

    ``updated_after``/``updated_before`` include their bounds, or with ``strict_updated``
    exclude them (as hotspot311's server and many others do)."""

    def route(handler: _Handler, path: str, q: dict[str, str]) -> tuple[int, dict, bytes]:
        state = handler.server_state
        if jurisdiction and q.get("jurisdiction_id") != jurisdiction:
            raise _Refused(400, "jurisdiction_id required")
        if path == "/services.json":
            return _json([{"service_code": "GRAFFITI", "service_name": "Graffiti Removal",
                           "description": "Graffiti on public or private property",
                           "metadata": False, "type": "realtime", "keywords": "graffiti",
                           "group": "Streets"}])
        if path != "/requests.json":
            raise _Refused(404, f"no resource at {path}")

        def when(name: str) -> datetime | None:
            return datetime.fromisoformat(q[name].replace("Z", "+00:00")) if q.get(name) \
                else None

        start, end = when("start_date"), when("end_date")
        after, before = when("updated_after"), when("updated_before")
        if start is None and end is None and after is None and before is None:
            start = datetime.now(UTC) - timedelta(days=90)
        rows = [r for r in state.table.snapshot()
                if (start is None or r.requested >= start)
                and (end is None or r.requested <= end)
                and (after is None or r.updated > after or (r.updated == after
                                                           and not strict_updated))
                and (before is None or r.updated < before or (r.updated == before
                                                              and not strict_updated))]
        rows.sort(key=lambda r: (r.requested, r.id), reverse=True)
        if paging and "page" in q:
            size = min(int(q.get("page_size", limit)), limit)
            first = (int(q["page"]) - 1) * size
            rows = rows[first:first + size]
        else:
            rows = rows[:limit]
        state.table.served.update(r.id for r in rows)
        return _json([open311_record(r) for r in rows])

    return route


# --- a plain file ------------------------------------------------------------------------
def file_route(body: Callable[[], bytes]) -> Callable[..., tuple[int, dict[str, str], bytes]]:
    """A file at ``/requests.json`` with an ETag; ``If-None-Match`` gets 304."""

    def route(handler: _Handler, path: str, q: dict[str, str]) -> tuple[int, dict, bytes]:
        data = body()
        etag = '"' + hashlib.sha1(data).hexdigest() + '"'
        if handler.headers.get("If-None-Match") == etag:
            return 304, {"ETag": etag}, b""
        return 200, {"ETag": etag}, data

    return route
