"""Tests for clustering.dbscan: equality with scikit-learn, adversarial inputs, errors.

The reference is ``sklearn.cluster.DBSCAN(algorithm="kd_tree")``: with 11 points or fewer
scikit-learn's ``"auto"`` switches to brute force, whose ``|x|² - 2x·y + |y|²`` distances
are not exact at the ``eps`` boundary, while its KD-tree applies the same
``dx*dx + dy*dy <= eps*eps`` test as ours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import DBSCAN as SkDBSCAN
from sklearn.neighbors import KDTree

from clustering.dbscan import DBSCAN, dbscan, dbscan_core
from hotspot311.errors import InputError

DUMPING = Path("/work/shared/data/philadelphia/requests/illegal-dumping-2024-points.csv")
FEET_PER_METRE = 1 / 0.3048


def sklearn_reference(
    xy: npt.ArrayLike,
    eps: float,
    min_samples: int,
    sample_weight: npt.ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and core mask from scikit-learn's exact (KD-tree) DBSCAN."""
    xy = np.asarray(xy, dtype=np.float64)
    model = SkDBSCAN(eps=eps, min_samples=min_samples, algorithm="kd_tree")
    model.fit(xy, sample_weight=sample_weight)
    core = np.zeros(len(xy), dtype=bool)
    core[model.core_sample_indices_] = True
    return model.labels_.astype(np.int64), core


def assert_same_core_partition(
    labels: np.ndarray, core: np.ndarray, ref_labels: np.ndarray, ref_core: np.ndarray
) -> None:
    """Same core points, and the same partition of them up to relabelling (a bijection)."""
    np.testing.assert_array_equal(core, ref_core, err_msg="core masks differ")
    ours = labels[core]
    theirs = ref_labels[core]
    assert (ours >= 0).all() and (theirs >= 0).all(), "a core point is labelled noise"
    forward: dict[int, int] = {}
    backward: dict[int, int] = {}
    for a, b in zip(ours.tolist(), theirs.tolist(), strict=True):
        assert forward.setdefault(a, b) == b, f"our cluster {a} is split in scikit-learn"
        assert backward.setdefault(b, a) == a, f"scikit-learn cluster {b} is split in ours"
    # non-core points: noise exactly where scikit-learn says noise
    np.testing.assert_array_equal(labels[~core] == -1, ref_labels[~core] == -1)


def assert_border_rule(xy: np.ndarray, eps: float, labels: np.ndarray, core: np.ndarray) -> None:
    """Every border point has the smallest label among the core points within eps."""
    xy = np.asarray(xy, dtype=np.float64)
    border = np.flatnonzero(~core & (labels >= 0))
    noise = np.flatnonzero(labels == -1)
    core_idx = np.flatnonzero(core)
    if core_idx.size == 0:
        assert border.size == 0
        return
    tree = KDTree(xy[core_idx])
    for i in border:
        near = core_idx[tree.query_radius(xy[i : i + 1], r=eps)[0]]
        d2 = ((xy[near] - xy[i]) ** 2).sum(axis=1)
        near = near[d2 <= eps * eps]
        assert near.size, f"border point {i} has no core point within eps"
        assert labels[i] == labels[near].min()
    for i in noise:
        near = core_idx[tree.query_radius(xy[i : i + 1], r=eps)[0]]
        d2 = ((xy[near] - xy[i]) ** 2).sum(axis=1)
        assert not (d2 <= eps * eps).any(), f"noise point {i} has a core point within eps"


def check_against_sklearn(
    xy: npt.ArrayLike,
    eps: float,
    min_samples: int,
    sample_weight: npt.ArrayLike | None = None,
) -> np.ndarray:
    """Run both, assert equality (partition, core mask, and label numbers); return labels."""
    xy = np.asarray(xy, dtype=np.float64)
    labels, core = dbscan_core(xy, eps=eps, min_samples=min_samples, sample_weight=sample_weight)
    ref_labels, ref_core = sklearn_reference(xy, eps, min_samples, sample_weight)
    assert labels.dtype == np.int64 and labels.shape == (len(xy),)
    assert_same_core_partition(labels, core, ref_labels, ref_core)
    # Our numbering (first core point by input index) and border rule (smallest label)
    # are the order scikit-learn's expansion produces, so the labels match exactly.
    np.testing.assert_array_equal(labels, ref_labels)
    return labels


