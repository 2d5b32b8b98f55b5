"""CARTO: SQL pages ordered by (updated_datetime, cartodb_id), run by a real SQL engine
on the test server; values in the SQL are made from typed values only."""

from __future__ import annotations

from datetime import timedelta

import pytest

from geo.feeds.carto import query
from geo.feeds.config import make_config
from geo.feeds.engine import sync
from geo.store.base import Store
from hotspot311.errors import InputError
from tests.geo.feeds.conftest import FAST, NOW
from tests.geo.feeds.servers import Row, Table, carto_route, serve


def add_carto(store: Store, url: str, *, page_size: int = 7) -> None:
    store.save_source(make_config("phl", kind="carto", url=f"{url}/api/v2/sql",
                                  table="public_cases_fc", page_size=page_size,
                                  rate_limit=1000))


def test_sync_with_ties_in_time(feed_store: Store, rows: list[Row]) -> None:
    """Pages of 12 over rows that share update minutes (16 rows in one): the id breaks
    the ties, so no row is skipped or read twice."""
    table = Table(rows)
    with serve(carto_route(), table) as server:
        add_carto(feed_store, server.url, page_size=12)
        report = sync(feed_store, "phl", now=NOW, client_options=FAST)
        assert report.rows == 528 and report.repeated == 0
        assert set(feed_store.requests()["service_request_id"]) | set(
            feed_store.quarantine()["service_request_id"].dropna()) == {r.id for r in rows}
        last = max(rows, key=lambda r: (r.updated, r.cartodb_id))
        assert feed_store.source("phl").state.watermark == {
            "updated": last.updated.strftime("%Y-%m-%dT%H:%M:%SZ"), "id": str(last.cartodb_id)}
        # a row closed on the server: the next sync reads it alone
        table.update(rows[10].id, last.updated + timedelta(hours=3), status="Closed",
                     status_notes="Closed by feed")
        again = sync(feed_store, "phl", now=NOW, client_options=FAST)
        assert (again.rows, again.result.updated) == (1, 1)
        stored = feed_store.requests().set_index("service_request_id")
        assert stored.loc[rows[10].id, "status_notes"] == "Closed by feed"


def test_rows_without_update_time_come_first(embedded_store: Store, rows: list[Row]) -> None:
    for r in rows[:30]:
        r.updated = None  # type: ignore[assignment]
    with serve(carto_route(), Table(rows)) as server:
        add_carto(embedded_store, server.url, page_size=25)
        report = sync(embedded_store, "phl", now=NOW, client_options=FAST)
    assert report.rows == 528


@pytest.mark.parametrize("table", ["cases; DROP TABLE x", 'a"b', "1abc", "", "x" * 64])
def test_table_name_must_be_plain(table: str) -> None:
    with pytest.raises(InputError, match="--table: got"):
        make_config("phl", kind="carto", url="https://phl.carto.com/api/v2/sql", table=table)


def test_watermark_values_cannot_reach_the_sql() -> None:
    """A watermark is parsed and written again: text in it is refused, not quoted."""
    with pytest.raises(InputError, match="watermark: got"):
        query("public_cases_fc", {"updated": "2024-01-01' OR '1'='1", "id": "1"}, 10)
    with pytest.raises(ValueError, match="invalid literal"):
        query("public_cases_fc", {"updated": "2024-01-01", "id": "1 OR 1=1"}, 10)
    sql = query("public_cases_fc", {"updated": "2024-01-01T05:00:00-05:00", "id": "41"}, 10)
    assert "'2024-01-01T10:00:00Z'" in sql and "cartodb_id > 41" in sql
