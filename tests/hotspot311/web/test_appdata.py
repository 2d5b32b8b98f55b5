"""The pages' reads: rows of the filtered requests, SLA states, categoricals as text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from geo.store.base import open_store
from hotspot311.web.appdata import SLA_COLUMNS, as_text, rows, sla_state
from hotspot311.web.filters import Filters
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
