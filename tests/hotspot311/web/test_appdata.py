"""The pages' reads: rows of the filtered requests, SLA states, categoricals as text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from geo.store.base import open_store
from hotspot311.web.filters import Filters
from hotspot311.web.pagereads import SLA_COLUMNS, as_text, rows, sla_state
from layers.profile import load_profile
from reports.sla import SLA_STATES, add_due_and_state


def test_rows_with_sla_states_are_worked_out_on_the_other_filters_rows(app_store: Path
                                                                        ) -> None:
    profile = load_profile("philadelphia")
    store = open_store(app_store, profile)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    filters = Filters(status="open", sla_states=("open_overdue",))
    got = rows(store, filters, now, ["service_request_id"])
    full = pd.DataFrame(store.requests())
    state = sla_state(full[list(SLA_COLUMNS)], profile, now=now)
    want = full[(full["status"] == "open") & (state == "open_overdue").to_numpy()]
    assert sorted(got["service_request_id"]) == sorted(want["service_request_id"])
    assert 0 < len(got) < len(full)
    plain = rows(store, Filters(status="open"), now, ["service_request_id"], limit=5)
    assert len(plain) == 5


def test_sla_state_is_the_reports_state_as_a_categorical(app_store: Path) -> None:
    profile = load_profile("philadelphia")
    store = open_store(app_store, profile)
    frame = store.request_columns(list(SLA_COLUMNS), categories=["service_name", "status"])
    now = datetime(2026, 6, 1, tzinfo=UTC)
    state = sla_state(frame, profile, now=now)
    assert list(state.cat.categories) == list(SLA_STATES)
    from layers.services import load_services
    from reports.calendar import load_calendar

    plain = add_due_and_state(store.request_columns(list(SLA_COLUMNS)),
                              services=load_services(profile), calendar=load_calendar(profile),
                              now=now)
    assert state.astype(str).tolist() == plain["sla_state"].tolist()
    assert state.nunique() > 1


def test_as_text_turns_categoricals_back_into_text() -> None:
    frame = pd.DataFrame({"s": pd.Categorical(["b", "a", None]), "n": [1, 2, 3]})
    out = as_text(frame)
    assert out["s"].tolist()[:2] == ["b", "a"] and out["s"].isna().tolist() == [False, False,
                                                                                 True]
    assert not isinstance(out["s"].dtype, pd.CategoricalDtype)
    assert out["n"].tolist() == [1, 2, 3]
    assert isinstance(frame["s"].dtype, pd.CategoricalDtype)  # the input untouched


def test_hotspots_are_named_by_place_in_the_table_the_map_and_the_work_list(
        app_location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each hotspot carries the nearest corner and neighborhood of its centre (the
    profile's place layer) in the crew table, the map's hotspots and the work list; the
    printable list shows the place, escaped."""
    import streamlit as st

    from geo.geocode.places import DASH
    from hotspot311.errors import StoreError
    from hotspot311.web import appdata
    from hotspot311.web.pagereads import same_run
    from hotspot311.web.worklist import work_list_csv, work_list_html

    monkeypatch.setenv("HOTSPOT311_ALLOW_WRITE_ROLE", "1")  # the test server's superuser
    st.cache_data.clear()
    appdata.hotspots.clear()  # (shared resources, not data: cleared apart)
    appdata.facet_cells.clear()
    store = open_store(app_location, load_profile("philadelphia"))
    try:
        version = appdata.data_version(store)
        neighborhoods = set(store.area_names("neighborhood").values())
    finally:
        store.close()
    now = datetime(2026, 7, 1, tzinfo=UTC)
    spots = appdata.hotspots(app_location, "philadelphia", version, Filters(), days=365,
                             eps_m=150.0, min_samples=3, weights="balanced", now=now)
    table = spots.table
    assert len(table) > 0 and "place" in table.columns
    areas = []
    for place in table["place"]:
        corner, _, area = place.partition(DASH)
        assert " & " in corner and (area in neighborhoods or not area), place
        areas.append(area)
    assert sum(bool(a) for a in areas) > len(areas) / 2  # most lie inside a neighborhood
    assert not table["place"].str.fullmatch(r"H[0-9a-f]{10}").any()  # not a hash id
    assert spots.web.set_index("hotspot_id")["place"].to_dict() == \
        table.set_index("hotspot_id")["place"].to_dict()
    # the work list, made on demand, is the same run's: its hotspots, ranks and places
    work = appdata.work_list(app_location, "philadelphia", version, Filters(), days=365,
                             eps_m=150.0, min_samples=3, weights="balanced", now=now)
    by_work = work.drop_duplicates("hotspot_id").set_index("hotspot_id")
    assert set(by_work.index) == set(table["hotspot_id"])
    assert by_work["place"].to_dict() == table.set_index("hotspot_id")["place"].reindex(
        by_work.index).to_dict()
    assert by_work["rank"].to_dict() == table.set_index("hotspot_id")["rank"].reindex(
        by_work.index).to_dict()
    same_run(work, table)
    with pytest.raises(StoreError, match="reload the page"):  # a run of other requests
        same_run(work, table.iloc[1:])
    assert "place" in work_list_csv(work).decode().splitlines()[0].split(",")
    hostile = table.assign(place="<script>alert(1)</script> & Main St")
    page = work_list_html(hostile, work, title="t", params={}, generated=now)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


