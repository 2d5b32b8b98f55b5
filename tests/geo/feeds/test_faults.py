"""Faults on a real server: 429 with Retry-After, 500s, a stalled response, a dropped
connection (TCP reset), a truncated body, HTML served with 200, a column gone. Each ends
with every row accounted for and the watermark right, after at most one more sync."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from geo.feeds.engine import sync
from geo.store.base import Store
from hotspot311.errors import FeedError
from tests.geo.feeds.conftest import FAST, NOW
from tests.geo.feeds.servers import Row, Table, serve, socrata_route
from tests.geo.feeds.test_socrata import accounted, add_socrata

COLUMNS = ["service_request_id", "status", "status_notes", "service_name", "address",
           "requested_datetime", "updated_datetime", "closed_datetime", "lat", "lon"]


def content(store: Store) -> pd.DataFrame:
    """The stored requests' canonical content, by id."""
    return store.requests()[COLUMNS].sort_values("service_request_id").reset_index(drop=True)


def expected_watermark(rows: list[Row]) -> dict[str, str]:
    last = max((r.updated, r.row_id) for r in rows)
    return {"updated": last[0].strftime("%Y-%m-%dT%H:%M:%S.000Z"), "id": last[1]}


def fault_at(server: object, page: int, *faults: str) -> None:
    """Queue ``faults`` for the requests after page ``page - 1`` is served."""
    def hook(served: int) -> None:
        if served == page - 1:
            server.fault(*faults)  # type: ignore[attr-defined]
    server.after_page = hook  # type: ignore[attr-defined]


@pytest.mark.parametrize("faults", [("429",), ("500", "500"), ("stall",), ("reset",)],
                         ids=["429-retry-after", "500-twice", "stalled", "connection-reset"])
def test_transient_faults_are_retried(feed_store: Store, rows: list[Row],
                                      faults: tuple[str, ...]) -> None:
    table = Table(rows[:200])
    with serve(socrata_route("erm2-nwe9"), table, stall_seconds=2.5) as server:
        add_socrata(feed_store, server.url, page_size=50)
        fault_at(server, 2, *faults)
        started = time.monotonic()
        report = sync(feed_store, "nyc", now=NOW, client_options=FAST)
        waited = time.monotonic() - started
    assert report.rows == 200
    assert len(server.log) == 5 + len(faults)  # 4 full pages, an empty one, the retries
    page2 = next(line for line in server.log if "%24where" in line or "$where" in line)
    assert server.log.count(page2) == 1 + len(faults)  # the same page asked again
    if faults == ("429",):
        assert waited >= 1.0  # Retry-After: 1 was honoured
    accounted(feed_store, {r.id for r in rows[:200]})
    assert feed_store.source("nyc").state.watermark == expected_watermark(rows[:200])


def test_retries_run_out(embedded_store: Store, rows: list[Row]) -> None:
    with serve(socrata_route("erm2-nwe9"), Table(rows[:20])) as server:
        add_socrata(embedded_store, server.url)
        server.fault(*["500"] * 10)
        with pytest.raises(FeedError, match=r"page 1 .*HTTP 500.*gave up after 3 tries"):
            sync(embedded_store, "nyc", now=NOW, client_options={**FAST, "retries": 2})
    assert len(embedded_store.requests()) == 0


@pytest.mark.parametrize(("fault", "message"), [
    ("truncate", r"page 3 \(http://127.0.0.1:\d+/resource/erm2-nwe9.json\?.*\): the body is "
                 r"not complete JSON"),
    ("html", r"page 3 \(.*\): served an HTML page with status 200"),
])
def test_bad_page_stops_and_resumes(feed_store: Store, rows: list[Row], fault: str,
                                    message: str, tmp_path: object) -> None:
    table = Table(rows)
    with serve(socrata_route("erm2-nwe9"), table) as server:
        add_socrata(feed_store, server.url, page_size=100)
        fault_at(server, 3, fault)
        with pytest.raises(FeedError, match=message):
            sync(feed_store, "nyc", now=NOW, client_options=FAST)
        state = feed_store.source("nyc").state
        assert (state.rows, state.pages, state.last_outcome) == (200, 2, "error")
        assert len(feed_store.requests()) + len(feed_store.quarantine()) == 200
        server.after_page = None
        sync(feed_store, "nyc", now=NOW, client_options=FAST)
    accounted(feed_store, {r.id for r in rows})
    state = feed_store.source("nyc").state
    assert (state.rows, state.last_outcome, state.last_error) == (528, "ok", None)
    assert state.watermark == expected_watermark(rows)


def test_required_column_gone(embedded_store: Store, rows: list[Row]) -> None:
    with serve(socrata_route("erm2-nwe9"), Table(rows)) as server:
        add_socrata(embedded_store, server.url, page_size=100)
        def drop(served: int) -> None:
            if served == 1:
                server.drop.add("unique_key")
        server.after_page = drop
        with pytest.raises(FeedError, match=r"(?s)page 2 .*no longer fit the source's mapping.*"
                                            r"unique_key.*is not in the file"):
            sync(embedded_store, "nyc", now=NOW, client_options=FAST)
    assert embedded_store.source("nyc").state.rows == 100
    assert len(embedded_store.requests()) + len(embedded_store.quarantine()) == 100


def test_same_store_as_one_clean_sync(tmp_path: object, rows: list[Row],
                                      phila: object) -> None:
    """A sync broken by a truncated page and resumed leaves the store as a clean one."""
    from pathlib import Path

    from geo.store.embedded import EmbeddedStore

    root = Path(str(tmp_path))
    with serve(socrata_route("erm2-nwe9"), Table(rows)) as server:
        clean = EmbeddedStore(root / "clean", phila)  # type: ignore[arg-type]
        add_socrata(clean, server.url, page_size=100)
        sync(clean, "nyc", now=NOW, client_options=FAST)
        broken = EmbeddedStore(root / "broken", phila)  # type: ignore[arg-type]
        add_socrata(broken, server.url, page_size=100)
        fault_at(server, 4, "truncate")
        server.pages_served = 0
        with pytest.raises(FeedError):
            sync(broken, "nyc", now=NOW, client_options=FAST)
        server.after_page = None
        sync(broken, "nyc", now=NOW, client_options=FAST)
    pd.testing.assert_frame_equal(content(broken), content(clean))
    assert sorted(broken.quarantine()["quarantine_id"]) == sorted(
        clean.quarantine()["quarantine_id"])
