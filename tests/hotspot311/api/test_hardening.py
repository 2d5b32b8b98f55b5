"""Hardening of the Open311 server, on a live uvicorn: rate limits per address and per
key, the body size limit, CORS off unless configured, the access log without keys,
security headers, the OpenAPI docs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from geo.store.embedded import EmbeddedStore
from hotspot311.api.app import create_app
from hotspot311.api.settings import ApiSettings
from layers.profile import load_profile
from tests.hotspot311.api.live import Keys, add_accounts, live_server


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[str, Keys]]:
    """An empty Philadelphia store served with tight limits, per hour: the limiter's
    sliding window counts the previous window's hits at their weight, rounded down, so
    a test's hits that straddle a window's end could pass (rarely with a minute, 60
    times more rarely with an hour)."""
    store = EmbeddedStore(tmp_path / "store", load_profile("philadelphia"))
    keys = add_accounts(store)
    settings = ApiSettings(read_rate="5/hour", track_rate="3/hour", write_rate="2/hour",
                           max_body_bytes=10_000, media_dir=tmp_path / "media", secret="s")
    with live_server(create_app(store, settings=settings)) as url:
        yield url, keys


def test_reads_and_the_tracking_page_are_limited_per_client_address(small) -> None:
    url, _ = small
    codes = [httpx.get(f"{url}/open311/v2/services.json").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    last = httpx.get(f"{url}/open311/v2/services.xml")
    assert last.status_code == 429 and "<code>429</code>" in last.text
    pages = [httpx.get(f"{url}/track", params={"id": "X"}) for _ in range(4)]
    assert [p.status_code for p in pages] == [404, 404, 404, 429]
    assert "Too many look-ups" in pages[-1].text


def test_posts_are_limited_per_key(small) -> None:
    url, keys = small
    codes = [httpx.post(f"{url}/open311/v2/requests.json",
                        data={"api_key": keys["ann"], "service_code": "nope"}).status_code
             for _ in range(3)]
    assert codes == [400, 400, 429]


def test_bodies_over_the_limit_are_refused_before_reading(small) -> None:
    url, keys = small
    r = httpx.post(f"{url}/open311/v2/requests.json",
                   data={"api_key": keys["ann"], "description": "x" * 20_000})
    assert r.status_code == 413
    assert "at most 10,000" in r.json()[0]["description"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: streamed
        for _ in range(30):
            yield b"a" * 1000

    r = httpx.post(f"{url}/open311/v2/requests.json", content=chunks(),
                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413


def test_cors_is_off_unless_origins_are_configured(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store", load_profile("philadelphia"))
    origin = {"Origin": "https://maps.example.org"}
    with live_server(create_app(store, settings=ApiSettings(media_dir=tmp_path))) as url:
        r = httpx.get(f"{url}/open311/v2/services.json", headers=origin)
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    allowed = ApiSettings(media_dir=tmp_path, cors_origins=("https://maps.example.org",))
    with live_server(create_app(store, settings=allowed)) as url:
        r = httpx.get(f"{url}/open311/v2/services.json", headers=origin)
        assert r.headers["access-control-allow-origin"] == "https://maps.example.org"
        r = httpx.get(f"{url}/open311/v2/services.json", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_access_log_is_structured_and_never_holds_a_key(small, caplog) -> None:
    url, keys = small
    with caplog.at_level(logging.INFO, logger="hotspot311.api.access"):
        httpx.get(f"{url}/open311/v2/requests.json", params={"api_key": keys["partner"],
                                                             "status": "open"})
        httpx.post(f"{url}/open311/v2/requests.json",
                   data={"api_key": keys["ann"], "service_code": "nope"},
                   headers={"X-API-Key": keys["fred"]})
    lines = [r.getMessage() for r in caplog.records if r.name == "hotspot311.api.access"]
    assert len(lines) == 2
    import json

    first = json.loads(lines[0])
    assert first["path"] == "/open311/v2/requests.json" and first["status"] == 200
    assert "api_key=%2A%2A%2A" in first["query"] and "status=open" in first["query"]
    for line in lines:
        for key in keys.keys.values():
            assert key not in line


def test_docs_and_security_headers(small) -> None:
    url, _ = small
    assert httpx.get(f"{url}/docs").status_code == 200
    spec = httpx.get(f"{url}/openapi.json").json()
    assert "/open311/v2/requests.{fmt}" in spec["paths"]
    assert "post" in spec["paths"]["/open311/v2/requests.{fmt}"]
    page = httpx.get(f"{url}/track")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script" not in page.text  # the tracking page needs no JavaScript
    r = httpx.get(f"{url}/open311/v2/services.json")
    assert r.headers["x-content-type-options"] == "nosniff"


def test_a_store_fault_is_a_503_in_the_spec_format_without_details(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store", load_profile("philadelphia"))
    with live_server(create_app(store, settings=ApiSettings(media_dir=tmp_path))) as url:
        (tmp_path / "store").mkdir()
        (tmp_path / "store" / "CURRENT").write_text("000999")  # names a missing snapshot
        r = httpx.get(f"{url}/open311/v2/requests.xml")
        assert r.status_code == 503 and "<code>503</code>" in r.text
        assert "unavailable" in r.text and str(tmp_path) not in r.text
