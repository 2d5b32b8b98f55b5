"""Open311 GeoReport v2: time windows split until not full, paging where offered,
services.json into the source's service list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from geo.feeds.config import make_config
from geo.feeds.engine import sync
from geo.store.base import Store
from hotspot311.errors import FeedError
from tests.geo.feeds.conftest import FAST, NOW
from tests.geo.feeds.servers import Row, Table, open311_route, serve

SINCE = "2014-01-01"


def add_open311(store: Store, url: str, *, limit: int, options: tuple[str, ...] = (),
                jurisdiction: str | None = None) -> None:
    store.save_source(make_config("city", kind="open311", url=url, page_size=limit,
                                  rate_limit=1000, options=("window_days=3650", *options),
                                  jurisdiction=jurisdiction))


def test_full_windows_are_split(feed_store: Store, rows: list[Row]) -> None:
    """The server answers at most 40 rows: ten-year windows come back full and are
    halved until none is; every row arrives, in time order, and the services too."""
    table = Table(rows)
    with serve(open311_route(limit=40, jurisdiction="phl.gov"), table) as server:
        add_open311(feed_store, server.url, limit=40, jurisdiction="phl.gov")
        report = sync(feed_store, "city", since=SINCE, now=NOW, client_options=FAST)
    assert table.served == {r.id for r in rows}
    stored = set(feed_store.requests()["service_request_id"])
    assert stored | set(feed_store.quarantine()["service_request_id"].dropna()) == table.served
    assert report.result.inserted == len(stored)
    assert feed_store.source("city").state.watermark == {"updated": "2026-12-01T00:00:00Z"}
    assert [s["service_code"] for s in feed_store.source_services("city")] == ["GRAFFITI"]
    assert all("jurisdiction_id=phl.gov" in line for line in server.log)
    assert any("2014-01-01T00%3A00%3A00Z" in line or "2014-01-01T00:00:00Z" in line
               for line in server.log)


def test_paging_where_offered(embedded_store: Store, rows: list[Row]) -> None:
    table = Table(rows)
    with serve(open311_route(limit=100, paging=True), table) as server:
        add_open311(embedded_store, server.url, limit=100, options=("paging=yes",))
        report = sync(embedded_store, "city", since=SINCE, now=NOW, client_options=FAST)
    assert report.rows == 528 and report.pages == 6
    assert sum("page=" in line for line in server.log) == 6


def test_updated_window_sees_changes(embedded_store: Store, rows: list[Row]) -> None:
    table = Table(rows)
    with serve(open311_route(limit=1000), table) as server:
        add_open311(embedded_store, server.url, limit=1000, options=("window=updated",))
        first = sync(embedded_store, "city", since=SINCE, now=NOW, client_options=FAST)
        assert first.rows == 528
        table.update(rows[0].id, datetime(2026, 12, 2, tzinfo=UTC), status_notes="again")
        later = datetime(2026, 12, 3, tzinfo=UTC)
        second = sync(embedded_store, "city", now=later, client_options=FAST)
        assert (second.rows, second.result.updated) == (1, 1)
    # from the watermark (the first sync's now), reaching one second back (OVERLAP)
    assert "updated_after=2026-11-30T23:59:59Z" in server.log[-1].replace("%3A", ":")


def test_updated_windows_overlap_so_a_change_on_an_edge_is_not_lost(
        embedded_store: Store, rows: list[Row]) -> None:
    """``updated_after`` and ``updated_before`` are strict: a row changed exactly at the
    end of one window (the watermark) is outside it and must be in the next."""
    table = Table(rows)
    with serve(open311_route(limit=1000, strict_updated=True), table) as server:
        add_open311(embedded_store, server.url, limit=1000, options=("window=updated",))
        sync(embedded_store, "city", since=SINCE, now=NOW, client_options=FAST)
        table.update(rows[3].id, NOW, status_notes="changed on the edge")
        second = sync(embedded_store, "city", now=NOW + timedelta(hours=1),
                      client_options=FAST)
        assert second.result.updated == 1
    stored = embedded_store.requests()
    notes = stored.loc[stored["service_request_id"] == str(rows[3].id), "status_notes"]
    assert list(notes) == ["changed on the edge"]
    assert server.log


def test_one_second_fuller_than_the_limit(embedded_store: Store, rows: list[Row]) -> None:
    same = rows[0].requested
    for r in rows[:5]:
        r.requested = same
    with serve(open311_route(limit=3), Table(rows)) as server:
        add_open311(embedded_store, server.url, limit=3)
        with pytest.raises(FeedError, match=r"within one second.*paging=yes"):
            sync(embedded_store, "city", since=SINCE, now=NOW, client_options=FAST)
    state = embedded_store.source("city").state
    assert state.last_outcome == "error" and "within one second" in (state.last_error or "")
