"""Tests for clustering.density."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clustering.density import density, suggest_min_samples
from hotspot311.errors import InputError


def test_density_figures() -> None:
    d = density(1_000, 10.0, 100.0)
    assert d.points_per_km2 == pytest.approx(100.0)
    # a 100 m disc is pi * 0.01 km2
    assert d.expected_per_disc == pytest.approx(100.0 * math.pi * 0.01)


def test_expected_per_disc_matches_simulation() -> None:
    rng = np.random.default_rng(0)
    side_m = 5_000.0
    xy = rng.uniform(0, side_m, (50_000, 2))
    centre = np.array([side_m / 2, side_m / 2])
    probes = centre + rng.uniform(-1_000, 1_000, (200, 2))
    counts = [(((xy - p) ** 2).sum(axis=1) <= 100.0**2).sum() for p in probes]
    d = density(len(xy), (side_m / 1_000) ** 2, 100.0)
    assert np.mean(counts) == pytest.approx(d.expected_per_disc, rel=0.05)


def test_suggestion_scales_with_factor_and_floor() -> None:
    expected = density(100_000, 350.0, 100.0).expected_per_disc
    assert suggest_min_samples(100_000, 350.0, 100.0, factor=2.0) == math.ceil(2 * expected)
    assert suggest_min_samples(10, 350.0, 100.0) == 4
    assert suggest_min_samples(10, 350.0, 100.0, floor=9) == 9
    assert suggest_min_samples(0, 350.0, 100.0) == 4


@pytest.mark.parametrize(
    ("args", "kwargs", "pattern"),
    [
        ((-1, 1.0, 1.0), {}, r"n_points must be an integer >= 0; got -1"),
        ((10, 0.0, 1.0), {}, r"area_km2 must be a finite number > 0; got 0\.0"),
        ((10, 1.0, float("nan")), {}, r"eps_m .* got nan"),
        ((10, 1.0, 1.0), {"factor": 0}, r"factor .* got 0"),
        ((10, 1.0, 1.0), {"floor": 0}, r"floor must be an integer >= 1; got 0"),
        ((1.5, -1.0, 1.0), {}, r"2 problems"),
    ],
)
def test_bad_input_raises(args: tuple, kwargs: dict, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        suggest_min_samples(*args, **kwargs)
