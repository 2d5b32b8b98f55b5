"""geo.ingest.parts: the year/month GeoParquet of ``join --engine dask`` ingested into both
stores. A store's requests exported, joined on a LocalCluster into year/month parts and
ingested into an empty store give the same requests; ingested into the store they came
from, or a second time, they change nothing; the counts add up to the rows read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from geo.ingest.export import export_requests
from geo.ingest.partitioned import ingest_partitioned
from geo.ingest.parts import expand_paths, read_part
from geo.ingest.pipeline import ingest
from geo.joins import build_index
from geo.partitioned import join_partitioned, read_partitioned, write_by_month
from geo.store.base import Store
from geo.store.embedded import EmbeddedStore
from hotspot311.errors import InputError
from layers.profile import CityProfile
from tests.geo.store.stores import NOW, open_test_store
from tests.geo.store.test_postgis_parallel import parks_files

distributed = pytest.importorskip("distributed")

COLUMNS = ["service_request_id", "status", "service_name", "requested_datetime",
           "updated_datetime", "closed_datetime", "address", "zipcode", "lat", "lon", "x", "y",
           "extra", "row_hash"]


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=":0") as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture(params=["embedded", pytest.param("postgis", marks=pytest.mark.postgis)])
def target(request: pytest.FixtureRequest, tmp_path: Path, phila: CityProfile
           ) -> Iterator[Store]:
    """An empty store of each kind for Philadelphia."""
    store = open_test_store(request.param, tmp_path / "target", request, phila)
    try:
        yield store
    finally:
        store.close()


def table(store: Store, phila: CityProfile) -> pd.DataFrame:
    frame = pd.DataFrame(store.requests())
    cols = [c for c in [*COLUMNS, *phila.layer_keys] if c in frame.columns]
    out = frame[cols].sort_values("service_request_id").reset_index(drop=True)
    out["row_hash"] = out["row_hash"].astype("uint64")
    return out.astype({c: object for c in out.columns if c != "row_hash"}).where(
        out.notna(), None)


def year_month_parts(tmp_path: Path, source: EmbeddedStore, client: distributed.Client
                     ) -> Path:
    """The source's requests exported and joined on the cluster into year/month parts."""
    exported = tmp_path / "export.parquet"
    export_requests(source.requests(), exported, fmt="parquet")
    indexes = {k: build_index(source.areas(k)) for k in source.layer_keys()}
    frame = join_partitioned(read_partitioned(exported, crs=source.profile.crs), indexes)
    out, rows, _ = write_by_month(frame, tmp_path / "parts", client=client)
    assert rows == source.count()
    return out


def run(store: Store, paths: list[Path], client: distributed.Client) -> list:
    if store.describe().startswith("PostGIS"):
        from geo.store.postgis_parallel import ingest_parallel

        return ingest_parallel(paths, store, client=client, now=NOW)  # type: ignore[arg-type]
    return list(ingest_partitioned(paths, store, client=client, now=NOW))


def test_year_month_parts_ingest_into_both_stores(
    tmp_path: Path, client: distributed.Client, target: Store, phila: CityProfile
) -> None:
    source = EmbeddedStore(tmp_path / "source", phila)
    for path in parks_files(tmp_path / "in"):
        ingest(path, source, now=NOW)
    parts = expand_paths([year_month_parts(tmp_path, source, client)])
    assert len(parts) > 12 and all("year=" in str(p) for p in parts)
    years = [int(p.parent.parent.name.split("=")[1]) for p in parts]
    months = [int(p.parent.name.split("=")[1]) for p in parts]
    assert list(zip(years, months, strict=True)) == sorted(zip(years, months, strict=True))

    first = run(target, parts, client)
    assert all(r.balanced for r in first)
    assert sum(r.rows_read for r in first) == source.count()
    assert sum(r.result.inserted for r in first) == source.count()
    pd.testing.assert_frame_equal(table(target, phila), table(source, phila))

    before = table(target, phila)
    again = run(target, parts, client)
    assert sum(r.result.unchanged for r in again) == source.count()
    assert sum(r.result.inserted + r.result.updated for r in again) == 0
    pd.testing.assert_frame_equal(table(target, phila), before)


def test_parts_of_stored_requests_change_nothing(
    tmp_path: Path, client: distributed.Client, phila: CityProfile
) -> None:
    source = EmbeddedStore(tmp_path / "source", phila)
    for path in parks_files(tmp_path / "in"):
        ingest(path, source, now=NOW)
    before = table(source, phila)
    parts = expand_paths([year_month_parts(tmp_path, source, client)])
    reports = list(ingest_partitioned(parts, source, client=client, now=NOW))
    assert sum(r.result.unchanged for r in reports) == sum(r.rows_read for r in reports) \
        == len(before)
    pd.testing.assert_frame_equal(table(source, phila), before)


def test_read_part_leaves_out_what_the_store_derives(tmp_path: Path, phila: CityProfile
                                                     ) -> None:
    frame = pd.DataFrame({"service_request_id": ["a"], "requested_datetime":
                          [pd.Timestamp("2024-05-01 10:00", tz="UTC")], "lat": [39.95],
                          "lon": [-75.15], "x": [1.0], "y": [2.0], "year": [2024],
                          "month": [5], phila.layer_keys[0]: ["7"],
                          "extra": ['{"ward_note": "=cmd", "lat": "clash"}']})
    path = tmp_path / "p.parquet"
    frame.to_parquet(path)
    raw = read_part(path, drop=phila.layer_keys).frame
    assert list(raw.columns) == ["_source_row", "service_request_id", "requested_datetime",
                                 "lat", "lon", "ward_note"]
    assert raw.loc[0, "requested_datetime"] == "2024-05-01T10:00:00+00:00"
    assert raw.loc[0, "lat"] == "39.95" and raw.loc[0, "ward_note"] == "=cmd"


def test_bad_parts_are_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"holds no \.parquet parts"):
        expand_paths([tmp_path / "empty"])
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(InputError, match=r"bad\.parquet: cannot be read as Parquet"):
        read_part(bad)
