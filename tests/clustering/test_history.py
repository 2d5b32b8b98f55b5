"""Run comparison classes and emerging-hot-spot patterns, pinned on hand-built runs."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from clustering.history import (
    classify_presence,
    compare_hotspots,
    mann_kendall,
    previous_run,
    weekly_series,
)
from clustering.priority import PRESETS
from clustering.selection import HotspotQuery
from hotspot311.errors import InputError
from tests.clustering.history_cases import NOW, ORIGIN, cluster, frame, run
from tests.geo.store.stores import TESTVILLE


def line(prefix: str, ks: range | list[int]) -> list[dict[str, object]]:
    """Requests ``<prefix><k>`` on a line, 30 ft apart (x = -165 + 30 k, y = 0)."""
    rows = []
    for k in ks:
        row = cluster(prefix, 0, 0, 1, first=k)[0]
        row["x"], row["y"] = ORIGIN[0] - 165 + 30 * k, ORIGIN[1]
        rows.append(row)
    return rows


def sequence() -> list[pd.DataFrame]:
    """Four runs: A grows, splits, merges; B persists, shrinks, goes; C comes and goes."""
    b6, b4 = cluster("B", 3000, 0, 6), cluster("B", 3000, 0, 4)
    return [
        frame(line("A", range(8)), b6),
        frame(line("A", range(12)), b6, cluster("C", 6000, 0, 5)),
        frame(line("A", [0, 1, 2, 3, 8, 9, 10, 11]), b4),
        frame(line("A", range(12))),
    ]


def classes(earlier: pd.DataFrame, later: pd.DataFrame) -> dict[str, list[str]]:
    cmp = compare_hotspots(run(earlier).hotspots, run(later).hotspots)
    out: dict[str, list[str]] = {}
    for cls, count in zip(cmp["class"], cmp["count"].where(cmp["class"] != "gone",
                                                          cmp["earlier_count"]), strict=True):
        out.setdefault(cls, []).append(int(count))
    return {k: sorted(v) for k, v in out.items()}


def test_cluster_appears_grows_splits_merges_disappears() -> None:
    runs = sequence()
    assert classes(runs[0], runs[1]) == {"growing": [12], "persistent": [6], "new": [5]}
    assert classes(runs[1], runs[2]) == {"split": [4, 4], "shrinking": [4], "gone": [5]}
    assert classes(runs[2], runs[3]) == {"merged": [12], "gone": [4]}


def test_compare_details() -> None:
    runs = sequence()
    first, second = run(runs[0]).hotspots, run(runs[1]).hotspots
    cmp = compare_hotspots(first, second)
    grown = cmp[cmp["class"] == "growing"].iloc[0]
    assert grown["change"] == pytest.approx(0.5)
    assert grown["jaccard"] == pytest.approx(8 / 12)
    assert grown["earlier_ids"] == first.loc[first["count"] == 8, "hotspot_id"].tolist()
    assert cmp.crs == second.crs
    # the same run against itself: all persistent, nothing gone
    same = compare_hotspots(first, first)
    assert set(same["class"]) == {"persistent"} and len(same) == len(first)


def test_hull_overlap_links_runs_without_shared_members() -> None:
    earlier = run(frame(cluster("W1-", 0, 0, 8))).hotspots
    later = run(frame(cluster("W2-", 5, 0, 12))).hotspots  # same place, new requests
    cmp = compare_hotspots(earlier, later)
    assert cmp["class"].tolist() == ["growing"]
    assert cmp["jaccard"].iloc[0] == 0 and cmp["hull_overlap"].iloc[0] > 0.25
    far = run(frame(cluster("W3-", 4000, 0, 8))).hotspots
    assert sorted(compare_hotspots(earlier, far)["class"]) == ["gone", "new"]


def test_empty_runs() -> None:
    one = run(frame(cluster("A", 0, 0, 8))).hotspots
    none = run(frame(cluster("A", 0, 0, 2))).hotspots
    assert compare_hotspots(none, one)["class"].tolist() == ["new"]
    assert compare_hotspots(one, none)["class"].tolist() == ["gone"]


def test_previous_run_same_params() -> None:
    t = pd.Timestamp("2025-07-01", tz="UTC")
    runs = pd.DataFrame({
        "run_id": [1, 2, 3, 4],
        "created_at": [t, t + pd.Timedelta(hours=1), t + pd.Timedelta(hours=2),
                       t + pd.Timedelta(hours=3)],
        "params_key": ["a", "b", "a", "a"],
    })
    assert previous_run(runs, 4) == 3
    assert previous_run(runs, 3) == 1
    assert previous_run(runs, 1) is None
    assert previous_run(runs, 2) is None
    with pytest.raises(InputError, match="run: got 9"):
        previous_run(runs, 9)


@pytest.mark.parametrize(
    ("series", "intensity", "expected"),
    [
        ("...........#", None, "new"),
        ("........####", None, "consecutive"),
        ("############", list(range(1, 13)), "intensifying"),
        ("############", list(range(12, 0, -1)), "diminishing"),
        ("############", [5] * 12, "persistent"),
        ("#####.######", [3, 1, 4, 1, 5, 0, 2, 6, 5, 3, 5, 1], "persistent"),
        ("#.#..#.....#", None, "sporadic"),
        ("##.........#", None, "sporadic"),
        ("###########.", None, "historical"),
        ("###.........", None, "no pattern"),
        ("............", None, ""),
    ],
)
def test_emerging_patterns(series: str, intensity: list[int] | None, expected: str) -> None:
    hot = np.array([[c == "#" for c in series]])
    values = None if intensity is None else np.array([intensity])
    assert classify_presence(hot, values) == [expected]


def test_mann_kendall_pinned() -> None:
    z, p = mann_kendall(np.array([1.0, 2, 3, 4, 5]))
    # S = 10, var = 5·4·15/18 = 16.667, z = 9/4.0825
    assert z == pytest.approx(9 / np.sqrt(50 / 3))
    assert p == pytest.approx(0.0275, abs=1e-4)
    assert mann_kendall(np.array([2.0, 2, 2, 2])) == (0.0, 1.0)
    with pytest.raises(InputError, match="2-d array"):
        classify_presence(np.array([True, False]))


def test_weekly_series_patterns() -> None:
    rows: list[dict[str, object]] = []
    for w in range(6):  # 0 = oldest week
        ago = 7 * (5 - w) + 1
        rows += cluster(f"Q{w}-", 0, 0, 6, days_ago=ago)  # every week
        if w >= 3:
            rows += cluster(f"P{w}-", 5000, 0, 6, days_ago=ago)  # the last three weeks
        if w in (0, 1):
            rows += cluster(f"R{w}-", 0, 5000, 6, days_ago=ago)  # the first two only
    data = pd.DataFrame(rows)
    query = HotspotQuery(days=7, eps_m=30.0, min_samples=4)
    cells = weekly_series(data, query, weeks=6, profile=TESTVILLE, weights=PRESETS["balanced"],
                          grid_m=100, now=NOW)
    cx = cells.geometry.centroid.x - ORIGIN[0]
    cy = cells.geometry.centroid.y - ORIGIN[1]
    near = lambda x, y: (abs(cx - x) < 500) & (abs(cy - y) < 500)  # noqa: E731
    assert set(cells.loc[near(0, 0), "pattern"]) == {"persistent"}
    assert set(cells.loc[near(5000, 0), "series"]) == {"...###"}
    assert set(cells.loc[near(5000, 0), "pattern"]) == {"consecutive"}
    assert set(cells.loc[near(0, 5000), "pattern"]) == {"no pattern"}
    assert len(cells) == int(near(0, 0).sum() + near(5000, 0).sum() + near(0, 5000).sum())
    with pytest.raises(InputError, match="weeks: got 1"):
        weekly_series(data, query, weeks=1, profile=TESTVILLE, weights=PRESETS["balanced"])


def test_weekly_windows_end_a_week_apart() -> None:
    end = datetime(2025, 6, 29, 12, tzinfo=UTC)
    data = frame(cluster("Q", 0, 0, 6, days_ago=1))
    query = HotspotQuery(days=7, end=end, eps_m=30.0, min_samples=4)
    cells = weekly_series(data, query, weeks=3, profile=TESTVILLE, weights=PRESETS["balanced"])
    assert set(cells["series"]) == {"..#"}
    assert set(cells["pattern"]) == {"new"}
