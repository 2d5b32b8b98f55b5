"""The PostGIS store's asyncio reads (:mod:`geo.store.postgis_async`): the same answers
as the synchronous store, and the same errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from geo.ingest.pipeline import ingest
from geo.store.query import RequestQuery
from hotspot311.errors import StoreConnectionError, StoreError
from layers.profile import CityProfile

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.postgis


def test_async_reads_answer_what_the_store_answers(
        postgis_url: str, philly_profile: CityProfile) -> None:
    from geo.store.postgis import PostGISStore

    store = PostGISStore.open(postgis_url, philly_profile)
    try:
        for name in ("parks-maintenance.csv", "graffiti-sample.json"):
            ingest(ROOT / "data" / "philadelphia" / "requests" / name, store)
        page = store.query_rows(RequestQuery(limit=50))
        ids = page["service_request_id"]
        assert len(ids) == 50
        t, last = page["requested_datetime"][20], ids[20]
        lat, lon = page["lat"][0], page["lon"][0]
        queries = [
            RequestQuery(ids=(ids[3],), limit=1),
            RequestQuery(ids=(ids[3], ids[7], "NOT-STORED"), limit=10),
            RequestQuery(service_names=(page["service_name"][0],), limit=100),
            RequestQuery(status="closed", start=datetime(2024, 3, 1, tzinfo=UTC), limit=200),
            RequestQuery(after=(t, last), limit=30),
            RequestQuery(near=(lat, lon, 400.0), limit=100),
            RequestQuery(bbox=(lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01), limit=100),
            RequestQuery(ids=(), limit=10),  # empty: nothing asked, nothing read
        ]
        want = [store.query_rows(q) for q in queries]
        assert sum(len(w["service_request_id"]) for w in want) > 300

        async def read_all() -> list[dict[str, list[object]]]:
            reads = store.async_reads(max_size=2)
            await reads.open()
            try:  # at once, more than the pool holds: each waits for a connection
                return list(await asyncio.gather(*(reads.query_rows(q) for q in queries)))
            finally:
                await reads.close()

        assert asyncio.run(read_all()) == want
    finally:
        store.close()


def test_async_read_errors_are_the_stores(postgis_url: str, philly_profile: CityProfile
                                          ) -> None:
    """A connection the server ends is a :class:`StoreConnectionError`; a statement the
    server refuses is a :class:`StoreError`; the next read gets a fresh connection."""
    from geo.store.postgis import PostGISStore

    store = PostGISStore.open(postgis_url, philly_profile)
    one = RequestQuery(ids=("X",), limit=1)

    async def scenario() -> tuple[BaseException, BaseException, dict[str, list[object]]]:
        reads = store.async_reads(max_size=1)
        await reads.open()
        try:
            await reads.query_rows(one)  # the pool's one connection, now known to work
            with psycopg.connect(postgis_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                              " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                              " AND application_name = '' AND backend_type = 'client backend'")
            with pytest.raises(StoreError) as lost:
                await reads.query_rows(one)
            with psycopg.connect(postgis_url, autocommit=True) as admin:
                admin.execute("ALTER TABLE requests RENAME TO requests_away")
            try:
                with pytest.raises(StoreError) as refused:
                    await reads.query_rows(one)
            finally:
                with psycopg.connect(postgis_url, autocommit=True) as admin:
                    admin.execute("ALTER TABLE requests_away RENAME TO requests")
            return lost.value, refused.value, await reads.query_rows(one)
        finally:
            await reads.close()

    try:
        lost, refused, after = asyncio.run(scenario())
    finally:
        store.close()
    assert isinstance(lost, StoreConnectionError) and "connection" in str(lost)
    assert not isinstance(refused, StoreConnectionError) and "refused" in str(refused)
    assert "requests" in str(refused)
    assert after["service_request_id"] == []
