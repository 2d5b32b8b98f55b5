"""A request file at a URL: read as ``ingest`` reads it, skipped while unchanged (ETag)."""

from __future__ import annotations

import json

from geo.feeds.config import make_config
from geo.feeds.engine import sync
from geo.store.base import Store
from tests.geo.feeds.conftest import FAST, NOW
from tests.geo.feeds.servers import GRAFFITI, Table, file_route, serve


def test_file_synced_once_until_it_changes(embedded_store: Store) -> None:
    records = json.loads(GRAFFITI.read_text(encoding="utf-8"))
    body = {"data": json.dumps(records).encode()}
    with serve(file_route(lambda: body["data"]), Table([])) as server:
        embedded_store.save_source(make_config(
            "phl-file", kind="file_url", url=f"{server.url}/requests.json",
            sets=["service_name=Graffiti Removal"], rate_limit=1000))
        first = sync(embedded_store, "phl-file", now=NOW, client_options=FAST)
        assert (first.rows, first.result.inserted + sum(first.result.quarantined.values())) == (
            528, 528)
        mark = embedded_store.source("phl-file").state.watermark
        assert mark is not None and mark["etag"].strip('"') == mark["sha1"]
        second = sync(embedded_store, "phl-file", now=NOW, client_options=FAST)
        assert (second.rows, second.pages) == (0, 0)
        assert server.log[-1] == "/requests.json"  # asked, answered 304
        records[0]["status_notes"] = "changed on the server"
        body["data"] = json.dumps(records).encode()
        third = sync(embedded_store, "phl-file", now=NOW, client_options=FAST)
    assert (third.rows, third.result.updated, third.result.unchanged) == (528, 1, 527 - sum(
        third.result.quarantined.values()))
    stored = embedded_store.requests().set_index("service_request_id")
    assert stored.loc[str(records[0]["service_request_id"]), "status_notes"] == \
        "changed on the server"
