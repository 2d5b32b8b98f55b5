"""The reports page's request reports read only their rows and columns, and give the
tables the reports give on the whole table.

On both stores: generated Philadelphia requests (a year up to 2026-06-30, grouped into
problems) and a second (test) council map in force from 2026-03-01 whose districts 1 and
2 trade codes, so that areas as drawn today and on the request date differ. Every report
of the page, with and without dates (each side alone, none in the data, a period longer
than the year-earlier gap, one across the redistricting and a daylight-saving change),
broken down or not, with both area choices, is compared with the same report run the
old way: every stored request (``store.requests()``) prepared, then the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from clustering.problems import ProblemAssigner, ProblemRules
from geo.ingest.pipeline import ingest
from geo.store.base import Store, open_store
from geo.store.embedded import EmbeddedStore
from geo.store.postgis import PostGISStore
from geo.store.reads import RequestFilter
from hotspot311.errors import InputError
from hotspot311.web.reportpage import REQUEST_REPORTS, request_report
from layers.profile import load_profile
from layers.services import load_services
from reports.asdrawn import as_drawn as drawn_frame
from reports.asdrawn import describe_as_drawn
from reports.calendar import load_calendar
from reports.filters import ReportFilter
from reports.meeting import run_report
from reports.reads import REPORT_COLUMNS, report_columns, report_periods, report_requests
from reports.sla import add_due_and_state
from tests.geo.store.stores import store_location

END = datetime(2026, 6, 30, 12, tzinfo=UTC)
NOW = datetime(2026, 7, 1, 9, tzinfo=UTC)
#: (start, end) of the page's date inputs.
DATES = [
    (None, None),
    (date(2026, 6, 1), date(2026, 6, 30)),   # the year earlier reaches the data's start
    (date(2026, 2, 20), date(2026, 3, 10)),  # the redistricting; DST starts 2026-03-08
    (date(2026, 3, 8), date(2026, 3, 8)),    # one day, the DST change
    (date(2025, 8, 1), date(2026, 6, 30)),   # longer than the year-earlier gap
    (date(2026, 1, 15), None),
    (date(2026, 6, 30), None),
    (date(2026, 11, 1), None),               # after the data
    (None, date(2025, 9, 3)),
    (None, date(2025, 1, 1)),                # before the data
    (date(2020, 1, 1), date(2020, 2, 1)),    # no data
]
#: (by, as_drawn): council_district has two maps, zip one.
BREAKDOWNS = [(None, "today"), (None, "request-date"), ("council_district", "today"),
              ("council_district", "request-date"), ("zip", "request-date")]
WHOLE = ("requests", "request_columns", "request_reader")


@pytest.fixture(scope="module", params=["embedded", pytest.param("postgis",
                                                                 marks=pytest.mark.postgis)])
def location(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The store, each in turn (a directory or a ``postgresql://`` URL)."""
    from hotspot311.cli.demo import generate

    root = tmp_path_factory.mktemp("report_reads")
    profile = load_profile("philadelphia")
    where = store_location(request.param, root, request, "report_reads")
    store = open_store(where, profile)
    try:
        made = generate(1500, seed=5, end=END)
        pd.concat([made, edge_rows(made, profile.timezone)]).to_csv(root / "requests.csv",
                                                                    index=False)
        ingest(root / "requests.csv", store, now=END,
               problems=ProblemAssigner(ProblemRules.for_city(profile)))
        council = next(s for s in profile.layers if s.key == "council_district")
        areas = store.areas("council_district").copy()
        areas["code"] = areas["code"].replace({"1": "2", "2": "1"})  # a test map
        store.add_generation(replace(council, valid_from=date(2026, 3, 1)), areas)
    finally:
        store.close()
    return where


def edge_days() -> list[date]:
    """The days either side of each date range the tests read (inside the data's year,
    2025-07-01 to 2026-06-30 local, which the missing dates resolve to)."""
    bounds = [(s or date(2025, 7, 1), e or date(2026, 6, 30)) for s, e in DATES]
    ranges = [r for a, b in bounds if a <= b for n in REQUEST_REPORTS
              for r in report_periods(n, ReportFilter(start=a, end=b))]
    one = timedelta(days=1)
    days = {d for first, last in ranges for d in (first - one, first, last, last + one)}
    return sorted(d for d in days if date(2025, 7, 2) <= d <= date(2026, 6, 29))


