"""The Open311 round trip: our own GeoReport v2 server (issue 14) is the counterpart of
the Open311 feed connector (issue 13).

Store A holds real Philadelphia requests (the Graffiti Removal sample and the Parks &
Recreation requests) and is served by the real uvicorn server on a free port. Store B
registers it as an ``open311`` source and runs ``hotspot311 sync`` in a separate process,
as a user would. B must then publish exactly what A publishes, field by field. Then A
changes (new requests posted through the API, status updates ingested from a file) and
B syncs again: B follows, nothing doubled. Each store kind plays A and B at least once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from clustering.problems import ProblemAssigner, ProblemRules
from geo.geocode.geocoder import Geocoder
from geo.ingest.mapping import ColumnMapping
from geo.ingest.pipeline import ingest
from geo.store.api_keys import hash_key, new_key
from geo.store.base import Store, open_store
from hotspot311.api.app import create_app
from hotspot311.api.settings import ApiSettings
from layers.profile import CityProfile
from tests.conftest import REQUESTS
from tests.geo.store.stores import store_location
from tests.hotspot311.api.live import live_server

ROOT = Path(__file__).resolve().parents[3]
#: Every field of a GeoReport v2 request record.
FIELDS = ("service_request_id", "status", "status_notes", "service_name", "service_code",
          "description", "agency_responsible", "service_notice", "requested_datetime",
          "updated_datetime", "expected_datetime", "address", "address_id", "zipcode",
          "lat", "long", "media_url")
GRAFFITI = ColumnMapping(constants={"service_name": "Graffiti Removal",
                                    "agency_responsible": "Community Life Improvement Program"})


def location(kind: str, tmp_path: Path, name: str, request: pytest.FixtureRequest) -> str:
    """A new store of ``kind``: a directory, or a fresh PostGIS database's URL."""
    return store_location(kind, tmp_path, request, f"rt{name}")


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``hotspot311 ARGS`` in its own process."""
    return subprocess.run([sys.executable, "-m", "hotspot311", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@contextmanager
def serving(store: Store, tmp_path: Path, name: str, philly: Geocoder) -> Iterator[str]:
    """``store`` served by the real uvicorn server on a free port (the API base URL)."""
    settings = ApiSettings(media_dir=tmp_path / f"media-{name}", secret="s",
                           read_rate="100000/minute", write_rate="100000/minute",
                           track_rate="100000/minute")
    with live_server(create_app(store, settings=settings, geocoder=lambda: philly)) as url:
        yield f"{url}/open311/v2"


def published(base: str, key: str) -> dict[str, dict[str, Any]]:
    """Every request the server publishes to a keyed reader, by id (following the
    ``Link: rel="next"`` cursor page by page)."""
    out: dict[str, dict[str, Any]] = {}
    url: str | None = f"{base}/requests.json"
    params: dict[str, str] | None = {"start_date": "2000-01-01T00:00:00Z",
                                     "end_date": "2100-01-01T00:00:00Z", "page_size": "250"}
    with httpx.Client(headers={"X-API-Key": key}, timeout=60) as client:
        while url is not None:
            r = client.get(url, params=params)
            assert r.status_code == 200, r.text
            for rec in r.json():
                assert rec["service_request_id"] not in out, "a request on two pages"
                assert set(rec) == set(FIELDS)
                out[rec["service_request_id"]] = rec
            nxt = r.links.get("next")
            url, params = (nxt["url"], None) if nxt else (None, None)
    return out


def assert_same(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> None:
    """B publishes what A publishes, every field of every request."""
    assert sorted(b) == sorted(a)
    diffs = [(rid, f, a[rid][f], b[rid][f]) for rid in a for f in FIELDS
             if a[rid][f] != b[rid][f]]
    assert diffs == [], diffs[:10]


def synced_rows(out: subprocess.CompletedProcess[str]) -> int:
    """The row count of ``sync``'s summary line ("a311: 812 rows in 3 pages: …")."""
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("a311: "))
    return int(line.split()[1].replace(",", ""))


