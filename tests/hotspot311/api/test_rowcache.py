"""Pages put together from rendered rows the server keeps (:mod:`hotspot311.api.rowcache`),
on both stores, served by a live uvicorn beside a server that makes every page whole.

The PostGIS store reads a page's ids with its data version, so rows are reused there;
the embedded store makes pages whole (``page_keys`` answers ``None``), and the same
checks hold for it unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from hotspot311.api.app import create_app
from hotspot311.api.rowcache import RowCache
from tests.hotspot311.api.conftest import Served
from tests.hotspot311.api.live import live_server


@contextmanager
def app_pair(served: Served) -> Iterator[tuple[str, str, RowCache]]:
    """Two servers on the store of ``served``, neither keeping pages: one keeping rows,
    one making every page whole. Yields their URLs and the first's row cache."""
    kept = dataclasses.replace(served.settings, page_cache_bytes=0)
    whole = dataclasses.replace(served.settings, page_cache_bytes=0, row_cache_bytes=0)
    app = create_app(served.store, settings=kept)
    with live_server(app) as url, live_server(create_app(served.store, settings=whole)) as ref:
        yield url, ref, app.state.h311.rows


def both(url: str, ref: str, path: str, **params: Any) -> tuple[httpx.Response, httpx.Response]:
    got = httpx.get(f"{url}/open311/v2/{path}", params=params, timeout=60)
    want = httpx.get(f"{ref}/open311/v2/{path}", params=params, timeout=60)
    return got, want


def test_pages_from_kept_rows_equal_pages_made_whole(served: Served) -> None:
    """Overlapping pages (windows a day apart, another status, the next page by cursor,
    both formats, both views) answer byte for byte what a server making each page whole
    answers; on PostGIS most of their rows come from the cache."""
    end = datetime.now(UTC) + timedelta(days=2)
    partner = served.keys["partner"]
    with app_pair(served) as (url, ref, rows):
        asked = 0
        for fmt in ("json", "xml"):
            for key in ({}, {"api_key": partner}):
                for days in range(4):
                    for status in ({}, {"status": "open"}):
                        params = {"start_date": "2000-01-01T00:00:00Z",
                                  "end_date": (end - timedelta(days=days)).isoformat(),
                                  "page_size": 200, **status, **key}
                        got, want = both(url, ref, f"requests.{fmt}", **params)
                        asked += 1
                        assert got.status_code == want.status_code == 200
                        assert got.content == want.content
                        assert got.headers["content-type"] == want.headers["content-type"]
                        assert (got.headers["link"].replace(url, ref)
                                == want.headers["link"])  # the same cursor
                # the next page, by the Link header's cursor
                link = got.headers["link"].split(">")[0].lstrip("<")
                nxt = httpx.get(link, timeout=60)
                same = httpx.get(link.replace(url, ref), timeout=60)
                assert nxt.status_code == 200 and nxt.content == same.content
        # the default window (never kept as a page) and an empty page
        for params in ({"page_size": 100}, {"start_date": "1990-01-01",
                                            "end_date": "1990-02-01"}):
            got, want = both(url, ref, "requests.json", **params)
            assert got.content == want.content
        assert both(url, ref, "requests.json", start_date="1990-01-01",
                    end_date="1990-02-01")[0].json() == []
        if served.kind == "postgis":
            assert rows.hits > rows.misses > 0  # most rows were put together
        else:
            assert rows.hits == rows.misses == 0  # pages made whole


@pytest.mark.postgis
@pytest.mark.parametrize("served", ["postgis"], indirect=True)
def test_a_kept_row_is_not_served_after_the_request_changed(served: Served) -> None:
    """A write to ``requests`` (here an UPDATE of one row's notes, outside the store's
    code) changes the data version: the next page has the new notes, not the kept row."""
    assert served.kind == "postgis"  # the embedded store keeps no rows
    window = {"start_date": "2000-01-01T00:00:00Z",
              "end_date": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
              "page_size": 50, "api_key": served.keys["partner"]}
    with app_pair(served) as (url, ref, rows):
        first = httpx.get(f"{url}/open311/v2/requests.json", params=window, timeout=60)
        target = first.json()[7]["service_request_id"]
        httpx.get(f"{url}/open311/v2/requests.json", params=window, timeout=60)
        assert rows.hits >= 50 and len(rows) >= 50
        note = f"changed by the row-cache test at {datetime.now(UTC).isoformat()}"
        with served.store._connection() as conn:  # type: ignore[attr-defined]
            conn.execute("UPDATE requests SET status_notes = %s WHERE service_request_id = %s",
                         (note, target))
            conn.commit()
        got, want = both(url, ref, "requests.json", **window)
        assert got.content == want.content
        assert next(r for r in got.json() if r["service_request_id"] == target)[
            "status_notes"] == note


@pytest.mark.postgis
@pytest.mark.parametrize("served", ["postgis"], indirect=True)
def test_a_write_between_the_two_reads_makes_the_page_whole(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the rows not kept are read in another state than the page's ids (a write
    came between), nothing is kept and the page is made whole, as without the cache."""
    assert served.kind == "postgis"  # the embedded store keeps no rows
    store = served.store
    rows_by_id = store.rows_by_id
    whole_reads: list[object] = []
    query_rows = store.query_rows

    def moved_on(*args: Any, **kwargs: Any) -> tuple[str | None, dict[str, list[Any]]]:
        _, rows = rows_by_id(*args, **kwargs)
        return "another state", rows

    def counted(*args: Any, **kwargs: Any) -> dict[str, list[Any]]:
        whole_reads.append(args)
        return query_rows(*args, **kwargs)

    monkeypatch.setattr(store, "rows_by_id", moved_on)
    monkeypatch.setattr(store, "query_rows", counted)
    with app_pair(served) as (url, ref, rows):
        got, want = both(url, ref, "requests.json", start_date="2000-01-01T00:00:00Z",
                         page_size=30)
        assert got.status_code == 200 and got.content == want.content
        assert len(got.json()) == 30
        assert len(rows) == 0  # nothing kept from the other state
        assert len(whole_reads) == 2  # this server's page, made whole, and the reference's


def test_the_cache_keeps_the_newest_rows_within_its_bound() -> None:
    """Pages of new rows past the bound: the bytes counted stay within it, the newest
    page is kept whole and the oldest rows are gone, per variant."""
    body = b"x" * 1000
    cache = RowCache(max_bytes=50_000)
    assert cache.get("v", ("json", False), ["none"]) == [None]
    pages = [[f"R-{p}-{i}" for i in range(20)] for p in range(10)]
    for ids in pages:
        cache.get("v", ("json", False), ids)
        cache.put("v", ("json", False), dict.fromkeys(ids, body))
    kept = len(cache)
    assert 20 <= kept < 50  # about 50,000 / (1,000 + id + overhead) rows
    assert cache._bytes <= cache.max_bytes
    assert all(b == body for b in cache.get("v", ("json", False), pages[-1]))
    assert cache.get("v", ("json", False), pages[0]) == [None] * 20
    assert cache.get("v", ("xml", False), pages[-1]) == [None] * 20  # another variant
