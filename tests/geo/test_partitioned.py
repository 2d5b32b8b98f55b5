"""geo.partitioned: request files read as a dask-geopandas frame and joined per partition on
a LocalCluster give the single-machine join on every Philadelphia layer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest

from geo.joins import AreaIndex, build_index, locate
from geo.partitioned import join_partitioned, read_partitioned, source_files, write_by_month
from hotspot311.errors import InputError
from layers.profile import CityProfile
from layers.registry import load_layer, profile_specs
from tests.clustering.test_dbscan import DUMPING

distributed = pytest.importorskip("distributed")
dask_geopandas = pytest.importorskip("dask_geopandas")


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=":0") as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def indexes(phila: CityProfile) -> dict[str, AreaIndex]:
    return {s.key: build_index(load_layer(s, crs=phila.crs)) for s in profile_specs(phila)}


@pytest.fixture(scope="module")
def requests() -> pd.DataFrame:
    """The real 2024 illegal-dumping points as canonical requests (plus a few bad rows)."""
    if not DUMPING.exists():
        if os.environ.get("CI") == "true":
            raise AssertionError(f"{DUMPING} is missing in CI")
        pytest.skip(f"{DUMPING} not present")
    raw = pd.read_csv(DUMPING)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    frame = pd.DataFrame({
        "service_request_id": [f"D{i:06d}" for i in range(len(raw))],
        "service_name": "Illegal Dumping",
        "requested_datetime": (start + pd.to_timedelta(np.arange(len(raw)) % 366, unit="D"))
        .strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lon": raw["X"].round(7),
        "lat": raw["Y"].round(7),
    })
    frame.loc[:2, ["lon", "lat"]] = np.nan  # no coordinates: no area, not an error
    return frame


def write_parts(frame: pd.DataFrame, directory: Path, kind: str, parts: int = 3) -> Path:
    directory.mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(len(frame)), parts)):
        part = frame.iloc[chunk]
        if kind == "csv":
            part.to_csv(directory / f"part-{i}.csv", index=False)
        elif kind == "parquet":
            part.to_parquet(directory / f"part-{i}.parquet", index=False)
        else:
            geo = gpd.GeoDataFrame(part.drop(columns=["lon", "lat"]),
                                   geometry=gpd.points_from_xy(part["lon"], part["lat"]),
                                   crs="EPSG:4326")
            geo.to_parquet(directory / f"part-{i}.geoparquet", index=False)
    return directory


def single_machine(frame: pd.DataFrame, crs: str, indexes: dict[str, AreaIndex]) -> pd.DataFrame:
    to_city = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = to_city.transform(frame["lon"].to_numpy(), frame["lat"].to_numpy())
    return pd.DataFrame({k: locate(x, y, idx) for k, idx in indexes.items()},
                        index=frame["service_request_id"])


@pytest.mark.parametrize("kind", ["csv", "parquet", "geoparquet"])
def test_join_per_partition_equals_single_machine_on_every_layer(
    tmp_path: Path, client: distributed.Client, phila: CityProfile,
    indexes: dict[str, AreaIndex], requests: pd.DataFrame, kind: str,
) -> None:
    source = write_parts(requests, tmp_path / kind, kind)
    frame = read_partitioned(source if kind != "csv" else str(source / "*.csv"),
                             crs=phila.crs, blocksize=300_000)
    assert frame.npartitions >= 3
    joined = join_partitioned(frame, indexes).compute().set_index("service_request_id")
    expected = single_machine(requests, phila.crs, indexes)
    joined = joined.loc[expected.index]
    assert len(indexes) >= 5
    for key in indexes:
        ours = joined[key].to_numpy(dtype=object)
        theirs = expected[key].to_numpy(dtype=object)
        assert list(ours) == list(theirs), f"layer {key} differs"
        assert pd.notna(theirs).sum() > len(theirs) // 2 and len(set(theirs[pd.notna(theirs)])) > 3
    assert joined.iloc[:3][list(indexes)].isna().all().all()


def test_write_by_month_partitions_every_row(
    tmp_path: Path, client: distributed.Client, phila: CityProfile,
    indexes: dict[str, AreaIndex], requests: pd.DataFrame,
) -> None:
    source = write_parts(requests, tmp_path / "in", "parquet")
    joined = join_partitioned(read_partitioned(source, crs=phila.crs), indexes)
    out, rows, found = write_by_month(joined, tmp_path / "out", count=list(indexes))
    assert rows == len(requests)
    single = single_machine(requests, phila.crs, indexes)
    assert found == {k: int(single[k].notna().sum()) for k in indexes}
    months = sorted(p.relative_to(out).as_posix() for p in out.glob("year=*/month=*"))
    assert months == sorted(f"year=2024/month={m}" for m in range(1, 13))
    back = gpd.read_parquet(out / "year=2024" / "month=3")
    expected = requests[requests["requested_datetime"].str.startswith("2024-03")]
    assert len(back) == len(expected) and back.crs == phila.crs
    total = sum(len(gpd.read_parquet(p)) for p in out.glob("year=*/month=*"))
    assert total == len(requests)
    with pytest.raises(InputError, match="exists; give a new directory"):
        write_by_month(joined, out)


def test_bad_sources_are_named(tmp_path: Path, phila: CityProfile) -> None:
    with pytest.raises(InputError, match="is not a file, a directory or a glob"):
        source_files(tmp_path / "nowhere.csv")
    with pytest.raises(InputError, match=r"no \.csv, \.parquet or \.geoparquet files"):
        source_files(str(tmp_path / "*.csv"))
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(InputError, match="mixes CSV and Parquet"):
        source_files(tmp_path)
    with pytest.raises(InputError, match=r"columns \['lon', 'lat'\] are missing"):
        read_partitioned(tmp_path / "a.csv", crs=phila.crs)