@pytest.mark.parametrize(("setting", "turns"), [("3", 3), ("", 2), (" 1 ", 1)])
def test_hotspot_runs_take_turns(monkeypatch: pytest.MonkeyPatch, setting: str,
                                 turns: int) -> None:
    """At most HOTSPOT311_HOTSPOT_RUNS runs at once in a process (2 unset); the next one
    waits."""
    from hotspot311.web import appdata

    monkeypatch.setenv("HOTSPOT311_HOTSPOT_RUNS", setting)
    monkeypatch.setattr(appdata, "_slots", None)
    slots = appdata.hotspot_slots()
    assert appdata.hotspot_slots() is slots  # one per process
    taken = 0
    while taken < 10 and slots.acquire(blocking=False):
        taken += 1
    for _ in range(taken):
        slots.release()
    assert taken == turns


def test_the_hotspot_run_holds_a_turn(app_location: str, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    import streamlit as st

    import clustering.run
    from hotspot311.web import appdata

    held: list[bool] = []

    class Turn:
        taken = False

        def __enter__(self) -> None:
            Turn.taken = True

        def __exit__(self, *exc: object) -> None:
            Turn.taken = False

    real_run = clustering.run.run_hotspots

    def run(*args: object, **kwargs: object) -> object:
        held.append(Turn.taken)
        return real_run(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setenv("HOTSPOT311_ALLOW_WRITE_ROLE", "1")
    monkeypatch.setattr(appdata, "hotspot_slots", Turn)
    monkeypatch.setattr(clustering.run, "run_hotspots", run)
    st.cache_data.clear()
    appdata.hotspots.clear()  # (shared resources, not data: cleared apart)
    appdata.facet_cells.clear()
    store = open_store(app_location, load_profile("philadelphia"))
    try:
        version = appdata.data_version(store)
    finally:
        store.close()
    spots = appdata.hotspots(app_location, "philadelphia", version, Filters(), days=365,
                             eps_m=150.0, min_samples=3, weights="balanced",
                             now=datetime(2026, 7, 1, tzinfo=UTC))
    assert held == [True] and not Turn.taken and len(spots.table) > 0


@pytest.mark.parametrize("setting", ["0", "-2", "two", "1.5", "\u00b2"])
def test_a_bad_count_setting_names_the_variable_its_value_and_what_is_allowed(
        monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    from hotspot311.errors import InputError
    from hotspot311.web import appdata

    monkeypatch.setenv("HOTSPOT311_HOTSPOT_RUNS", setting)
    monkeypatch.setattr(appdata, "_slots", None)
    with pytest.raises(InputError) as err:
        appdata.hotspot_slots()
    assert str(err.value) == (f"HOTSPOT311_HOTSPOT_RUNS={setting!r} is not allowed: give a "
                              "whole number of at least 1 (unset: 2)")
    assert appdata._slots is None  # nothing half-made: the next run reports it again
