"""What the pages hold of the store: page columns first, details later, rows aligned."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from geo.store import open_store
from hotspot311.appdata import SLA_COLUMNS, StoredRequests, as_text, sla_state
from hotspot311.filters import CATEGORIES, COLUMNS, DETAILS
from layers.profile import load_profile
from reports.sla import SLA_STATES, add_due_and_state


def test_page_columns_first_details_later_on_the_same_rows(app_store: Path) -> None:
    store = open_store(app_store, load_profile("philadelphia"))
    full = store.requests()
    held = StoredRequests(store.request_reader(), store.layer_keys())
    assert list(held.frame.columns) == [*COLUMNS, *store.layer_keys()]
    assert not set(DETAILS) & set(held.frame.columns)  # not read for the first map
    for col in (*CATEGORIES, *store.layer_keys()):
        assert isinstance(held.frame[col].dtype, pd.CategoricalDtype), col
    some = held.frame[held.frame["status"] == "open"]
    details = held.details()
    assert held.details() is details  # read once
    joined = some.assign(**{c: details[c] for c in DETAILS})
    expected = full.loc[some.index]
    assert joined["service_request_id"].tolist() == expected["service_request_id"].tolist()
    assert joined["x"].tolist() == expected["x"].tolist()
    assert joined["lat"].tolist() == expected["lat"].tolist()


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
