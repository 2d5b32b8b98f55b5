"""Stored hotspot runs round-trip through both stores."""

from __future__ import annotations

from datetime import UTC, datetime

import geopandas as gpd
import pandas as pd
import pytest

from clustering.selection import HotspotQuery
from geo.store.base import Store
from hotspot311.errors import InputError
from tests.clustering.history_cases import cluster, frame, run
from tests.geo.store import stores

store = stores.store  # the two-store fixture, registered in this module

T0 = datetime(2025, 7, 1, 9, tzinfo=UTC)


def test_round_trip(store: Store) -> None:
    data = frame(cluster("A", 0, 0, 8), cluster("B", 3000, 0, 5))
    result = run(data)
    assert len(result.hotspots) == 2
    assert store.runs().empty
    first = store.save_run(result, created_at=T0)
    second = store.save_run(run(data.iloc[:10]), created_at=T0.replace(hour=10))
    assert (first, second) == (1, 2)

    runs = store.runs()
    assert runs["run_id"].tolist() == [1, 2]
    row = runs.iloc[0]
    assert row["created_at"] == pd.Timestamp(T0)
    assert (row["n_requests"], row["n_selected"], row["n_hotspots"]) == (13, 13, 2)
    assert row["max_updated"] == data["updated_datetime"].max().isoformat()
    assert runs.iloc[1]["n_requests"] == 10
    assert runs["params_key"].nunique() == 1

    params, hotspots, members = store.load_run(first)
    assert params == result.query.params()
    assert isinstance(hotspots, gpd.GeoDataFrame) and hotspots.crs == result.hotspots.crs
    expected = pd.DataFrame(result.hotspots)
    got = pd.DataFrame(hotspots)
    assert got.columns.tolist() == expected.columns.tolist()
    pd.testing.assert_frame_equal(
        got.drop(columns="geometry"), expected.drop(columns="geometry"), check_dtype=False
    )
    assert hotspots.geometry.geom_equals_exact(result.hotspots.geometry, tolerance=0).all()
    assert sorted(members["service_request_id"]) == sorted(
        result.members.loc[result.members["hotspot_id"].notna(), "service_request_id"]
    )


def test_unknown_run(store: Store) -> None:
    store.save_run(run(frame(cluster("A", 0, 0, 8))), created_at=T0)
    with pytest.raises(InputError, match=r"run: got 7; stored runs: \[1\]"):
        store.load_run(7)


def test_rerun_from_stored_params_gives_same_hotspots(store: Store) -> None:
    data = frame(cluster("A", 0, 0, 8), cluster("B", 3000, 0, 5), cluster("C", 9000, 0, 2))
    run_id = store.save_run(run(data), created_at=T0)
    params, hotspots, _ = store.load_run(run_id)
    again = run(data, HotspotQuery.from_params(params))
    assert again.hotspots["hotspot_id"].tolist() == hotspots["hotspot_id"].tolist()
    assert again.hotspots["member_ids"].tolist() == hotspots["member_ids"].tolist()


def test_empty_run(store: Store) -> None:
    run_id = store.save_run(run(frame(cluster("A", 0, 0, 2))), created_at=T0)
    _, hotspots, members = store.load_run(run_id)
    assert hotspots.empty and members.empty
    assert store.runs()["n_hotspots"].tolist() == [0]
