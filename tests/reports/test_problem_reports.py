"""Reports with problems beside requests: top 10, volumes, SLA by problem."""

from __future__ import annotations

import pandas as pd

from reports import standard as S
from tests.reports.test_standard import MARCH, TZ, case


def with_problems() -> pd.DataFrame:
    frame = case()
    # P2 is a repeat call about P1's pothole: P1 was closed on time, P2 a day late
    pid = {"P2": "P1"}
    frame["problem_id"] = [pid.get(r, r) for r in frame["service_request_id"]]
    return frame


def test_top_requests_counts_problems_beside_requests() -> None:
    out = S.top_requests(with_problems(), MARCH, timezone=TZ).set_index("service_name")
    assert out.loc["Pothole", "count"] == 3
    assert out.loc["Pothole", "problems"] == 2
    assert out.loc["Graffiti", "problems"] == out.loc["Graffiti", "count"] == 2
    assert "problems" not in S.top_requests(case(), MARCH, timezone=TZ).columns


def test_sla_by_problem_judges_the_first_request() -> None:
    out = S.sla_compliance(with_problems(), MARCH, timezone=TZ).set_index("service_name")
    pothole = out.loc["Pothole"]
    assert (pothole["judged"], pothole["on_time"], pothole["compliance"]) == (2, 1, 0.5)
    assert (pothole["problems"], pothole["problems_judged"], pothole["problems_on_time"]) == (
        2, 1, 1)
    assert pothole["problem_compliance"] == 1.0
    whole = out.loc[S.ALL]
    assert whole["problems"] == 6 and whole["problems_judged"] == 2


def test_volumes_count_new_problems() -> None:
    out = S.volumes(with_problems(), MARCH, timezone=TZ, freq="month")
    march = out.iloc[0]
    assert march["count"] == 7 and march["new_problems"] == 6
