"""Pushed-down reads (geo.store.reads) on both stores, against pandas on the full frame."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo.store.base import Store, open_store
from geo.store.reads import (
    RequestFilter,
    cells_from_facets,
    facets_answer,
    lon_ranges,
    summary_from_facets,
)
from hotspot311.errors import InputError
from layers.profile import load_profile
from tests.appstore import END, fill_store
from tests.geo.store.stores import store_location

NOW = END + timedelta(days=3)


@pytest.fixture(scope="module", params=["embedded", pytest.param("postgis",
                                                                 marks=pytest.mark.postgis)])
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Store, pd.DataFrame]]:
    directory = tmp_path_factory.mktemp("reads")
    location = store_location(request.param, directory, request, "reads")
    fill_store(location, directory / "requests.csv", 900, seed=7)
    store = open_store(location, load_profile("philadelphia"))
    frame = pd.DataFrame(store.requests()).drop(columns="geometry")
    try:
        yield store, frame
    finally:
        store.close()


def expected_mask(frame: pd.DataFrame, filt: RequestFilter) -> np.ndarray:
    keep = np.ones(len(frame), dtype=bool)
    if filt.services:
        keep &= frame["service_name"].isin(filt.services).to_numpy()
    if filt.status != "all":
        keep &= (frame["status"] == filt.status).to_numpy()
    if filt.start is not None:
        keep &= (frame["requested_datetime"] >= filt.start).to_numpy()
    if filt.end is not None:
        keep &= (frame["requested_datetime"] < filt.end).to_numpy()
    for key, codes in filt.area_map().items():
        keep &= frame[key].isin(codes).to_numpy()
    if filt.box is not None:
        s, w, n, e = filt.box
        keep &= ((frame["lat"] >= s) & (frame["lat"] <= n) & (frame["lon"] >= w)
                 & (frame["lon"] <= e)).to_numpy()
    return keep


def filters(frame: pd.DataFrame) -> list[RequestFilter]:
    top = frame["service_name"].value_counts().index[:2].tolist()
    mid = frame["requested_datetime"].quantile(0.5)
    lat, lon = float(frame["lat"].median()), float(frame["lon"].median())
    code = frame["council_district"].dropna().value_counts().index[0]
    return [RequestFilter(), RequestFilter(services=tuple(top)),
            RequestFilter(status="open", start=mid.to_pydatetime()),
            RequestFilter(end=mid.to_pydatetime(), areas=(("council_district", (code,)),)),
            RequestFilter(box=(lat - 0.01, lon - 0.01, lat + 0.01, lon + 0.01))]


def test_summary_and_group_counts_equal_pandas(filled: tuple[Store, pd.DataFrame]) -> None:
    store, frame = filled
    for filt in filters(frame):
        rows = frame[expected_mask(frame, filt)]
        summary = store.request_summary(filt, now=NOW)
        is_open = rows["status"] == "open"
        overdue = is_open & (rows["expected_datetime"] < pd.Timestamp(NOW))
        assert (summary.count, summary.open, summary.overdue) == (
            len(rows), int(is_open.sum()), int(overdue.sum())), filt
        if len(rows):
            assert summary.first == rows["requested_datetime"].min()
            assert summary.last == rows["requested_datetime"].max()
        for column in ("service_name", "council_district"):
            got = store.group_counts(filt, column, now=NOW)
            want = rows[column].astype(object).where(rows[column].notna(), None) \
                .value_counts(dropna=False)
            assert dict(zip(got.index, got["requests"], strict=True)) == {
                k: int(v) for k, v in want.items()}
            opened = rows[is_open][column].astype(object).value_counts()
            assert {k: int(v) for k, v in got["open"].items() if v} == {
                k: int(v) for k, v in opened.items()}


def test_facet_counts_give_the_summaries_of_type_department_status_filters(
        filled: tuple[Store, pd.DataFrame]) -> None:
    store, frame = filled
    facets = store.facet_counts(now=NOW)
    assert int(facets["requests"].sum()) == len(frame)
    top = frame["service_name"].value_counts().index[:2].tolist()
    agency = str(frame["agency_responsible"].dropna().iloc[0])
    for filt in [RequestFilter(), RequestFilter(services=tuple(top)),
                 RequestFilter(status="open"),
                 RequestFilter(services=(top[0],), agencies=(agency,), status="closed"),
                 RequestFilter(services=("no such type",))]:
        assert facets_answer(filt)
        assert summary_from_facets(facets, filt) == store.request_summary(filt, now=NOW), filt
    late = RequestFilter(start=frame["requested_datetime"].median().to_pydatetime())
    assert not facets_answer(late)
    with pytest.raises(InputError, match="service type, department and status only"):
        summary_from_facets(facets, late)


def test_newest_request_problem_count_and_area_names(filled: tuple[Store, pd.DataFrame]
                                                     ) -> None:
    store, frame = filled
    top = str(frame["service_name"].value_counts().index[0])
    filt = RequestFilter(services=(top,))
    rows = frame[expected_mask(frame, filt)]
    assert store.latest_request(filt) == rows["requested_datetime"].max()
    assert store.latest_request(RequestFilter(services=("no such type",))) is None
    problems = rows["problem_id"].where(rows["problem_id"].notna(),
                                        "own " + rows["service_request_id"].astype(str))
    assert store.problem_count(filt) == problems.nunique()
    every = frame["problem_id"].where(frame["problem_id"].notna(),
                                      "own " + frame["service_request_id"].astype(str))
    assert store.problem_count(RequestFilter()) == every.nunique() < len(frame)
    names = store.area_names("police_district")
    areas = store.areas("police_district")
    assert names == dict(zip(areas["code"].astype(str), areas["name"].astype(str),
                             strict=True))


def test_grid_cells_equal_numpy(filled: tuple[Store, pd.DataFrame]) -> None:
    store, frame = filled
    for filt in filters(frame)[:3]:
        rows = frame[expected_mask(frame, filt)]
        got = store.grid_cells(filt, grid_deg=0.0003)
        want = pd.DataFrame({"row": np.floor(rows["lat"] / 0.0003).astype("int64"),
                             "col": np.floor(rows["lon"] / 0.0003).astype("int64")}) \
            .value_counts().sort_index()
        assert got.set_index(["row", "col"])["n"].to_dict() == want.to_dict()
        assert int(got["n"].sum()) == len(rows)


def test_select_by_box_id_and_problem(filled: tuple[Store, pd.DataFrame]) -> None:
    store, frame = filled
    box_filter = filters(frame)[-1]
    inside = frame[expected_mask(frame, box_filter)]
    assert 0 < len(inside) < len(frame)
    got = store.select_requests(box_filter, ["service_request_id", "address",
                                             "council_district"])
    assert sorted(got["service_request_id"]) == sorted(inside["service_request_id"])
    assert list(got.columns) == ["service_request_id", "address", "council_district"]
    assert len(store.select_requests(box_filter, ["service_request_id"], limit=3)) == 3
    one = frame.iloc[17]
    row = store.select_requests(RequestFilter(ids=(one["service_request_id"],)))
    assert len(row) == 1 and row["address"].iloc[0] == one["address"]
    assert row["requested_datetime"].iloc[0] == one["requested_datetime"]
    assert row["council_district"].iloc[0] == one["council_district"]
    pid = frame["problem_id"].value_counts().index[0]
    same = store.select_requests(RequestFilter(problems=(pid,)), ["service_request_id"])
    assert sorted(same["service_request_id"]) == sorted(
        frame.loc[frame["problem_id"] == pid, "service_request_id"])
    assert store.select_requests(RequestFilter(ids=("no-such-id",))).empty
    centre = store.request_centre()
    assert centre == pytest.approx((frame["lat"].median(), frame["lon"].median()))


def test_a_large_select_with_area_codes_equals_pandas(filled: tuple[Store, pd.DataFrame]
                                                      ) -> None:
    """Without a limit a select may come back as Arrow (PostGIS): the same rows, columns
    and values as the row-by-row read."""
    store, frame = filled
    cols = ["service_request_id", "status", "requested_datetime", "x", "lat",
            "council_district", "police_district", "problem_id"]
    filt = RequestFilter(status="open")
    got = store.select_requests(filt, cols).sort_values("service_request_id")
    few = store.select_requests(filt, cols, limit=10_000).sort_values("service_request_id")
    want = frame[expected_mask(frame, filt)].sort_values("service_request_id")
    assert list(got.columns) == cols and len(got) == len(want) == len(few)
    for c in cols:
        for other in (want, few):
            left, right = got[c].reset_index(drop=True), other[c].reset_index(drop=True)
            same = (left.astype(object).where(left.notna(), None).tolist()
                    == right.astype(object).where(right.notna(), None).tolist())
            assert same, c


def test_a_world_copy_box_selects_the_same_requests(filled: tuple[Store, pd.DataFrame]
                                                    ) -> None:
    store, frame = filled
    s, w, n, e = filters(frame)[-1].box  # type: ignore[misc]
    here = store.request_summary(RequestFilter(box=(s, w, n, e))).count
    west_copy = store.request_summary(RequestFilter(box=(s, w - 360, n, e - 360))).count
    assert here == west_copy > 0
    assert lon_ranges((0, 170, 1, 190)) == [(170.0, 180.0), (-180.0, -170.0)]


def test_bad_filters_are_named(filled: tuple[Store, pd.DataFrame]) -> None:
    store, _ = filled
    with pytest.raises(InputError, match="status: got 'maybe'"):
        store.request_summary(RequestFilter(status="maybe"))
    with pytest.raises(InputError, match="layer 'wards' is not in the store"):
        store.group_counts(RequestFilter(areas=(("wards", ("1",)),)), "status")
    with pytest.raises(InputError, match=r"south 2\.0 must be at or below north 1\.0"):
        store.select_requests(RequestFilter(box=(2.0, 0.0, 1.0, 1.0)))
    with pytest.raises(InputError, match="start: got"):
        store.request_summary(RequestFilter(start=datetime(2026, 1, 1)))


def test_the_export_log(filled: tuple[Store, pd.DataFrame]) -> None:
    store, _ = filled
    before = len(store.exports())
    store.record_export(user="ana@city.gov", role="lead", department="Streets",
                        what="work list CSV", filters={"services": ["Street Defect"]}, rows=12)
    log = store.exports()
    assert len(log) == before + 1
    last = log.iloc[-1]
    assert (last["user_name"], last["role"], last["department"], last["what"], last["rows"]) \
        == ("ana@city.gov", "lead", "Streets", "work list CSV", 12)
    assert last["filters"] == {"services": ["Street Defect"]}
    assert datetime.fromisoformat(last["exported_at"]) > datetime.now(UTC) - timedelta(hours=1)


def test_facet_cells_give_the_grid_counts_of_type_department_status_filters(
        filled: tuple[Store, pd.DataFrame]) -> None:
    store, frame = filled
    cells = store.facet_cells(grid_deg=0.0003)
    assert cells is not None
    located = frame["lat"].notna() & frame["lon"].notna()
    assert int(cells["n"].sum()) == int(located.sum()) > 0
    assert not cells.duplicated(["service_name", "agency_responsible", "status", "row",
                                 "col"]).any()
    top = frame["service_name"].value_counts().index[:2].tolist()
    agency = str(frame["agency_responsible"].dropna().iloc[0])
    for filt in [RequestFilter(), RequestFilter(services=tuple(top)),
                 RequestFilter(status="open"), RequestFilter(agencies=(agency,)),
                 RequestFilter(services=(top[0],), agencies=(agency,), status="closed"),
                 RequestFilter(services=("no such type",))]:
        want = store.grid_cells(filt, grid_deg=0.0003)
        got = cells_from_facets(cells, filt)
        assert got.to_dict("list") == want.to_dict("list"), filt
        assert list(got.dtypes.astype(str)) == ["int64"] * 3
    assert store.facet_cells(grid_deg=0.0003, limit=len(cells) - 1) is None
    again = store.facet_cells(grid_deg=0.0003, limit=len(cells))
    assert again is not None and len(again) == len(cells)
    with pytest.raises(InputError, match="service type, department and status only"):
        cells_from_facets(cells, RequestFilter(status="open", start=NOW))


def test_an_id_with_a_nul_character_matches_nothing(filled: tuple[Store, pd.DataFrame]
                                                    ) -> None:
    # (PostgreSQL text cannot hold one: the PostGIS store refused the whole read)
    store, frame = filled
    rid = str(frame["service_request_id"].iloc[7])
    got = store.select_requests(RequestFilter(ids=(rid, rid + "\x00")), ["service_request_id"])
    assert got["service_request_id"].tolist() == [rid]
    assert store.select_requests(RequestFilter(ids=("x\x00",)), ["service_request_id"]).empty
    assert store.request_summary(RequestFilter(ids=("x\x00",))).count == 0


@pytest.mark.parametrize("kind", ["embedded", pytest.param("postgis", marks=pytest.mark.postgis)])
def test_facet_cells_keep_requests_with_a_missing_department(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from geo.ingest.pipeline import ingest
    from hotspot311.cli.demo import generate

    rows = generate(300, seed=3, end=END)
    rows.loc[rows.index[20:45], "agency_responsible"] = None
    rows.to_csv(tmp_path / "rows.csv", index=False)
    store = open_store(store_location(kind, tmp_path, request, "facets"),
                       load_profile("philadelphia"))
    try:
        ingest(tmp_path / "rows.csv", store, now=END)
        frame = store.select_requests(RequestFilter(), ["agency_responsible", "lat", "lon"])
        cells = store.facet_cells(grid_deg=0.0003)
        assert cells is not None and int(cells["n"].sum()) == len(frame) == 300
        missing = cells["agency_responsible"].isna()
        assert int(cells.loc[missing, "n"].sum()) == 25
        agency = str(frame["agency_responsible"].dropna().iloc[0])
        for filt in [RequestFilter(), RequestFilter(agencies=(agency,)),
                     RequestFilter(status="closed", agencies=(agency,))]:
            assert cells_from_facets(cells, filt).to_dict("list") == store.grid_cells(
                filt, grid_deg=0.0003).to_dict("list"), filt
    finally:
        store.close()
