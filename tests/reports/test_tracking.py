"""A request's hotspot from its neighbourhood is the hotspot of a run over the whole window.

:func:`reports.tracking.hotspot_near` reads only the requests round the request and grows
its square until the hotspot lies well inside; here it is checked, on both stores,
against :func:`clustering.run.run_hotspots` over every request of the window, for every
request of the busiest type's window, with a small first square so that the growing is
exercised.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from clustering.priority import preset
from clustering.run import run_hotspots
from clustering.selection import HotspotQuery
from geo.store.base import open_store
from geo.store.reads import RequestFilter
from layers.profile import load_profile
from reports.tracking import HOTSPOT_COLUMNS, hotspot_near

NOW = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.mark.parametrize(("eps_m", "min_samples"), [(400.0, 3), (900.0, 4)])
def test_the_neighbourhood_gives_the_whole_runs_hotspot(app_location: str, eps_m: float,
                                                        min_samples: int) -> None:
    store = open_store(app_location, load_profile("philadelphia"))
    try:
        service = "Street Light Outage"
        end = store.latest_request(RequestFilter(services=(service,)))
        assert end is not None
        window = RequestFilter(services=(service,), after=end.to_pydatetime() - timedelta(
            days=30), until=end.to_pydatetime(), located=True)
        every = store.select_requests(window, [*HOTSPOT_COLUMNS, "lat", "lon"])
        assert len(every) > 30
        query = HotspotQuery(services=(service,), days=30, end=end.to_pydatetime(),
                             eps_m=eps_m, min_samples=min_samples, count="problems")
        whole = run_hotspots(every, query, profile=store.profile, weights=preset("balanced"),
                             now=NOW).members.set_index("service_request_id")["hotspot_id"]
        assert whole.notna().any() and whole.isna().any()  # members and noise both checked
        grew = 0
        for _, rec in every.iterrows():
            found = hotspot_near(store, rec, window, query, radius_m=300.0)
            expected = whole[rec["service_request_id"]]
            if pd.isna(expected):
                assert found is None, rec["service_request_id"]
                continue
            assert found is not None, rec["service_request_id"]
            assert found["hotspot_id"] == expected
            grew += int(float(found["radius_m"]) > 300.0)  # type: ignore[arg-type]
        assert grew, "no look-up needed a larger square: the growing was not exercised"
        assert store.problem_count(window) == len(set(
            every["problem_id"].where(every["problem_id"].notna(),
                                      "r" + every["service_request_id"].astype(str))))
    finally:
        store.close()
