"""The synthetic demo requests: none from after the generator's end."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from hotspot311.cli.demo import generate


@pytest.mark.parametrize("hour", [1, 12, 23])
def test_no_request_is_made_after_the_end(hour: int) -> None:
    """The requests are spread over the hours of the day: on the end's own day only the
    hours before it are used (at 01:00 UTC the demo once held requests from later that
    day, and the newest request posted to the API was not the newest stored)."""
    end = datetime(2026, 12, 5, hour, tzinfo=UTC)
    frame = generate(2000, seed=311, end=end)
    times = {c: pd.to_datetime(frame[c], utc=True)
             for c in ("requested_datetime", "updated_datetime", "closed_datetime")}
    for column, values in times.items():
        assert (values.dropna() <= pd.Timestamp(end)).all(), column
    # still many in the last week, the clustered ones concentrated in recent months
    recent = times["requested_datetime"] > pd.Timestamp(end) - pd.Timedelta(days=7)
    assert recent.sum() > 50
