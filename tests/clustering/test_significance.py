"""Gi* against esda and the textbook formula; FDR bins on known p-values; the grid."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import shapely

from clustering.significance import (
    area_hotspots,
    confidence_bins,
    count_points,
    fdr_adjust,
    flag_significant,
    gi_star,
    gi_star_reference,
    hex_grid,
    hex_hotspots,
    neighbours,
)
from hotspot311.errors import InputError


def small_grid() -> tuple[gpd.GeoDataFrame, np.ndarray, list[list[int]]]:
    grid = hex_grid((0, 0, 500, 400), size=100, crs="EPSG:32618")
    values = np.random.default_rng(7).poisson(3, len(grid)).astype(float)
    values[5] = 25
    return grid, values, neighbours(grid.geometry.to_numpy(), hexagons=True, size=100)


def test_hex_grid_tiles_the_plane() -> None:
    grid, _, nbrs = small_grid()
    areas = grid.geometry.area.to_numpy()
    assert np.allclose(areas, math.sqrt(3) / 2 * 100**2)
    assert shapely.union_all(grid.geometry.to_numpy()).area == pytest.approx(areas.sum())
    assert max(len(n) for n in nbrs) == 6
    # neighbours are exactly the cells whose centres are one size away
    cx, cy = grid["cx"].to_numpy(), grid["cy"].to_numpy()
    for i, n in enumerate(nbrs):
        d = np.hypot(cx - cx[i], cy - cy[i])
        assert n == sorted(np.flatnonzero(np.isclose(d, 100)).tolist())
    assert grid["cell_id"].is_unique


def test_gi_star_numpy_engine_is_the_reference_formula() -> None:
    _, values, nbrs = small_grid()
    out = gi_star(values, nbrs, engine="numpy")
    z = gi_star_reference(values, nbrs)
    np.testing.assert_allclose(out["z"], z, atol=1e-12)
    # by hand for the planted cell: sum of itself and its neighbours against the mean
    i = 5
    w = [i, *nbrs[i]]
    n, mean, s = len(values), values.mean(), values.std()
    by_hand = (values[w].sum() - mean * len(w)) / (
        s * math.sqrt((n * len(w) - len(w) ** 2) / (n - 1))
    )
    assert z[i] == pytest.approx(by_hand, abs=1e-12)
    assert z[i] > 2.5 and out["p"].iloc[i] < 0.05
    # one hot cell among 49 does not survive the FDR correction
    assert out["p_fdr"].iloc[i] > 0.1 and out["bin"].iloc[i] == 0


def test_gi_star_esda_matches_reference() -> None:
    pytest.importorskip("esda")
    _, values, nbrs = small_grid()
    esda_out = gi_star(values, nbrs, engine="esda")
    np.testing.assert_allclose(esda_out["z"], gi_star_reference(values, nbrs), atol=1e-9)
    from esda.getisord import G_Local
    from libpysal.weights import W

    w = W(dict(enumerate(nbrs)), silence_warnings=True)
    direct = G_Local(values, w, transform="B", star=True, permutations=0)
    np.testing.assert_allclose(esda_out["z"], direct.Zs, atol=1e-9)


def test_fdr_bins_on_known_p_values() -> None:
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.059, 0.074, 0.205, 0.212, 0.216])
    q = fdr_adjust(p)
    # BH by hand: q_i = min_{j >= i} p_j · m / j
    expected = [0.01, 0.04, 0.084, 0.084, 0.084, 0.059 * 10 / 6, 0.074 * 10 / 7,
                0.216, 0.216, 0.216]
    np.testing.assert_allclose(q, expected)
    z = np.array([3.3, -2.6, 2.1, 2.0, -2.0, 1.9, 1.8, 1.3, 1.2, -1.2])
    assert confidence_bins(z, q).tolist() == [3, -2, 1, 1, -1, 1, 0, 0, 0, 0]
    # without the correction, 0.039 would be significant at 95 %
    assert confidence_bins(z, p).tolist()[:3] == [3, -3, 2]
    # order does not matter
    perm = np.random.default_rng(0).permutation(10)
    np.testing.assert_allclose(fdr_adjust(p[perm]), q[perm])


def test_planted_hotspot_found_and_flagged() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 3000, 600)
    y = rng.uniform(0, 3000, 600)
    x = np.concatenate([x, rng.normal(1500, 30, 80)])
    y = np.concatenate([y, rng.normal(1500, 30, 80)])
    extent = shapely.box(0, 0, 3000, 3000)
    cells = hex_hotspots(x, y, size=200, crs="EPSG:32618", within=extent, engine="numpy")
    assert cells["count"].sum() <= len(x)
    centre = cells[cells.geometry.intersects(shapely.Point(1500, 1500))]
    assert len(centre) >= 1 and centre["bin"].max() == 3
    assert (cells["bin"] >= 2).sum() <= 12  # only around the planted blob
    hulls = gpd.GeoDataFrame(geometry=[shapely.Point(1500, 1500).buffer(40),
                                       shapely.Point(200, 2800).buffer(40)], crs="EPSG:32618")
    assert flag_significant(hulls, cells).tolist() == [True, False]
    with pytest.raises(InputError, match="min_bin: got 4"):
        flag_significant(hulls, cells, min_bin=4)


def test_area_rates() -> None:
    boxes = [shapely.box(i * 100, j * 100, i * 100 + 100, j * 100 + 100)
             for i in range(5) for j in range(5)]
    areas = gpd.GeoDataFrame({"code": [f"a{i}" for i in range(25)]}, geometry=boxes,
                             crs="EPSG:32618")
    x = np.array([50.0, 50, 150, 250])
    y = np.array([50.0, 60, 50, 50])
    den = np.full(25, 2.0)
    den[0] = 0.0
    out = area_hotspots(areas, x, y, denominator=den, engine="numpy")
    assert out["count"].tolist()[:3] == [2, 0, 0]
    assert out.loc[5, "count"] == 1 and out.loc[5, "rate"] == 0.5
    assert out.loc[0, "rate"] == 0.0  # zero denominator
    with pytest.raises(InputError, match="denominator: got 3 values for 25 areas"):
        area_hotspots(areas, x, y, denominator=np.ones(3))


def test_errors_listed_together() -> None:
    with pytest.raises(InputError, match="2 problems") as info:
        gi_star(np.ones(3), [[1]], engine="arcgis")
    assert "engine: got 'arcgis'" in str(info.value)
    with pytest.raises(InputError, match="grid size: got -1"):
        hex_grid((0, 0, 1, 1), size=-1, crs=None)
    assert count_points(hex_grid((0, 0, 10, 10), size=5, crs=None), np.array([]),
                        np.array([])).sum() == 0