@pytest.mark.parametrize(("kind_a", "kind_b"), [
    pytest.param("embedded", "postgis", marks=pytest.mark.postgis),
    pytest.param("postgis", "embedded", marks=pytest.mark.postgis),
])
def test_serve_a_sync_b_equal_then_follow_changes(
        kind_a: str, kind_b: str, tmp_path: Path, request: pytest.FixtureRequest,
        phila: CityProfile, philly: Geocoder) -> None:
    loc_a = location(kind_a, tmp_path, "a", request)
    loc_b = location(kind_b, tmp_path, "b", request)
    store_a = open_store(loc_a, phila)
    store_b = open_store(loc_b, phila)
    problems = ProblemAssigner(ProblemRules.for_city(phila))
    ingest(REQUESTS / "graffiti-sample.json", store_a, mapping=GRAFFITI, problems=problems)
    ingest(REQUESTS / "parks-maintenance.csv", store_a, problems=problems)
    n_a = len(store_a.request_columns(["service_request_id"]))
    assert n_a > 700
    partner, liaison, reader_b = new_key(), new_key(), new_key()
    store_a.add_api_key("city-b", "partner", hash_key(partner))
    store_a.add_api_key("ann", "liaison", hash_key(liaison))
    store_b.add_api_key("reader", "partner", hash_key(reader_b))
    env = {"A311_KEY": partner}
    try:
        with serving(store_a, tmp_path, "a", philly) as url_a, \
                serving(store_b, tmp_path, "b", philly) as url_b:
            added = cli("--store", loc_b, "sources", "add", "a311", "--kind", "open311",
                        "--url", url_a, "--token-env", "A311_KEY", "--rate-limit", "1000",
                        "--page-size", "200", "--option", "window=updated",
                        "--option", "paging=yes")
            assert added.returncode == 0, added.stderr
            first = cli("--store", loc_b, "sync", "a311", "--since", "2000-01-01", env=env)
            assert synced_rows(first) >= n_a
            pub_a = published(url_a, partner)
            assert len(pub_a) == n_a
            assert_same(pub_a, published(url_b, reader_b))
            assert len(store_b.quarantine()) == 0
            # the service catalogue came along
            services_a = httpx.get(f"{url_a}/services.json").json()
            assert store_b.source_services("a311") == services_a

            # A changes: three posts through the API, five status updates from a file
            posted = []
            for i, (lat, lon) in enumerate([(39.9526, -75.1652), (39.9800, -75.1300),
                                            (40.0100, -75.1500)]):
                r = httpx.post(f"{url_a}/requests.json", data={
                    "api_key": liaison, "service_code": "street-defect", "lat": str(lat),
                    "long": str(lon), "description": f"pothole <b>{i}</b> =1+1"},
                    headers={"Idempotency-Key": f"rt-{i}"})
                assert r.status_code == 201, r.text
                posted.append(r.json()[0]["service_request_id"])
            changed = sorted(pub_a)[:5]
            when = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
            updates = []
            for rid in changed:
                rec = dict(pub_a[rid])
                rec["status"] = "open" if rec["status"] == "closed" else "closed"
                rec["status_notes"] = "reopened by the round trip" if rec["status"] == "open" \
                    else "closed by the round trip"
                rec["updated_datetime"] = when.isoformat()
                updates.append(rec)
            file = tmp_path / "updates.json"
            file.write_text(json.dumps(updates), encoding="utf-8")
            ingested = cli("--store", loc_a, "ingest", str(file))
            assert ingested.returncode == 0, ingested.stderr

            second = cli("--store", loc_b, "sync", "a311", env=env)
            # only what changed since the watermark (plus at most a boundary overlap)
            assert 8 <= synced_rows(second) < 50
            pub_a2 = published(url_a, partner)
            assert len(pub_a2) == n_a + 3 and set(posted) <= set(pub_a2)
            assert [pub_a2[r]["status"] for r in changed] != [pub_a[r]["status"]
                                                              for r in changed]
            pub_b2 = published(url_b, reader_b)
            assert_same(pub_a2, pub_b2)
            assert pub_b2[posted[0]]["description"] == "pothole <b>0</b> =1+1"
            # nothing doubled: a third sync reads nothing new and B keeps its size
            third = cli("--store", loc_b, "sync", "a311", env=env)
            assert synced_rows(third) < 10
            assert len(store_b.request_columns(["service_request_id"])) == n_a + 3
            assert_same(pub_a2, published(url_b, reader_b))
    finally:
        store_a.close()
        store_b.close()
