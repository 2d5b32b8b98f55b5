"""Socrata: keyset paging from the watermark, the NYC mapping, tokens, changes between
pages; against a real Socrata-protocol server, on both stores."""

from __future__ import annotations

from datetime import timedelta

import pytest

from geo.feeds.config import make_config
from geo.feeds.engine import sync
from geo.store.base import Store
from hotspot311.errors import FeedError
from tests.geo.feeds.conftest import FAST, NOW
from tests.geo.feeds.servers import Row, Table, serve, socrata_route

NYC_MAP = ("service_request_id=unique_key", "requested_datetime=created_date",
           "closed_datetime=closed_date", "service_name=complaint_type",
           "agency_responsible=agency", "description=descriptor",
           "status_notes=resolution_description", "address=incident_address",
           "zipcode=incident_zip", "lat=latitude", "lon=longitude")


def add_socrata(store: Store, url: str, *, name: str = "nyc", page_size: int = 50,
                token_env: str | None = None) -> None:
    store.save_source(make_config(name, kind="socrata", url=url, dataset="erm2-nwe9",
                                  maps=NYC_MAP, page_size=page_size, rate_limit=1000,
                                  token_env=token_env))


def accounted(store: Store, served: set[str]) -> None:
    """Every served row is stored or quarantined, and nothing else is."""
    stored = set(store.requests()["service_request_id"])
    quarantined = set(store.quarantine()["service_request_id"].dropna())
    assert stored | quarantined == served
    assert not stored & quarantined


def test_backfill_then_incremental(feed_store: Store, rows: list[Row]) -> None:
    table = Table(rows)
    with serve(socrata_route("erm2-nwe9"), table) as server:
        add_socrata(feed_store, server.url, page_size=50)
        report = sync(feed_store, "nyc", now=NOW, client_options=FAST)
        assert report.rows == 528
        assert report.pages == 11  # 10 full pages of 50, then 28 rows
        accounted(feed_store, {r.id for r in rows})
        assert report.result.inserted == len(feed_store.requests())
        last = max((r.updated, r.row_id) for r in rows)
        state = feed_store.source("nyc").state
        assert state.watermark == {"updated": last[0].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                                   "id": last[1]}
        assert (state.last_outcome, state.rows, state.pages) == ("ok", 528, 11)
        stored = feed_store.requests().set_index("service_request_id")
        r0 = rows[0]
        assert stored.loc[r0.id, "service_name"] == "Graffiti Removal"
        assert stored.loc[r0.id, "address"] == r0.address

        # three rows change on the server: the next sync reads those three only
        later = last[0] + timedelta(days=1)
        changed = [rows[5].id, rows[77].id, rows[300].id]
        for i, rid in enumerate(changed):
            table.update(rid, later + timedelta(minutes=i), status_notes=f"re-opened {i}")
        again = sync(feed_store, "nyc", now=NOW, client_options=FAST)
        assert (again.rows, again.result.updated, again.result.inserted) == (3, 3, 0)
        stored = feed_store.requests().set_index("service_request_id")
        assert [stored.loc[rid, "status_notes"] for rid in changed] == [
            "re-opened 0", "re-opened 1", "re-opened 2"]
        # and nothing more: a third sync reads nothing
        assert sync(feed_store, "nyc", now=NOW, client_options=FAST).rows == 0


def test_app_token_sent_in_header(embedded_store: Store, rows: list[Row],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(socrata_route("erm2-nwe9"), Table(rows[:20]), token="s3cret") as server:
        add_socrata(embedded_store, server.url, token_env="NYC_APP_TOKEN")
        monkeypatch.setenv("NYC_APP_TOKEN", "wrong")
        with pytest.raises(FeedError, match=r"source 'nyc' page 1 \(http://127.*\$limit=50.*"
                                            r"HTTP 403"):
            sync(embedded_store, "nyc", now=NOW, client_options=FAST)
        assert all("s3cret" not in line and "wrong" not in line for line in server.log)
        state = embedded_store.source("nyc").state
        assert state.last_outcome == "error" and "HTTP 403" in (state.last_error or "")
        monkeypatch.setenv("NYC_APP_TOKEN", "s3cret")
        assert sync(embedded_store, "nyc", now=NOW, client_options=FAST).rows == 20
        assert embedded_store.source("nyc").state.last_error is None


def test_rows_updated_and_deleted_between_pages(feed_store: Store, rows: list[Row]) -> None:
    """Keyset paging neither skips nor repeats when the data change under it: a row
    already read is changed (it comes again, later), one not read yet is changed (it
    comes once, at its new place) and one not read yet is deleted (it never comes)."""
    table = Table(rows)
    order = [k[2] for k in table.keyset()]
    top = table.keyset()[-1][0]
    early, ahead, gone = order[3], order[200], order[400]

    def between(page: int) -> None:
        if page == 2:
            table.update(early, top + timedelta(hours=1), status_notes="changed early")
            table.update(ahead, top + timedelta(hours=2), status_notes="changed ahead")
            table.delete(gone)

    with serve(socrata_route("erm2-nwe9"), table, after_page=between) as server:
        add_socrata(feed_store, server.url, page_size=60)
        report = sync(feed_store, "nyc", now=NOW, client_options=FAST)
    assert gone not in table.served
    accounted(feed_store, table.served)
    assert report.rows == 527 + 1  # one row came twice: before and after its change
    stored = feed_store.requests().set_index("service_request_id")
    assert stored.loc[early, "status_notes"] == "changed early"
    assert stored.loc[ahead, "status_notes"] == "changed ahead"
    assert feed_store.source("nyc").state.watermark["updated"].startswith(
        (top + timedelta(hours=2)).strftime("%Y-%m-%dT%H"))