def edge_rows(made: pd.DataFrame, timezone: str) -> pd.DataFrame:
    """Requests five minutes after and before local midnight on each of
    :func:`edge_days`, so that a date range read a few hours short shows (the generated
    requests are all made between 1:00 and 19:00 local time)."""
    times = [pd.Timestamp(datetime.combine(d, t), tz=timezone) for d in edge_days()
             for t in (time(0, 5), time(23, 55))]
    rows = made.iloc[[i % len(made) for i in range(len(times))]].reset_index(drop=True)
    shift = pd.Series(times).dt.tz_convert("UTC") - pd.to_datetime(rows["requested_datetime"],
                                                                  utc=True)
    for col in ("requested_datetime", "updated_datetime", "expected_datetime",
                "closed_datetime"):
        moved = pd.to_datetime(rows[col], utc=True) + shift
        rows[col] = moved.dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(moved.notna(), None)
    rows["service_request_id"] = [f"EDGE-{i:04d}" for i in range(len(rows))]
    return rows


@pytest.fixture(scope="module")
def store(location: str) -> Iterator[Store]:
    s = open_store(location, load_profile("philadelphia"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def whole(store: Store) -> dict[str, pd.DataFrame]:
    """Every stored request prepared the old way, per area choice."""
    profile = store.profile
    requests = pd.DataFrame(store.requests())
    return {mode: add_due_and_state(
        drawn_frame(requests, store, mode=mode, timezone=profile.timezone),
        services=load_services(profile), calendar=load_calendar(profile), now=NOW)
        for mode in ("today", "request-date")}


def old_report(store: Store, whole: dict[str, pd.DataFrame], name: str,
               start: date | None, end: date | None, by: str | None,
               mode: str) -> pd.DataFrame:
    """The page's report as it was computed: on every stored request."""
    options: dict[str, Any] = {"per": by} if name == "sla" and by else {"by": by}
    table = run_report(name, whole[mode], ReportFilter(start=start, end=end).validate(),
                       timezone=store.profile.timezone, **options)
    out = table.copy()
    out.attrs = {}
    return out


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any, list[str]]]:
    """(method, filter, columns returned) of every request read while the test runs."""
    log: list[tuple[str, Any, list[str]]] = []

    def wrap(cls: type, name: str) -> None:
        real: Callable[..., Any] = getattr(cls, name)

        def recorded(self: Store, *args: Any, **kwargs: Any) -> Any:
            out = real(self, *args, **kwargs)
            cols = list(out.columns) if isinstance(out, pd.DataFrame) else []
            log.append((name, args[0] if args else None, cols))
            return out

        monkeypatch.setattr(cls, name, recorded)

    for cls in (EmbeddedStore, PostGISStore):
        for name in (*WHOLE, "select_requests"):
            wrap(cls, name)
    return log


@pytest.mark.parametrize("start,end", DATES)
@pytest.mark.parametrize("name", list(REQUEST_REPORTS))
def test_each_report_equals_the_report_on_the_whole_table(
        store: Store, whole: dict[str, pd.DataFrame], name: str, start: date | None,
        end: date | None) -> None:
    for by, mode in BREAKDOWNS:
        got, note = request_report(store, name, now=NOW, start=start, end=end, by=by,
                                   as_drawn=mode)
        expected = old_report(store, whole, name, start, end, by, mode)
        pd.testing.assert_frame_equal(got, expected, obj=f"{name} {start}…{end} {by} {mode}")
        assert note == whole[mode].attrs["as_drawn"]


@pytest.mark.parametrize("start,end", [DATES[2], DATES[5], DATES[8]])
def test_department_and_area_filters_and_monthly_volumes(
        store: Store, whole: dict[str, pd.DataFrame], start: date | None,
        end: date | None) -> None:
    """:func:`report_requests` beyond the page: a department (any case) and areas of the
    redrawn layer (resolving a missing date on the redrawn codes), volumes by month."""
    filt = ReportFilter(start=start, end=end, departments=("streets department",),
                        areas={"council_district": ("1", "2")})
    tz = store.profile.timezone
    for mode in ("today", "request-date"):
        for name in REQUEST_REPORTS:
            options: dict[str, Any] = {"by": "zip"}
            if name == "volumes":
                options["freq"] = "month"
            requests, period = report_requests(store, name, filt, now=NOW, as_drawn=mode,
                                               by="zip", freq=options.get("freq", "week"))
            got = run_report(name, requests, period, timezone=tz, **options)
            expected = run_report(name, whole[mode], filt, timezone=tz, **options)
            pd.testing.assert_frame_equal(got, expected, obj=f"{name} {start}…{end} {mode}")
            assert got.attrs["period"] == expected.attrs["period"]
            assert len(got) > 0


