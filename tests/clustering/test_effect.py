"""Did it work? New problems in a hotspot before and after its work, against similar
cells, on a hand-made city."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from clustering.effect import EFFECT_COLUMNS, effect_summary, hotspot_effect
from hotspot311.errors import InputError

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def _req(rid: str, x: float, y: float, day: float, closed: float | None = None,
         problem: str | None = None) -> dict[str, object]:
    return {"service_request_id": rid, "service_name": "Illegal Dumping", "x": x, "y": y,
            "requested_datetime": T0 + pd.Timedelta(days=day),
            "closed_datetime": T0 + pd.Timedelta(days=closed) if closed is not None else pd.NaT,
            "problem_id": problem or rid}


def _city() -> tuple[pd.DataFrame, gpd.GeoDataFrame, pd.DataFrame]:
    rows = [_req("H1", 100, 100, 1, closed=20), _req("H2", 200, 200, 2, closed=30)]
    rows += [_req(f"B{i}", 300 + 50 * i, 500, 5 + 4 * i) for i in range(5)]   # before
    rows += [_req("A0", 500, 700, 40)]                                        # after
    rows += [_req("A0r", 505, 700, 41, problem="A0")]  # a repeat call: not a new problem
    for c in range(3):  # three cells like the hotspot: 5 before, 4 after
        base = 5000 + 2000 * c
        rows += [_req(f"C{c}b{i}", base + 10 * i, 5000, 6 + 3 * i) for i in range(5)]
        rows += [_req(f"C{c}a{i}", base + 10 * i, 5000, 35 + 3 * i) for i in range(4)]
    rows += [_req("Z", 20000, 20000, 60)]  # the data reach day 60
    rows += [_req("K1", 9000, 9000, 3)]    # the open member of the second hotspot
    frame = pd.DataFrame(rows)
    frame["closed_datetime"] = pd.to_datetime(frame["closed_datetime"], utc=True)
    hotspots = gpd.GeoDataFrame({"hotspot_id": ["Ha", "Hb"], "rank": [1, 2]},
                                geometry=[shapely.box(0, 0, 1000, 1000),
                                          shapely.box(8900, 8900, 9100, 9100)])
    members = pd.DataFrame({"hotspot_id": ["Ha", "Ha", "Hb"],
                            "service_request_id": ["H1", "H2", "K1"]})
    return frame, hotspots, members


def test_difference_in_differences_against_similar_cells() -> None:
    table = hotspot_effect(*_city(), weeks=4, n_comparison=3)
    assert list(table.columns) == list(EFFECT_COLUMNS)
    effect = table.set_index("hotspot_id")
    a = effect.loc["Ha"]
    assert a["status"] == "ok" and a["done"] == T0 + pd.Timedelta(days=30)
    # before: B0..B4 (days 5-21) and H2 (day 2 is inside [day 2, day 30)); H1 day 1 is not
    assert (a["before"], a["after"], a["change"]) == (6, 1, -5)
    assert a["comparison_cells"] == 3
    assert (a["comparison_before"], a["comparison_after"]) == (15, 12)
    assert a["expected_change"] == -1.0
    assert a["effect"] == -4.0
    np.testing.assert_allclose(a["ratio"], (1 / 6) / (12 / 15))
    assert effect.loc["Hb", "status"] == "not_closed"
    total = effect_summary(effect.reset_index())
    assert (total["measured"], total["before"], total["after"]) == (1, 6, 1)


def test_window_not_over_yet_and_bad_weeks() -> None:
    frame, hotspots, members = _city()
    assert hotspot_effect(frame, hotspots, members, weeks=6).loc[0, "status"] == "window_open"
    with pytest.raises(InputError, match="weeks: got 0"):
        hotspot_effect(frame, hotspots, members, weeks=0)
