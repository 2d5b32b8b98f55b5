"""Hotspots on problems: twelve calls about one light are one problem with a calls part;
``count="tickets"`` gives what a run gave before problems."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from clustering.export import LIST_COLUMNS, hotspot_table, work_list
from clustering.priority import PriorityWeights
from clustering.problems import ProblemRules, assign_problems
from clustering.run import run_hotspots
from clustering.selection import HotspotQuery
from hotspot311.errors import InputError
from tests.geo.store.stores import TESTVILLE

NOW = datetime(2024, 5, 20, tzinfo=UTC)
T0 = pd.Timestamp("2024-05-01 09:00", tz="UTC")


def _requests() -> pd.DataFrame:
    rows = []
    for i in range(12):  # one light, twelve neighbours, within 10 ft over 12 days
        rows.append((f"S{i:02d}", 1000 + (i % 3) * 3, 1000 + (i % 4) * 2, i, "open"))
    for k, (dx, dy) in enumerate([(150, 0), (-150, 0), (0, 150), (0, -150)]):
        rows.append((f"P{k}", 1000 + dx, 1000 + dy, 2 + k, "open" if k % 2 else "closed"))
    rows.append(("F0", 9000, 9000, 3, "open"))
    frame = pd.DataFrame({
        "service_request_id": [r[0] for r in rows],
        "service_name": "Street Light Outage",
        "status": [r[4] for r in rows],
        "requested_datetime": [T0 + pd.Timedelta(days=r[3]) for r in rows],
        "expected_datetime": [T0 + pd.Timedelta(days=r[3] + 5) for r in rows],
        "closed_datetime": [T0 + pd.Timedelta(days=r[3] + 1) if r[4] == "closed" else pd.NaT
                            for r in rows],
        "address": [f"{r[0]} Main St" for r in rows],
        "x": [float(r[1]) for r in rows], "y": [float(r[2]) for r in rows],
        "lat": 39.95, "lon": -75.15,
    })
    frame["closed_datetime"] = pd.to_datetime(frame["closed_datetime"], utc=True)
    frame["problem_id"] = assign_problems(frame, ProblemRules.for_city(TESTVILLE))
    return frame


def _run(frame: pd.DataFrame, **query: object):
    q = HotspotQuery(**{"days": 60, "eps_m": 100.0, "min_samples": 3, **query})  # type: ignore[arg-type]
    return run_hotspots(frame, q, profile=TESTVILLE, weights=PriorityWeights(), now=NOW)


def test_the_fixture_has_one_problem_of_twelve_calls() -> None:
    pid = _requests()["problem_id"]
    assert pid.value_counts().tolist() == [12, 1, 1, 1, 1, 1]


def test_a_hotspot_counts_problems_and_shows_the_calls() -> None:
    result = _run(_requests(), count="problems")
    assert len(result.hotspots) == 1
    spot = result.hotspots.iloc[0]
    assert (spot["count"], spot["problems"], spot["calls"]) == (5, 5, 16)
    assert spot["open"] == 3  # S (open) and P1, P3; P0 and P2 are closed
    assert spot["score_calls"] > 0
    assert len(spot["member_ids"]) == 16
    table = hotspot_table(result.hotspots)
    assert {"problems", "calls", "score_calls"} <= set(table.columns)


def test_repeat_callers_alone_no_longer_make_a_hotspot() -> None:
    frame = _requests()
    assert len(_run(frame, count="tickets", min_samples=6).hotspots) == 1
    assert len(_run(frame, count="problems", min_samples=6).hotspots) == 0


def test_work_list_has_one_line_per_problem_with_every_request() -> None:
    result = _run(_requests(), count="problems")
    work = work_list(result.members, now=NOW, count="problems")
    assert len(work) == 5
    light = work[work["problem_id"] == "S00"].iloc[0]
    assert light["calls"] == 12
    assert light["request_ids"].split("; ") == [f"S{i:02d}" for i in range(12)]
    assert light["first_requested"] == T0
    assert light["last_requested"] == T0 + pd.Timedelta(days=11)
    assert set(work["status"]) == {"open", "closed"}


@pytest.mark.parametrize("count", ["problems", "tickets"])
def test_a_run_without_members_ranks_the_same_hotspots(count: str) -> None:
    """keep_members=False (the app's map and table): the same ranked hotspots but their
    member lists, and no member rows."""
    frame = _requests()
    frame.loc[frame.index[:3], "service_name"] = "Illegal Dumping"
    q = HotspotQuery(days=60, eps_m=100.0, min_samples=3, count=count)  # type: ignore[arg-type]
    weights = PriorityWeights(service_weights={"Illegal Dumping": 2.0})
    full = run_hotspots(frame, q, profile=TESTVILLE, weights=weights, now=NOW)
    lean = run_hotspots(frame, q, profile=TESTVILLE, weights=weights, now=NOW,
                        keep_members=False)
    assert len(full.hotspots) == 1 and len(full.members) == len(frame)
    assert "member_ids" not in lean.hotspots.columns and lean.members.empty
    assert lean.members.dtypes.astype(str).to_dict() == \
        full.members.dtypes.astype(str).to_dict()
    pd.testing.assert_frame_equal(pd.DataFrame(lean.hotspots),
                                  pd.DataFrame(full.hotspots.drop(columns="member_ids")))
    assert lean.selected == full.selected and lean.snapshot == full.snapshot


@pytest.mark.parametrize("count", ["problems", "tickets"])
def test_a_run_without_members_keeps_none_of_the_requests_text(count: str) -> None:
    """The empty members frame is made anew: an empty slice of an Arrow text column would
    keep the whole column's buffers (the app's window) alive."""
    frame = _requests().astype({"address": "str", "service_request_id": "str"})
    full_size = frame["address"].array._pa_array.get_total_buffer_size()
    q = HotspotQuery(days=60, eps_m=100.0, min_samples=3, count=count)  # type: ignore[arg-type]
    lean = run_hotspots(frame, q, profile=TESTVILLE, weights=PriorityWeights(), now=NOW,
                        keep_members=False)
    for column in ("address", "service_request_id"):
        held = lean.members[column].array._pa_array.get_total_buffer_size()
        assert held < 64 < full_size, (column, held, full_size)


def test_ticket_count_is_the_run_without_problems() -> None:
    frame = _requests()
    with_ids = _run(frame, count="tickets")
    without = _run(frame.drop(columns="problem_id"))
    pd.testing.assert_frame_equal(
        pd.DataFrame(with_ids.hotspots.drop(columns="geometry")),
        pd.DataFrame(without.hotspots.drop(columns="geometry")))
    assert list(hotspot_table(with_ids.hotspots).columns) == [
        c for c in LIST_COLUMNS if c not in ("score_calls", "problems", "calls", "place")]
    pd.testing.assert_frame_equal(work_list(with_ids.members, now=NOW),
                                  work_list(without.members, now=NOW))
    assert with_ids.hotspots.iloc[0]["count"] == 16
    assert "count" not in with_ids.query.params()


def test_a_run_may_use_its_own_problem_rule() -> None:
    frame = _requests()
    # 50 m joins the four neighbours to the light: one problem, no hotspot of 3
    assert len(_run(frame, count="problems", problem_distance_m=50).hotspots) == 0
    assert len(_run(frame, count="problems", problem_gap_days=0.5).hotspots) == 1
    params = HotspotQuery(count="problems", problem_gap_days=2).params()
    assert params["count"] == "problems" and params["problem_gap_days"] == 2
    assert HotspotQuery.from_params(params).problem_gap_days == 2
    with pytest.raises(InputError, match="count: got 'calls'"):
        HotspotQuery(count="calls").validate()
    with pytest.raises(InputError, match="problem_distance_m: got -1"):
        HotspotQuery(problem_distance_m=-1).validate()


def test_requests_without_a_problem_id_are_problems_of_their_own() -> None:
    frame = _requests()
    frame["problem_id"] = None
    result = _run(frame, count="problems")
    assert result.hotspots.iloc[0]["count"] == 16
    assert result.hotspots.iloc[0]["calls"] == 16
    assert result.hotspots.iloc[0]["score_calls"] == 0


def test_sorted_lists_equal_the_per_group_sort() -> None:
    """One sort and a cut give each key's values as the per-group ``sorted`` gave them:
    code-point order (accents, CJK, digits before letters, prefixes first)."""
    import numpy as np

    from clustering.problem_hotspots import sorted_lists

    rng = np.random.default_rng(3)
    alphabet = list("aAbZ09-_éÉß中文🚧 ")
    values = pd.Series(["".join(rng.choice(alphabet, rng.integers(0, 6)))
                        for _ in range(3000)], dtype="str")
    keys = pd.Series([f"P{k}" for k in rng.integers(0, 400, len(values))], dtype="str")
    want = values.groupby(keys).agg(lambda s: sorted(s))
    got = sorted_lists(keys, values)
    assert list(got.index) == sorted(want.index)
    assert all(got[k] == want[k] for k in want.index)
    assert all(type(v) is str for vs in got for v in vs)
    assert sorted_lists(keys.iloc[:0], values.iloc[:0]).empty


def _grouped_collapse(requests: pd.DataFrame) -> pd.DataFrame:
    """``collapse`` written with pandas' sort and groupby, as it was before it sorted
    with Arrow: the reference the column version must equal."""
    from clustering.problem_hotspots import sorted_lists

    frame = requests.reset_index(drop=True)
    own = frame["service_request_id"].astype(str)
    frame["problem_id"] = (frame["problem_id"].astype(object).where(
        frame["problem_id"].notna(), own).astype(str) if "problem_id" in frame else own)
    order = frame.assign(_id=own).sort_values(
        ["problem_id", "requested_datetime", "_id"], kind="stable")
    first = order.drop_duplicates("problem_id").drop(columns="_id").set_index("problem_id")
    by = frame.groupby("problem_id", sort=True)
    is_open = frame["status"].eq("open")
    out = first.reindex(by.size().index)
    out["status"] = ["open" if o else "closed"
                     for o in is_open.groupby(frame["problem_id"]).any().reindex(out.index)]
    due = frame["expected_datetime"].where(is_open)
    out["expected_datetime"] = due.groupby(frame["problem_id"]).min().reindex(out.index)
    out["calls"] = by.size()
    out["last_requested"] = by["requested_datetime"].max()
    ids = sorted_lists(frame["problem_id"], frame["service_request_id"])
    out["request_ids"] = ids.reindex(out.index.astype(str)).to_numpy()
    out = out.reset_index()
    out["service_request_id"] = out["problem_id"]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_collapse_equals_the_grouped_reference(seed: int) -> None:
    """The Arrow sort and run cuts give what pandas' sort and groupby gave: first request,
    open status, earliest open due time, calls, last call and ids, with missing problem
    ids, missing and tied times, ids that sort differently as text, another time zone."""
    import numpy as np

    from clustering.problem_hotspots import collapse

    rng = np.random.default_rng(seed)
    n = 4000
    times = T0 + pd.to_timedelta(rng.integers(0, 40, n), unit="D")
    frame = pd.DataFrame({
        "service_request_id": [f"{k}" for k in rng.permutation(n) * 7],  # "14" < "7"
        "service_name": rng.choice(["Pothole", "Graffiti", "Straße"], n),
        "status": rng.choice(["open", "closed"], n),
        "requested_datetime": times,
        "expected_datetime": times + pd.Timedelta(days=3),
        "address": [f"{k} Main St" for k in range(n)],
        "x": rng.random(n), "y": rng.random(n),
        "problem_id": pd.Series([f"P{k}" for k in rng.integers(0, 600, n)], dtype="str"),
    })
    frame.loc[rng.random(n) < 0.1, "problem_id"] = None
    frame.loc[rng.random(n) < 0.05, "requested_datetime"] = pd.NaT
    frame.loc[rng.random(n) < 0.05, "expected_datetime"] = pd.NaT
    frame.index = rng.permutation(n) + 100  # a selection keeps its frame's labels
    want = _grouped_collapse(frame)
    got = collapse(frame)
    assert len(got) < n  # problems were merged
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    eastern = frame.assign(
        requested_datetime=frame["requested_datetime"].dt.tz_convert("America/New_York"))
    pd.testing.assert_frame_equal(collapse(eastern), _grouped_collapse(eastern),
                                  check_exact=True)
    alone = frame.drop(columns="problem_id")
    pd.testing.assert_frame_equal(collapse(alone), _grouped_collapse(alone), check_exact=True)
