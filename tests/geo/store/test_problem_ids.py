"""problem_id in both stores: set inside the write, updated incrementally, equal to a
recomputation of the whole city, and equal between the stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from clustering.problems import ProblemAssigner, ProblemRules, assign_problems
from geo.ingest.pipeline import ingest
from geo.store.base import Store
from tests.geo.store.stores import NOW, TESTVILLE, open_test_store, write_csv

ASSIGNER = ProblemAssigner(ProblemRules.for_city(TESTVILLE))  # 30 m, 14 days
LON, LAT = -75.15, 39.95
STEP = 0.0002  # about 17 m of longitude here


def _row(rid: str, steps: float, day: int, *, upd: str = "2024-05-20 10:00",
         service: str = "Street Light Outage", status: str = "open") -> dict[str, object]:
    return {"service_request_id": rid, "requested_datetime": f"2024-05-{day:02d} 10:00",
            "updated_datetime": upd, "status": status, "description": service,
            "lon": LON + steps * STEP, "lat": LAT}


def _ids(store: Store) -> dict[str, str]:
    frame = store.requests()
    return dict(zip(frame["service_request_id"], frame["problem_id"], strict=True))


def _from_scratch(store: Store) -> dict[str, str]:
    frame = store.requests()
    return dict(zip(frame["service_request_id"], assign_problems(frame, ASSIGNER.rules),
                    strict=True))


def _scenario(store: Store, tmp: Path) -> list[dict[str, str]]:
    """Two problems, a request that merges them, a move that splits them again, and
    a far-away request in between. Returns the ids after each ingest."""
    seen = []
    steps = [
        [_row("A1", 0, 1), _row("A2", 1, 2), _row("B1", 3, 2), _row("F1", 40, 2)],
        [_row("C1", 2, 3), _row("F2", 80, 3)],                 # C1 bridges A and B
        [_row("C1", 200, 3, upd="2024-05-21 10:00")],          # C1 moves away: split
        [_row("A0", 0.5, 1)],                                  # earlier: new first id
    ]
    for i, rows in enumerate(steps):
        report = ingest(write_csv(tmp / f"s{i}.csv", rows), store, now=NOW, problems=ASSIGNER)
        assert report.balanced
        got = _ids(store)
        assert got == _from_scratch(store)
        seen.append(got)
    return seen


def test_incremental_equals_from_scratch(store: Store, tmp_path: Path) -> None:
    first, merged, split, earlier = _scenario(store, tmp_path)
    assert first == {"A1": "A1", "A2": "A1", "B1": "B1", "F1": "F1"}
    assert merged == {**first, "B1": "A1", "C1": "A1", "F2": "F2"}
    assert split == {**first, "C1": "C1", "F2": "F2"}
    assert earlier == {**split, "A0": "A0", "A1": "A0", "A2": "A0"}


def test_a_write_without_the_rule_is_caught_up_later(store: Store, tmp_path: Path) -> None:
    ingest(write_csv(tmp_path / "a.csv", [_row("A1", 0, 1), _row("A2", 1, 2)]), store,
           now=NOW)
    assert len(_ids(store)) == 2 and all(pd.isna(v) for v in _ids(store).values())
    ingest(write_csv(tmp_path / "b.csv", [_row("A3", 2, 3)]), store, now=NOW,
           problems=ASSIGNER)
    assert _ids(store) == {"A1": "A1", "A2": "A1", "A3": "A1"}


def test_rebuild_with_another_rule(store: Store, tmp_path: Path) -> None:
    ingest(write_csv(tmp_path / "a.csv", [_row("A1", 0, 1), _row("A2", 1, 2)]), store,
           now=NOW, problems=ASSIGNER)
    tight = ProblemAssigner(ProblemRules.for_city(TESTVILLE, distance_m=5))
    assert store.rebuild_problems(tight) == 1
    assert _ids(store) == {"A1": "A1", "A2": "A2"}
    assert store.rebuild_problems(tight) == 0


def test_both_stores_hold_the_same_problem_ids(request: pytest.FixtureRequest,
                                               tmp_path: Path) -> None:
    request.applymarker(pytest.mark.postgis)
    results = []
    for kind in ("embedded", "postgis"):
        s = open_test_store(kind, tmp_path / kind, request, TESTVILLE)
        (tmp_path / kind).mkdir(exist_ok=True)
        try:
            results.append(_scenario(s, tmp_path / kind))
            frame = s.requests()
            assert frame["problem_id"].notna().all()
        finally:
            s.close()
    assert results[0] == results[1]


def test_a_big_city_incremental_batch(store: Store, tmp_path: Path) -> None:
    """Many problems stored, then a batch that joins some, starts others and merges two."""
    rows = [_row(f"R{i:03d}", (i % 30) * 1.1 + (i // 30) * 100, 1 + i % 20)
            for i in range(300)]
    ingest(write_csv(tmp_path / "a.csv", rows), store, now=NOW, problems=ASSIGNER)
    more = [_row(f"N{i:02d}", (i % 15) * 2.3 + (i // 15) * 100 + 0.5, 15 + i % 10)
            for i in range(40)]
    ingest(write_csv(tmp_path / "b.csv", more), store, now=NOW, problems=ASSIGNER)
    got = pd.Series(_ids(store))
    assert got.to_dict() == _from_scratch(store)
    assert 1 < got.nunique() < len(got)


@dataclass(frozen=True)
class _Recording(ProblemAssigner):
    """The city's rule, noting the size of every context it is asked to assign."""

    contexts: list[int] = field(default_factory=list)

    def assign(self, frame: pd.DataFrame) -> pd.Series:
        self.contexts.append(len(frame))
        return super().assign(frame)


def test_a_small_write_recomputes_only_its_neighbourhood(store: Store, tmp_path: Path) -> None:
    """2,000 stored requests, each its own problem; a write of three rows (one beside a
    stored request) hands the rule those rows and that neighbour, not the city."""
    grid = [{**_row(f"G{i:04d}", (i % 50) * 5, 1 + i % 20),
             "lat": LAT + (i // 50) * 0.001} for i in range(2000)]
    recording = _Recording(ASSIGNER.rules)
    ingest(write_csv(tmp_path / "a.csv", grid), store, now=NOW, problems=recording)
    assert recording.contexts == [2000]
    near = {**_row("N1", 5 * 7 + 1, 19), "lat": LAT + 3 * 0.001}  # beside G0157, a day on
    apart = [{**_row(f"N{k}", 250 + k * 5, 5), "lat": LAT + 0.02} for k in (2, 3)]
    ingest(write_csv(tmp_path / "b.csv", [near, *apart]), store, now=NOW,
           problems=recording)
    assert recording.contexts[1:] == [4]
    got = _ids(store)
    assert got == _from_scratch(store)
    assert got["N1"] == "G0157" and got["N2"] == "N2" and got["N3"] == "N3"