def city_like(n: int, seed: int) -> np.ndarray:
    """Uniform background, tight clusters and many duplicate addresses (feet)."""
    rng = np.random.default_rng(seed)
    n_bg, n_cl = n // 3, n // 3
    n_dup = n - n_bg - n_cl
    lo, hi = np.array([2_660_000.0, 200_000.0]), np.array([2_750_000.0, 310_000.0])
    bg = rng.uniform(lo, hi, (n_bg, 2))
    centres = rng.uniform(lo, hi, (max(n // 200, 1), 2))
    cl = centres[rng.integers(0, len(centres), n_cl)] + rng.normal(0, 150, (n_cl, 2))
    addresses = rng.uniform(lo, hi, (max(n // 20, 1), 2)).round(1)
    dup = addresses[rng.integers(0, len(addresses), n_dup)]
    xy = np.concatenate([bg, cl, dup])
    return xy[rng.permutation(n)]


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def dumping_feet() -> np.ndarray:
    if not DUMPING.exists():
        pytest.skip(f"{DUMPING} not present")
    pd = pytest.importorskip("pandas")
    pyproj = pytest.importorskip("pyproj")
    frame = pd.read_csv(DUMPING)
    to_feet = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:2272", always_xy=True)
    x, y = to_feet.transform(frame["X"].to_numpy(), frame["Y"].to_numpy())
    xy = np.column_stack([x, y])
    assert len(xy) == 22_156
    return xy


@pytest.mark.parametrize(("eps_m", "min_samples"), [(50, 5), (100, 10), (200, 25)])
def test_philadelphia_illegal_dumping_matches_sklearn(
    dumping_feet: np.ndarray, eps_m: float, min_samples: int
) -> None:
    eps = eps_m * FEET_PER_METRE
    labels = check_against_sklearn(dumping_feet, eps, min_samples)
    assert labels.max() >= 1, "expected several hotspots in a year of illegal dumping"
    assert (labels == -1).any()


# ----------------------------------------------------------------------- generated data


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("eps", "min_samples"), [(100.0, 5), (328.084, 10), (20.0, 3)])
def test_city_like_matches_sklearn(seed: int, eps: float, min_samples: int) -> None:
    xy = city_like(20_000, seed)
    labels, core = dbscan_core(xy, eps=eps, min_samples=min_samples)
    check_against_sklearn(xy, eps, min_samples)
    assert_border_rule(xy, eps, labels, core)


def test_city_like_border_points_exist_and_follow_rule() -> None:
    xy = city_like(5_000, 7)
    labels, core = dbscan_core(xy, eps=150.0, min_samples=8)
    border = ~core & (labels >= 0)
    assert border.sum() > 10, "the data should have border points for this test to mean much"
    assert_border_rule(xy, 150.0, labels, core)


def test_coarse_grid_path_matches_sklearn() -> None:
    # eps tiny against the extent: the grid is coarsened (cells wider than eps, not tight)
    rng = np.random.default_rng(3)
    base = rng.integers(0, 10**10, (300, 2)).astype(np.float64)
    right, up = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    xy = np.concatenate([base, base + right, base[:100] + up, base[:50]])
    check_against_sklearn(xy, 1.0, 3)
    check_against_sklearn(xy, 1.0, 2)


# ------------------------------------------------------------------------- adversarial


def test_all_points_identical() -> None:
    xy = np.full((500, 2), [2_700_000.5, 250_000.25])
    labels = check_against_sklearn(xy, 1.0, 10)
    assert (labels == 0).all()
    labels = check_against_sklearn(xy, 1.0, 501)
    assert (labels == -1).all()


def test_line_exactly_eps_apart_is_inclusive() -> None:
    xy = np.column_stack([np.arange(0, 50, 5), np.zeros(10)]).astype(np.float64)
    labels, core = dbscan_core(xy, eps=5, min_samples=3)
    assert (labels == 0).all()
    assert core.tolist() == [False] + [True] * 8 + [False]
    check_against_sklearn(xy, 5.0, 3)
    # just below eps nobody is a neighbour
    assert (dbscan(xy, eps=4.999, min_samples=2) == -1).all()


def test_diagonal_exactly_eps_apart_is_inclusive() -> None:
    # (3, 4) steps are exactly 5 apart and cross grid cells diagonally
    steps = np.arange(30)[:, None] * np.array([3.0, 4.0])
    xy = np.concatenate([steps, steps + np.array([100.0, 0.0]), [[1000.0, 1000.0]]])
    labels = check_against_sklearn(xy, 5.0, 3)
    assert set(labels.tolist()) == {0, 1, -1}
    check_against_sklearn(xy, 4.999999, 2)


def test_lattice_at_many_eps() -> None:
    g = np.arange(12, dtype=np.float64)
    xy = np.array(np.meshgrid(g, g)).reshape(2, -1).T * 2.0
    for eps in (1.0, 2.0, 4.0, 6.0, 10.0, 2.0 * 5.0):
        for min_samples in (1, 3, 5, 9, 13):
            check_against_sklearn(xy, eps, min_samples)


@pytest.mark.parametrize("eps", [1e-12, 1e-300, 5e-324])
def test_tiny_eps_only_duplicates_are_neighbours(eps: float) -> None:
    rng = np.random.default_rng(5)
    base = rng.uniform(0, 1000, (200, 2))
    xy = np.concatenate([base, base[:40], base[:20]])
    labels = check_against_sklearn(xy, eps, 2)
    assert labels.max() + 1 == 40


@pytest.mark.parametrize("eps", [1e6, 1e100])
def test_huge_eps_one_cluster(eps: float) -> None:
    xy = city_like(2_000, 11)
    labels = check_against_sklearn(xy, eps, 5)
    assert (labels == 0).all()


def test_one_point() -> None:
    assert dbscan([[1.0, 2.0]], eps=1.0, min_samples=1).tolist() == [0]
    assert dbscan([[1.0, 2.0]], eps=1.0, min_samples=2).tolist() == [-1]


@pytest.mark.parametrize("empty", [np.empty((0, 2)), [], np.empty(0)])
def test_empty_input(empty: npt.ArrayLike) -> None:
    labels = dbscan(empty, eps=1.0, min_samples=2)
    assert labels.shape == (0,) and labels.dtype == np.int64
    model = DBSCAN(eps=1.0, min_samples=2).fit(empty)
    assert model.n_clusters_ == 0 and model.core_sample_indices_.shape == (0,)


def test_input_is_not_modified() -> None:
    xy = city_like(1_000, 2)
    before = xy.copy()
    dbscan(xy, eps=100.0, min_samples=5)
    np.testing.assert_array_equal(xy, before)


def test_million_points_at_one_address() -> None:
    xy = np.tile([2_690_000.0, 240_000.0], (1_000_000, 1))
    labels, core = dbscan_core(xy, eps=328.084, min_samples=10)
    assert core.all()
    assert (labels == 0).all()
    assert (dbscan(xy, eps=328.084, min_samples=1_000_001) == -1).all()


def test_dense_blob_plus_far_points_matches_sklearn() -> None:
    rng = np.random.default_rng(9)
    blob = rng.normal(0.0, 1.0, (10_000, 2))
    far = rng.uniform(-500, 500, (2_000, 2))
    xy = np.concatenate([blob, far])
    check_against_sklearn(xy, 0.05, 15)
    check_against_sklearn(xy, 0.4, 300)


# ----------------------------------------------------------------------- sample weight


def test_sample_weight_matches_sklearn() -> None:
    rng = np.random.default_rng(4)
    xy = city_like(5_000, 4)
    weights = rng.integers(0, 6, len(xy)).astype(np.float64)
    for eps, min_samples in [(100.0, 10), (328.084, 25), (30.0, 4)]:
        check_against_sklearn(xy, eps, min_samples, weights)


def test_negative_and_heavy_weights_match_sklearn() -> None:
    rng = np.random.default_rng(6)
    xy = np.round(rng.uniform(0, 50, (3_000, 2)), 0)
    weights = rng.choice([-3.0, -1.0, 0.0, 1.0, 2.0, 12.0], len(xy))
    for eps, min_samples in [(1.0, 3), (2.0, 10), (5.0, 12)]:
        check_against_sklearn(xy, eps, min_samples, weights)


def test_heavy_point_is_core_by_itself() -> None:
    labels, core = dbscan_core(
        [[0.0, 0.0], [100.0, 0.0]], eps=1.0, min_samples=5, sample_weight=[5.0, 1.0]
    )
    assert core.tolist() == [True, False] and labels.tolist() == [0, -1]


# ------------------------------------------------------------------------ estimator


def test_estimator_attributes_match_sklearn() -> None:
    xy = city_like(4_000, 8)
    ours = DBSCAN(eps=120.0, min_samples=6).fit(xy)
    theirs = SkDBSCAN(eps=120.0, min_samples=6, algorithm="kd_tree").fit(xy)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    np.testing.assert_array_equal(ours.core_sample_indices_, theirs.core_sample_indices_)
    assert ours.n_clusters_ == len(set(theirs.labels_.tolist()) - {-1})
    assert ours.core_sample_indices_.dtype == np.int64
    np.testing.assert_array_equal(ours.fit_predict(xy), theirs.labels_)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("xy", "pattern"),
    [
        ([[0.0, 0.0], [1.0, 1.0], [np.nan, 2.0]], r"row 2: \(nan, 2\.0\)"),
        ([[0.0, np.inf], [1.0, 1.0]], r"row 0: \(0\.0, inf\)"),
        ([[0.0, 0.0], [-np.inf, 1.0]], r"row 1"),
        ([[0.0, 0.0, 0.0]], r"xy must have shape \(n, 2\); got shape \(1, 3\)"),
        ([1.0, 2.0], r"xy must have shape \(n, 2\); got shape \(2,\)"),
        ([["a", "b"]], r"xy must be an \(n, 2\) array of numbers"),
        ([[1e200, 0.0]], r"within ±1e\+150.*row 0"),
    ],
)
def test_bad_points_raise(xy: object, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        dbscan(xy, eps=1.0, min_samples=2)  # type: ignore[arg-type]


def test_many_bad_rows_are_counted() -> None:
    xy = np.zeros((20, 2))
    xy[3:15, 0] = np.nan
    with pytest.raises(InputError, match=r"12 rows do not \(row 3.*and 7 more"):
        dbscan(xy, eps=1.0, min_samples=2)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"eps": 0.0, "min_samples": 2}, r"eps must be a finite number > 0; got 0\.0"),
        ({"eps": -1.0, "min_samples": 2}, r"eps .* got -1\.0"),
        ({"eps": float("nan"), "min_samples": 2}, r"eps .* got nan"),
        ({"eps": float("inf"), "min_samples": 2}, r"eps .* got inf"),
        ({"eps": "1", "min_samples": 2}, r"eps .* got '1'"),
        ({"eps": 1.0, "min_samples": 0}, r"min_samples must be an integer >= 1; got 0"),
        ({"eps": 1.0, "min_samples": 2.5}, r"min_samples .* got 2\.5"),
        ({"eps": 1.0, "min_samples": True}, r"min_samples .* got True"),
        ({"eps": 1.0, "min_samples": 2, "sample_weight": [1.0]}, r"shape \(3,\).*got shape \(1,\)"),
        ({"eps": 1.0, "min_samples": 2, "sample_weight": [1.0, np.nan, 1.0]}, r"index 1: nan"),
        ({"eps": 1.0, "min_samples": 2, "sample_weight": ["x", "y", "z"]}, r"sample_weight must"),
    ],
)
def test_bad_parameters_raise(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        dbscan(np.zeros((3, 2)), **kwargs)  # type: ignore[arg-type]


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(InputError, match=r"3 problems") as info:
        dbscan([[np.nan, 0.0]], eps=-1.0, min_samples=0)
    assert len(info.value.problems) == 3
    assert isinstance(info.value, ValueError)


def test_numpy_scalars_accepted() -> None:
    labels = dbscan(np.zeros((3, 2)), eps=np.float32(1.0), min_samples=np.int64(2))  # type: ignore[arg-type]
    assert labels.tolist() == [0, 0, 0]


# ------------------------------------------------------------------------- property


coordinate = st.integers(-12, 12).map(lambda v: v * 0.5)
point = st.tuples(coordinate, coordinate)


@st.composite
def point_sets(draw: st.DrawFn) -> tuple[np.ndarray, float, int, np.ndarray | None]:
    base = draw(st.lists(point, min_size=1, max_size=40))
    dup_idx = draw(st.lists(st.integers(0, len(base) - 1), max_size=20))
    xy = np.array(base + [base[i] for i in dup_idx], dtype=np.float64)
    eps = draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 0.7, 1.3, 100.0]))
    min_samples = draw(st.integers(1, 8))
    weights = draw(
        st.none()
        | st.lists(st.integers(-2, 5), min_size=len(xy), max_size=len(xy))
        # scikit-learn refuses weights that are all zero
        .filter(any)
        .map(lambda w: np.array(w, dtype=np.float64))
    )
    return xy, eps, min_samples, weights


@settings(max_examples=300, deadline=None)
@given(point_sets())
def test_property_matches_sklearn(case: tuple[np.ndarray, float, int, np.ndarray | None]) -> None:
    xy, eps, min_samples, weights = case
    labels = check_against_sklearn(xy, eps, min_samples, weights)
    _, core = dbscan_core(xy, eps=eps, min_samples=min_samples, sample_weight=weights)
    assert_border_rule(xy, eps, labels, core)
