"""What the pages hold of the store: page columns first, details later, rows aligned."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from geo.store.base import RequestReader, open_store
from hotspot311.web.appdata import SLA_COLUMNS, StoredRequests, as_text, sla_state
from hotspot311.web.filters import COLUMNS, DETAILS
from layers.profile import load_profile
from reports.sla import SLA_STATES, add_due_and_state


class CountingReader:
    """A store's reader that counts the columns it is asked for."""

    def __init__(self, reader: RequestReader) -> None:
        self.reader = reader
        self.asked: list[str] = []

    def read(self, columns: list[str], *, categories: tuple[str, ...] = ()) -> pd.DataFrame:
        self.asked += list(columns)
        return self.reader.read(columns, categories=categories)


def test_page_columns_first_the_rest_later_on_the_same_rows(app_store: Path) -> None:
    store = open_store(app_store, load_profile("philadelphia"))
    full = store.requests()
    reader = CountingReader(store.request_reader())
    held = StoredRequests(reader, store.layer_keys())  # type: ignore[arg-type]
    assert list(held.frame.columns) == list(COLUMNS) and reader.asked == list(COLUMNS)
    for col in ("service_name", "agency_responsible", "status"):
        assert isinstance(held.frame[col].dtype, pd.CategoricalDtype), col
    some = held.frame[held.frame["status"] == "open"]
    more = held.columns(["council_district", *DETAILS, "status", "not_a_column"])
    assert list(more.columns) == ["council_district", *DETAILS, "status"]
    assert isinstance(more["council_district"].dtype, pd.CategoricalDtype)
    assert isinstance(more["geocode_match_type"].dtype, pd.CategoricalDtype)
    joined = some.assign(**{c: more[c] for c in ["council_district", *DETAILS]})
    expected = full.loc[some.index]
    for col in ("service_request_id", "x", "lat", "council_district", "address"):
        assert joined[col].astype(object).tolist() == expected[col].astype(object).tolist(), col
    asked = len(reader.asked)
    again = held.columns(["service_request_id", "not_a_column", "lon"])
    assert len(reader.asked) == asked  # kept, and a missing name is not asked for again
    assert list(again.columns) == ["service_request_id", "lon"]


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
