"""Hostile values from a feed (SQL, HTML, formulas, huge strings, NUL) are stored as data:
the same text comes back, nothing runs, the CARTO server's table is intact."""

from __future__ import annotations

from datetime import timedelta

import pytest

from geo.feeds.config import make_config
from geo.feeds.engine import sync
from geo.store.base import Store
from tests.geo.feeds.conftest import FAST, NOW
from tests.geo.feeds.servers import Row, Table, carto_route, serve
from tests.hostile import PAYLOADS

SQL = ("'; DROP TABLE requests; --", "1' OR '1'='1", "Robert'); DROP TABLE sources;--")
HUGE = "x" * 200_000


def test_hostile_text_is_stored_as_data(feed_store: Store, rows: list[Row]) -> None:
    texts = [*SQL, *PAYLOADS, HUGE, "before\x00after", "ünïcødé ✓ \u202e"]
    hostile = rows[: len(texts)]
    for r, text in zip(hostile, texts, strict=True):
        r.status_notes = text
        r.address = f"{text[:200]} 1234 MARKET ST"
        r.updated = r.updated + timedelta(seconds=1)
    table = Table(rows)
    with serve(carto_route(), table) as server:
        feed_store.save_source(make_config(
            "phl", kind="carto", url=f"{server.url}/api/v2/sql", table="public_cases_fc",
            page_size=100, rate_limit=1000))
        report = sync(feed_store, "phl", now=NOW, client_options=FAST)
        assert report.rows == 528
        # the server's table still answers in full: nothing ran as SQL there or here
        assert sync(feed_store, "phl", full=True, now=NOW, client_options=FAST).rows == 528
    stored = feed_store.requests().set_index("service_request_id")
    quarantined = set(feed_store.quarantine()["service_request_id"].dropna())
    assert set(stored.index) | quarantined == {r.id for r in rows}
    for r, text in zip(hostile, texts, strict=True):
        if "\x00" in text and r.id in quarantined:
            continue  # a store that cannot hold NUL quarantines the row with its reason
        assert r.id in stored.index, text[:40]
        got = stored.loc[r.id, "status_notes"]
        # as a file ingest stores it: text trimmed of surrounding white space; PostGIS,
        # which cannot hold NUL, stores U+FFFD in its place and flags the row
        assert got in (text.strip(), text.replace("\x00", "\ufffd").strip()), text[:40]
    assert len(stored) + len(quarantined) == 528


@pytest.mark.parametrize("name", ["a b", "../x", "", "-x", "x" * 64])
def test_source_names_are_checked(name: str) -> None:
    with pytest.raises(ValueError, match="NAME: got"):
        make_config(name, kind="file_url", url="https://example.org/x.csv")
