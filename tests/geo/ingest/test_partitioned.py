"""geo.ingest.partitioned on a LocalCluster, against both stores (embedded and PostGIS): the
counts of a file-by-file ingest, the quarantine kept, and a second run changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from geo.ingest.partitioned import ingest_partitioned
from geo.store.base import Store
from tests.geo.store.stores import NOW, normalized, write_csv
from tests.geo.store.stores import store as store  # the fixture: both stores

distributed = pytest.importorskip("distributed")

LONLAT = (-75.153, 39.95)


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=":0") as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def row(rid: str, *, upd: str = "2023-05-02 10:00", req: str = "2023-05-01 10:00",
        status: str = "open") -> dict[str, object]:
    return {"service_request_id": rid, "requested_datetime": req, "updated_datetime": upd,
            "status": status, "description": "pothole", "lon": LONLAT[0], "lat": LONLAT[1]}


def files(directory: Path) -> list[Path]:
    return [
        write_csv(directory / "a.csv", [row("r1"), row("r2"), row("r3"), row("")]),
        write_csv(directory / "b.csv", [row("r4"), row("r5"),
                                        row("r2", upd="2023-06-01 10:00", status="closed")]),
        write_csv(directory / "c.csv", [row("r6"), row("r1"), row("r7", req="not a time")]),
    ]


def totals(reports: list) -> dict[str, int]:
    return {
        "read": sum(r.rows_read for r in reports),
        "inserted": sum(r.result.inserted for r in reports),
        "updated": sum(r.result.updated for r in reports),
        "unchanged": sum(r.result.unchanged for r in reports),
        "quarantined": sum(sum(r.result.quarantined.values()) for r in reports),
    }


def test_partitioned_ingest_twice_changes_nothing(
    tmp_path: Path, store: Store, client: distributed.Client
) -> None:
    paths = files(tmp_path)
    first = list(ingest_partitioned(paths, store, client=client, now=NOW))
    assert [r.path for r in first] == paths and all(r.balanced for r in first)
    assert totals(first) == {"read": 10, "inserted": 6, "updated": 1, "unchanged": 1,
                             "quarantined": 2}
    stored = store.requests().set_index("service_request_id")
    assert stored.loc["r2", "status"] == "closed" and len(stored) == 6
    reasons = sorted(store.quarantine()["reason"])
    assert reasons == ["missing_id", "unparseable_time"]
    before = normalized(store.requests())
    batches = len(store.batches())

    again = list(ingest_partitioned(paths, store, client=client, now=NOW))
    t = totals(again)
    assert t["read"] == 10 and t["inserted"] == t["updated"] == 0
    assert t["unchanged"] + t["quarantined"] == t["read"]
    pd.testing.assert_frame_equal(normalized(store.requests()), before)
    assert sorted(store.quarantine()["reason"]) == reasons
    assert len(store.batches()) >= batches
