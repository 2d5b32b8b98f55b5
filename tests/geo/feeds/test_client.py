"""The feed client against a real server: backoff with jitter, Retry-After, the rate
limit, and errors that name the source, the URL and the page."""

from __future__ import annotations

import pytest

from geo.feeds.client import FeedClient, retry_after
from hotspot311.errors import FeedError
from tests.geo.feeds.servers import Table, graffiti_rows, serve, socrata_route

URL = "/resource/erm2-nwe9.json"


def client(sleeps: list[float], **options: object) -> FeedClient:
    return FeedClient("nyc", sleep=sleeps.append, random_state=1, timeout=1.0,
                      **options)  # type: ignore[arg-type]


def test_exponential_backoff_with_jitter() -> None:
    sleeps: list[float] = []
    with serve(socrata_route("erm2-nwe9"), Table(graffiti_rows()[:3])) as server:
        server.fault("500", "503", "500")
        with client(sleeps, rate_limit=0, backoff=0.5, retries=3) as c:
            doc, _ = c.get_json(server.url + URL, params={"$limit": 2}, page=1)
    assert len(doc) == 2 and c.retried == 3
    for attempt, delay in enumerate(sleeps):
        cap = 0.5 * 2**attempt
        assert cap / 2 <= delay <= cap
    assert len(set(sleeps)) == 3


def test_retry_after_is_honoured_and_capped() -> None:
    sleeps: list[float] = []
    with serve(socrata_route("erm2-nwe9"), Table(graffiti_rows()[:3])) as server:
        server.fault("429", "429")
        with client(sleeps, rate_limit=0, max_backoff=0.5) as c:
            c.get_json(server.url + URL, page=1)
    assert sleeps == [0.5, 0.5]  # the server asked for 1 s; the cap is 0.5 s
    assert retry_after("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0


def test_rate_limit_spaces_requests() -> None:
    sleeps: list[float] = []
    with serve(socrata_route("erm2-nwe9"), Table(graffiti_rows()[:3])) as server, \
            client(sleeps, rate_limit=4) as c:
        for _ in range(4):
            c.get(server.url + URL)
    assert len(sleeps) >= 2 and all(0 < s <= 0.25 for s in sleeps)


def test_errors_name_source_url_and_page() -> None:
    with serve(socrata_route("erm2-nwe9"), Table(graffiti_rows()[:3])) as server:
        with client([], rate_limit=0) as c, pytest.raises(
                FeedError, match=r"^source 'nyc' page 7 \(http://127\.0\.0\.1:\d+/resource/"
                                 r"nope\.json\?\$limit=5\): HTTP 404"):
            c.get_json(server.url + "/resource/nope.json", params={"$limit": 5}, page=7)
        server.fault("stall")
        server.stall_seconds = 1.5
        with client([], rate_limit=0, retries=0) as c, pytest.raises(
                FeedError, match=r"page 2 .*no response within 1\.0 s.*gave up after 1 tries"):
            c.get_json(server.url + URL, page=2)
