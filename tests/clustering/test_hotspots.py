"""Hotspot summaries and priority, pinned on a small hand-built case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import shapely

from clustering.export import work_list
from clustering.hotspots import (
    CONCAVE_RATIO,
    HULL_EXACT_MAX,
    PALETTE,
    colour_neighbours,
    label_requests,
    summarize,
)
from clustering.priority import PRESETS, PriorityWeights, preset, rank_hotspots, with_weights
from clustering.run import run_hotspots
from clustering.selection import HotspotQuery, resolve_services, select_requests
from hotspot311.errors import InputError
from layers.profile import CityProfile

NOW = datetime(2025, 6, 30, 12, tzinfo=UTC)


def _req(
    i: int,
    x: float,
    y: float,
    *,
    days_ago: float,
    status: str = "open",
    due_in: float | None = 5,
    service: str = "Pothole",
    address: str = "1 MAIN ST",
    area: str = "A",
) -> dict[str, object]:
    requested = pd.Timestamp(NOW - timedelta(days=days_ago))
    return {
        "service_request_id": f"R{i:03d}",
        "service_name": service,
        "status": status,
        "requested_datetime": requested,
        "expected_datetime": requested + pd.Timedelta(days=due_in)
        if due_in is not None
        else pd.NaT,
        "address": address,
        "x": x,
        "y": y,
        "lat": 40.0,
        "lon": -75.0,
        "district": area,
    }


def case() -> pd.DataFrame:
    rows = []
    # cluster 1: 6 requests within 10 ft, 4 open, 2 of them overdue (due 5 days after request)
    for i in range(6):
        rows.append(
            _req(
                i,
                1000 + i,
                1000,
                days_ago=[20, 10, 3, 2, 1, 1][i],
                status="open" if i < 4 else "closed",
                address="100 OAK ST" if i < 4 else "102 OAK ST",
            )
        )
    # cluster 2: 3 requests, all open, recent, not overdue
    for i in range(3):
        rows.append(_req(10 + i, 5000 + i, 5000, days_ago=1, address="9 ELM ST", area="B"))
    # noise
    rows.append(_req(20, 9000, 9000, days_ago=1))
    return pd.DataFrame(rows)


def test_summary_pinned() -> None:
    frame = case()
    labels = label_requests(frame, eps=50, min_samples=3)
    assert labels.tolist() == [0] * 6 + [1] * 3 + [-1]
    hot = summarize(frame, labels, eps=50, now=NOW, layer_keys=["district"])
    one, two = hot.iloc[0], hot.iloc[1]
    assert (one["count"], one["open"], one["overdue"]) == (6, 4, 2)
    assert one["oldest_open_id"] == "R000"
    assert one["oldest_open_days"] == pytest.approx(20)
    assert one["span_days"] == pytest.approx(19)
    assert one["top_addresses"] == "100 OAK ST (4); 102 OAK ST (2)"
    assert one["district"] == "A" and two["district"] == "B"
    assert one["member_ids"] == [f"R{i:03d}" for i in range(6)]
    assert (two["count"], two["open"], two["overdue"]) == (3, 3, 0)
    assert one.geometry.contains(hot.geometry.iloc[0].centroid)
    assert one["centroid_x"] == pytest.approx(1002.5)


def test_a_big_hotspots_outline_holds_every_member_and_follows_its_shape() -> None:
    # an L of 3,000 members (over HULL_EXACT_MAX): outlined from snapped points
    rng = np.random.default_rng(3)
    arm = rng.uniform(0, 2000, 1500)
    across = rng.uniform(0, 60, 1500)
    x = np.concatenate([arm, across])
    y = np.concatenate([across, arm])
    frame = pd.DataFrame([_req(i, float(a), float(b), days_ago=1)
                          for i, (a, b) in enumerate(zip(x, y, strict=True))])
    assert len(frame) > HULL_EXACT_MAX
    labels = label_requests(frame, eps=50, min_samples=3)
    assert set(labels.tolist()) == {0}
    hull = summarize(frame, labels, eps=50, now=NOW).geometry.iloc[0]
    assert shapely.covers(hull, shapely.points(x, y)).all()
    exact = shapely.buffer(shapely.concave_hull(shapely.multipoints(np.column_stack([x, y])),
                                                ratio=CONCAVE_RATIO), 50 / 4, quad_segs=4)
    # the L's corner stays open: not the convex hull (2000 x 2000), close to the exact one
    assert hull.area < 0.2 * 2000 * 2000
    assert abs(hull.area - exact.area) < 0.15 * exact.area
    assert shapely.covers(hull.buffer(50 / 4), exact.buffer(-50 / 4))


def test_priority_parts_and_ties() -> None:
    frame = case()
    labels = label_requests(frame, eps=50, min_samples=3)
    hot = summarize(frame, labels, eps=50, now=NOW)
    members = frame.assign(
        hotspot_id=pd.Series(labels).map(dict(zip(hot["label"], hot["hotspot_id"], strict=True)))
    )
    weights = PriorityWeights(size=1, open=1, overdue=1, age=1, recency=1, service=0)
    ranked = rank_hotspots(
        hot, members.dropna(subset=["hotspot_id"]), weights=weights, window_end=NOW
    )
    first = ranked.iloc[0]
    assert first["count"] == 6  # bigger, overdue, older
    # each part is 100/5 * value: size 1, open 4/6, overdue 1, age 1, recency 4/6
    assert first["score_size"] == pytest.approx(20)
    assert first["score_open"] == pytest.approx(13.33, abs=0.01)
    assert first["score_overdue"] == pytest.approx(20)
    assert first["score_age"] == pytest.approx(20)
    assert first["score_recency"] == pytest.approx(13.33, abs=0.01)
    assert first["score"] == pytest.approx(86.67, abs=0.02)
    assert ranked["rank"].tolist() == [1, 2]
    # only size counts: still deterministic, bigger first
    size_only = rank_hotspots(
        hot,
        members.dropna(subset=["hotspot_id"]),
        weights=PriorityWeights(1, 0, 0, 0, 0, 0),
        window_end=NOW,
    )
    assert size_only["count"].tolist() == [6, 3]


def test_the_service_part_is_the_mean_weight_of_each_hotspots_requests() -> None:
    """Weights by service type; a type without a weight, or no type, weighs 1."""
    frame = case()
    frame.loc[[0, 1, 6], "service_name"] = ["Dumping", "Graffiti", "Dumping"]
    frame.loc[2, "service_name"] = None
    labels = label_requests(frame, eps=50, min_samples=3)
    hot = summarize(frame, labels, eps=50, now=NOW)
    members = frame.assign(hotspot_id=pd.Series(labels).map(
        dict(zip(hot["label"], hot["hotspot_id"], strict=True)))).dropna(subset=["hotspot_id"])
    weights = PriorityWeights(size=0, open=0, overdue=0, age=0, recency=0, service=1,
                              service_weights={"Dumping": 3.0, "Pothole": 0.5})
    ranked = rank_hotspots(hot, members, weights=weights, window_end=NOW)
    weight_of = {"Dumping": 3.0, "Pothole": 0.5}
    means = {h: float(np.mean([weight_of.get(s, 1.0) if isinstance(s, str) else 1.0
                               for s in group["service_name"]]))
             for h, group in members.groupby("hotspot_id")}
    top = max(max(means.values()), 1.0)
    for _, spot in ranked.iterrows():
        assert spot["score_service"] == pytest.approx(round(100 * means[spot["hotspot_id"]]
                                                           / top, 2))
    # cluster 2 (two Potholes and a Dumping) outweighs cluster 1 (Dumping, Graffiti, no
    # type and three Potholes)
    assert ranked.iloc[0]["count"] == 3


def test_ties_broken_by_id() -> None:
    rows = [_req(i, 1000 * (i // 3), 0, days_ago=1, address=f"{i // 3} ST") for i in range(6)]
    frame = pd.DataFrame(rows)
    labels = label_requests(frame, eps=10, min_samples=3)
    hot = summarize(frame, labels, eps=10, now=NOW)
    members = frame.assign(
        hotspot_id=pd.Series(labels).map(dict(zip(hot["label"], hot["hotspot_id"], strict=True)))
    )
    ranked = rank_hotspots(hot, members, weights=PRESETS["balanced"], window_end=NOW)
    assert ranked["score"].nunique() == 1
    assert ranked["hotspot_id"].tolist() == sorted(ranked["hotspot_id"])


def test_weights_validation() -> None:
    with pytest.raises(InputError, match="weight size: got -1"):
        PriorityWeights(size=-1).validate()
    with pytest.raises(InputError, match="all are 0"):
        PriorityWeights(0, 0, 0, 0, 0, 0).validate()
    with pytest.raises(InputError, match="preset: got 'fire'"):
        preset("fire")
    with pytest.raises(InputError, match="unknown parts"):
        with_weights(PRESETS["streets"], colour=1)
    assert with_weights(PRESETS["streets"], size=3).size == 3


def test_neighbour_colours_differ() -> None:
    import shapely

    hulls = np.array(
        [
            shapely.box(0, 0, 1, 1),
            shapely.box(1.5, 0, 2.5, 1),
            shapely.box(3, 0, 4, 1),
            shapely.box(100, 100, 101, 101),
        ]
    )
    colours = colour_neighbours(hulls, gap=1.0)
    assert colours[0] != colours[1] and colours[1] != colours[2]
    assert colours[3] == PALETTE[0]


def test_selection_and_query_errors() -> None:
    frame = case()
    q = HotspotQuery(services=("Pothole",), days=5, end=NOW, status="open")
    chosen = select_requests(frame, q)
    assert set(chosen["service_request_id"]) == {"R002", "R003", "R010", "R011", "R012", "R020"}
    with pytest.raises(InputError) as err:
        HotspotQuery(days=0, status="new", eps_m=-1, min_samples=0).validate()
    assert len(err.value.problems) == 4
    assert resolve_services(["streets"], {"streets": ("A", "B")}, ["A", "B", "C"]) == ("A", "B")
    with pytest.raises(InputError, match="neither a service type"):
        resolve_services(["Nope"], {}, ["A"])


def test_run_on_real_dumping(phila: CityProfile) -> None:
    from geo.ingest.mapping import ColumnMapping, apply_mapping
    from geo.ingest.readers import ROW_COLUMN
    from geo.ingest.validate import validate
    from hotspot311.cli.demo import dumping_requests

    raw = dumping_requests().astype(str)
    raw.insert(0, ROW_COLUMN, range(1, len(raw) + 1))
    batch = validate(
        apply_mapping(raw, ColumnMapping(), fmt="phila"),
        profile=phila,
        batch_id="t",
        source_file="dumping",
    )
    q = HotspotQuery(days=31, end=datetime(2024, 8, 1, tzinfo=UTC), eps_m=100, min_samples=8)
    result = run_hotspots(batch.requests, q, profile=phila, weights=PRESETS["streets"], now=NOW)
    assert result.selected > 1000
    assert len(result.hotspots) >= 5
    assert result.hotspots["rank"].tolist() == list(range(1, len(result.hotspots) + 1))
    # (a hotspot may hold fewer than min_samples when border points go to a neighbour)
    assert result.hotspots["count"].sum() == result.members["hotspot_id"].notna().sum()
    assert result.hotspots["count"].median() >= 8
    work = work_list(result.members, now=NOW)
    assert len(work) == int(result.members["hotspot_id"].notna().sum())
    assert work["rank"].is_monotonic_increasing
