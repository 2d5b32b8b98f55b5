"""Tests for clustering.partitioned: the single-machine labels, exactly, on a LocalCluster.

One ``LocalCluster`` of 2 worker processes (1 thread each) serves the whole module; the test
that kills a worker runs last. The reference is :func:`clustering.dbscan.dbscan`, itself
checked against scikit-learn in ``test_dbscan.py``; labels must be *equal* (same numbers),
which is stronger than equal up to renaming.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from clustering.dbscan import dbscan, dbscan_core
from clustering.partitioned import DEFAULT_MEMORY_PER_TILE, dbscan_partitioned, plan_tiles
from hotspot311.errors import InputError
from tests.clustering.test_dbscan import (
    DUMPING,
    FEET_PER_METRE,
    assert_border_rule,
    check_against_sklearn,
    city_like,
)

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def tile_of(xy: np.ndarray, origin: np.ndarray, side: float) -> np.ndarray:
    """The tile index pair of each point, as the partitioned DBSCAN assigns it."""
    return ((xy - origin) // side).astype(np.int64)


def assert_same(xy: np.ndarray, eps: float, min_samples: int, client: distributed.Client,
                **kwargs: object) -> np.ndarray:
    ours = dbscan_partitioned(xy, eps=eps, min_samples=min_samples, client=client, **kwargs)
    ref = dbscan(xy, eps=eps, min_samples=min_samples,
                 sample_weight=kwargs.get("sample_weight"))  # type: ignore[arg-type]
    np.testing.assert_array_equal(ours, ref)
    return ours


# ------------------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def dumping_feet() -> np.ndarray:
    if not DUMPING.exists():
        if os.environ.get("CI") == "true":
            raise AssertionError(f"{DUMPING} is missing in CI")
        pytest.skip(f"{DUMPING} not present")
    import pandas as pd
    import pyproj

    frame = pd.read_csv(DUMPING)
    to_feet = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:2272", always_xy=True)
    x, y = to_feet.transform(frame["X"].to_numpy(), frame["Y"].to_numpy())
    return np.column_stack([x, y])


@pytest.mark.parametrize(("eps_m", "min_samples", "tile_ft"),
                         [(100, 10, 15_000.0), (50, 5, 25_000.0)])
def test_philadelphia_points_equal_single_machine(
    dumping_feet: np.ndarray, client: distributed.Client, eps_m: float, min_samples: int,
    tile_ft: float,
) -> None:
    eps = eps_m * FEET_PER_METRE
    labels = assert_same(dumping_feet, eps, min_samples, client, tile_size=tile_ft,
                         block_rows=6_000)
    # clusters really cross tile edges, or the test would prove little
    tiles = tile_of(dumping_feet, dumping_feet.min(axis=0), tile_ft)
    crossing = 0
    for lab in range(labels.max() + 1):
        crossing += len(np.unique(tiles[labels == lab], axis=0)) > 1
    assert labels.max() >= 10 and crossing >= 1


def test_philadelphia_tiles_planned_from_memory_budget(
    dumping_feet: np.ndarray, client: distributed.Client
) -> None:
    stages: list[str] = []
    # a budget of about 4,000 points a tile forces many tiles on 22,156 points
    assert_same(dumping_feet, 100 * FEET_PER_METRE, 10, client, memory_per_tile=800_000,
                on_stage=stages.append)
    assert stages == ["planned", "split", "cores", "merged", "labelled"]


# ------------------------------------------------------------------------- synthetic data


def test_city_like_with_border_points(client: distributed.Client) -> None:
    xy = city_like(20_000, 7)
    labels = assert_same(xy, 150.0, 8, client, tile_size=9_000.0, block_rows=5_000)
    _, core = dbscan_core(xy, eps=150.0, min_samples=8)
    assert (~core & (labels >= 0)).sum() > 10
    assert_border_rule(xy, 150.0, labels, core)


def test_clusters_planted_across_tile_corners(client: distributed.Client) -> None:
    rng = np.random.default_rng(11)
    side = 1_000.0
    corners = np.array([[i * side, j * side] for i in range(1, 5) for j in range(1, 5)])
    blobs = [c + rng.normal(0, 40.0, (120, 2)) for c in corners]
    anchors = np.array([[0.0, 0.0], [5 * side, 5 * side]])  # fix the tile origin at (0, 0)
    exact = corners + np.array([[0.0, 0.0]])  # a point exactly on every corner
    xy = np.concatenate([anchors, *blobs, exact, rng.uniform(0, 5 * side, (400, 2))])
    xy = xy[rng.permutation(len(xy))]
    labels = assert_same(xy, 25.0, 6, client, tile_size=side, block_rows=900)
    tiles = tile_of(xy, xy.min(axis=0), side)
    four_tiles = [lab for lab in range(labels.max() + 1)
                  if len(np.unique(tiles[labels == lab], axis=0)) == 4]
    assert len(four_tiles) >= 12, "planted clusters should each span the four tiles at a corner"


def test_tile_without_core_points_gets_border_labels(client: distributed.Client) -> None:
    # a dense cluster ending just left of x=1000 (a tile edge); border points right of it
    rng = np.random.default_rng(5)
    core_blob = np.column_stack([rng.uniform(950, 999.9, 300), rng.uniform(0, 100, 300)])
    border = np.column_stack([np.full(20, 1_010.0), np.linspace(0, 100, 20)])
    xy = np.concatenate([[[0.0, 0.0]], core_blob, border, [[1_900.0, 1_900.0]]])
    labels = assert_same(xy, 12.0, 10, client, tile_size=1_000.0)
    _, core = dbscan_core(xy, eps=12.0, min_samples=10)
    right = xy[:, 0] >= 1_000.0
    assert not core[right].any() and (labels[right] >= 0).any()


def test_one_huge_cluster_across_many_tiles(client: distributed.Client) -> None:
    g = np.arange(0.0, 2_000.0, 7.0)
    xy = np.array(np.meshgrid(g, g)).reshape(2, -1).T
    labels = assert_same(xy, 10.0, 4, client, tile_size=200.0, block_rows=20_000)
    assert (labels == 0).all()


def test_all_points_identical(client: distributed.Client) -> None:
    xy = np.full((500, 2), [2_700_000.5, 250_000.25])
    assert (assert_same(xy, 1.0, 10, client, tile_size=1.0, block_rows=120) == 0).all()
    assert (assert_same(xy, 1.0, 501, client, block_rows=120) == -1).all()


def test_chain_exactly_eps_apart_along_a_tile_edge(client: distributed.Client) -> None:
    side, eps = 100.0, 5.0
    along = np.column_stack([np.arange(0.0, 400.0, eps), np.full(80, 2 * side)])
    across = np.column_stack([np.full(60, 3 * side), np.arange(50.0, 350.0, eps)])
    diagonal = np.arange(40)[:, None] * np.array([3.0, 4.0]) + np.array([150.0, 80.0])
    xy = np.concatenate([[[0.0, 0.0]], along, across, diagonal, [[400.0, 400.0]]])
    labels = assert_same(xy, eps, 3, client, tile_size=side)
    assert labels[1] == labels[80] >= 0, "the chain along the edge is one cluster"
    check_against_sklearn(xy, eps, 3)
    # just below eps nothing joins, on either side of the edge
    assert (assert_same(xy, eps * (1 - 1e-9), 3, client, tile_size=side) == -1).all()


def test_weights_and_dask_array_input(client: distributed.Client) -> None:
    import dask.array as da

    rng = np.random.default_rng(2)
    xy = city_like(6_000, 3)
    w = rng.integers(1, 4, len(xy)).astype(np.float64)
    assert_same(xy, 120.0, 9, client, sample_weight=w, tile_size=20_000.0)
    blocks = da.from_array(np.column_stack([xy, w]), chunks=(1_500, 3))
    ours = dbscan_partitioned(blocks, eps=120.0, min_samples=9, client=client)
    np.testing.assert_array_equal(ours, dbscan(xy, eps=120.0, min_samples=9, sample_weight=w))


def test_empty_input(client: distributed.Client) -> None:
    assert dbscan_partitioned(np.empty((0, 2)), eps=1.0, min_samples=2, client=client).size == 0


def test_bad_input_names_parameter_value_and_rule(client: distributed.Client) -> None:
    with pytest.raises(InputError, match=r"tile_size must be a finite number > 0; got -5"):
        dbscan_partitioned([[0, 0]], eps=1.0, min_samples=2, client=client, tile_size=-5.0)
    with pytest.raises(InputError, match=r"eps must be a finite number > 0"):
        dbscan_partitioned([[0, 0]], eps=0.0, min_samples=2, client=client)
    with pytest.raises(InputError, match=r"memory_per_tile must be a whole number of bytes"):
        dbscan_partitioned([[0, 0]], eps=1.0, min_samples=2, client=client,
                           memory_per_tile=0)


def test_plan_respects_the_budget() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 10_000, (50_000, 2))
    h = 50.0
    hist, _, _ = np.histogram2d(xy[:, 0], xy[:, 1], bins=[np.arange(0, 10_001, h)] * 2)
    budget_points = 3_000
    plan = plan_tiles((0, 0, 10_000, 10_000), eps=10.0, histogram=hist.astype(np.int64),
                      bin_side=h, memory_per_tile=budget_points * 200)
    assert 0 < plan.largest_tile <= budget_points
    assert plan.side >= 40.0 and plan.n_tiles > 10
    # a bigger budget, bigger tiles
    roomy = plan_tiles((0, 0, 10_000, 10_000), eps=10.0, histogram=hist.astype(np.int64),
                       bin_side=h, memory_per_tile=DEFAULT_MEMORY_PER_TILE)
    assert roomy.side > plan.side and roomy.n_tiles == 1


# ---------------------------------------------------------------- spilling to a directory


def test_spilled_run_equals_single_machine_and_leaves_no_files(
    dumping_feet: np.ndarray, client: distributed.Client, tmp_path: Path
) -> None:
    stages: list[str] = []
    info: dict = {}
    labels = assert_same(dumping_feet, 100 * FEET_PER_METRE, 10, client,
                         memory_per_tile=800_000, block_rows=5_000, spill_dir=tmp_path,
                         on_stage=stages.append, info=info)
    assert stages == ["planned", "split", "cores", "merged", "labelled"]
    assert info["tiles"] > 4 and labels.max() >= 10
    assert list(tmp_path.iterdir()) == []  # the run's files are removed


def test_spilled_dask_input_with_long_blocks_is_cut(
    client: distributed.Client, tmp_path: Path
) -> None:
    import dask.array as da

    xy = city_like(20_000, 11)
    lazy = da.from_array(xy, chunks=(20_000, 2))  # one long block
    info: dict = {}
    ours = dbscan_partitioned(lazy, eps=150.0, min_samples=8, client=client, tile_size=9_000.0,
                              block_rows=3_000, spill_dir=tmp_path, info=info)
    np.testing.assert_array_equal(ours, dbscan(xy, eps=150.0, min_samples=8))
    assert info["tiles"] > 1


# ------------------------------------------------------------------ a worker killed mid-run


def test_worker_killed_mid_run_gives_the_same_answer(client: distributed.Client) -> None:
    xy = city_like(20_000, 9)
    killed: list[int] = []

    def kill_busiest(stage: str) -> None:
        if stage != "merged":
            return
        # pass 1 is done and its tile states live on the workers; kill the busiest one
        has_what = client.has_what()
        address = max(has_what, key=lambda a: len(has_what[a]))
        assert has_what[address], "the tile states should be held by the workers"
        pid = client.run(os.getpid, workers=[address])[address]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    labels = assert_same(xy, 150.0, 8, client, tile_size=30_000.0, on_stage=kill_busiest)
    assert killed and labels.max() >= 5
    client.wait_for_workers(2, timeout=60)
    assert killed[0] not in client.run(os.getpid).values()


def test_worker_killed_mid_spilled_run_gives_the_same_answer(
    client: distributed.Client, tmp_path: Path
) -> None:
    client.wait_for_workers(2, timeout=60)
    xy = city_like(20_000, 13)
    killed: list[int] = []

    def kill_one(stage: str) -> None:
        if stage != "merged":
            return
        # pass 1's results (its tile states are in files) are held by the workers
        has_what = client.has_what()
        address = max(has_what, key=lambda a: len(has_what[a]))
        pid = client.run(os.getpid, workers=[address])[address]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    labels = assert_same(xy, 150.0, 8, client, tile_size=30_000.0, spill_dir=tmp_path,
                         on_stage=kill_one)
    assert killed and labels.max() >= 5
    client.wait_for_workers(2, timeout=60)