def test_the_reports_count_requests(store: Store, whole: dict[str, pd.DataFrame]) -> None:
    """The comparison is not between empty tables: the data fills the periods tested."""
    top = request_report(store, "top10", now=NOW, start=date(2026, 6, 1),
                         end=date(2026, 6, 30))[0]
    assert top["count"].sum() > 50 and top["previous_count"].sum() > 50
    assert "problems" in top.columns
    weeks = request_report(store, "volumes", now=NOW, start=date(2026, 6, 1),
                           end=date(2026, 6, 30))[0]
    assert weeks["year_earlier"].sum() > 0
    drawn = request_report(store, "sla", now=NOW, by="council_district",
                           as_drawn="request-date")[0]
    today = request_report(store, "sla", now=NOW, by="council_district")[0]
    assert drawn["requests"].tolist() != today["requests"].tolist()


@pytest.mark.parametrize("start,end", [DATES[0], DATES[1], DATES[5], DATES[8]])
def test_reads_only_the_needed_rows_and_columns(
        store: Store, asked: list[tuple[str, Any, list[str]]], start: date | None,
        end: date | None) -> None:
    total = store.request_summary(RequestFilter()).count
    for name in REQUEST_REPORTS:
        for by, mode in BREAKDOWNS:
            asked.clear()
            request_report(store, name, now=NOW, start=start, end=end, by=by, as_drawn=mode)
            assert asked and not {n for n, _, _ in asked} & set(WHOLE), asked
            points = ["x", "y"] if (by, mode) == ("council_district", "request-date") else []
            allowed = {*REPORT_COLUMNS, *([by] if by else []), *points}
            for _, filt, cols in asked:
                assert set(cols) <= allowed, (name, by, mode, cols)
                assert set(points) <= set(cols)
                assert not {"geometry", "geom", "geom_city"} & set(cols)
                if start is not None or end is not None:
                    assert filt.start is not None or filt.end is not None
            ids = pd.concat([store.select_requests(f, ["service_request_id"])
                             for _, f, _ in list(asked)])["service_request_id"]
            assert ids.is_unique  # no row read twice
            if start is not None and end is not None:
                assert len(ids) < total / 2, (name, len(ids), total)


def test_the_windows_of_each_report() -> None:
    june = ReportFilter(start=date(2026, 6, 1), end=date(2026, 6, 30))
    assert report_periods("status", june) == [(date(2026, 6, 1), date(2026, 6, 30))]
    assert report_periods("top10", june) == [(date(2026, 5, 2), date(2026, 6, 30))]
    assert report_periods("volumes", june) == [(date(2026, 6, 1), date(2026, 6, 30)),
                                               (date(2025, 6, 2), date(2025, 7, 1))]
    assert report_periods("volumes", june, freq="month")[1] == (date(2025, 6, 1),
                                                                date(2025, 6, 30))
    with pytest.raises(InputError, match="report: got 'top11'; allowed: top10"):
        report_periods("top11", june)
    with pytest.raises(InputError, match="period: got 2026-06-01 … None; both dates"):
        report_periods("sla", ReportFilter(start=date(2026, 6, 1)))


def test_columns_and_their_errors(store: Store) -> None:
    assert report_columns(store) == list(REPORT_COLUMNS)
    assert report_columns(store, ["zip"], as_drawn="request-date")[-1] == "zip"
    assert report_columns(store, ["council_district"], as_drawn="request-date")[-3:] == [
        "council_district", "x", "y"]
    with pytest.raises(InputError, match=r"by: got 'ward'; allowed: a layer of the store "
                                         r"\(zip, "):
        request_report(store, "sla", now=NOW, by="ward")
    with pytest.raises(InputError, match=r"layers: got \['ward'\]; allowed: a layer of "):
        report_columns(store, ["zip", "ward"])
    with pytest.raises(InputError, match="as_drawn: got 'yesterday'"):
        request_report(store, "sla", now=NOW, as_drawn="yesterday")
    with pytest.raises(InputError, match="report: got 'top11'"):
        request_report(store, "top11", now=NOW)
    with pytest.raises(InputError, match="start: 2026-06-02 is after end 2026-06-01"):
        request_report(store, "sla", now=NOW, start=date(2026, 6, 2), end=date(2026, 6, 1))


@pytest.mark.parametrize("kind", ["embedded", pytest.param("postgis",
                                                         marks=pytest.mark.postgis)])
def test_an_empty_store_gives_an_empty_table(kind: str, tmp_path: Path,
                                             request: pytest.FixtureRequest) -> None:
    from tests.geo.store.stores import open_test_store

    empty = open_test_store(kind, tmp_path, request, load_profile("philadelphia"))
    try:
        for mode in ("today", "request-date"):
            table, note = request_report(empty, "top10", now=NOW, as_drawn=mode)
            assert table.empty and list(table.columns) == []
            assert note == describe_as_drawn(empty, mode)
    finally:
        empty.close()
