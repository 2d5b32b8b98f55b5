"""The demo contact log: a seeded synthetic 311 contact log, labelled synthetic.

Shaped like the figures Philadelphia's 311 center publishes for its PhillyStat meetings:
about 4,000 calls on a working weekday (fewer on weekends and holidays, from the city's
calendar), about 70 % of calls answered, and answered contacts resolved as 71 % general
information, 14 % agency transfer or referral, 12 % service requests, 2 % transfers to
911 and 1 % other. Abandoned calls have the outcome ``other`` (nobody heard what they
were about). About one contact in nine comes by another channel (web, email, app, …).

Contacts with the outcome ``service_request`` name a synthetic demo request made that day
(so one request can draw several calls), and 5 % of information contacts ask about an
earlier one; linked contacts take the request's department. Every row has ``synthetic =
true``, an id ``SYN-C-<seed>-…`` and the team ``synthetic demo``. Everything is drawn
with numpy in one pass (no Python loop per contact); the same seed, end and requests give
the same rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import numpy as np
import pandas as pd

from reports.calendar import CalendarConfig

OUTCOME_SHARES: Final = {"information": 0.71, "referral": 0.14, "service_request": 0.12,
                         "transfer_911": 0.02, "other": 0.01}
OTHER_CHANNELS: Final = {"web": 0.45, "email": 0.2, "app": 0.2, "social": 0.07,
                         "text": 0.05, "walk_in": 0.03}
DEPARTMENTS: Final = {
    "Streets Department": 0.28, "License & Inspections": 0.12, "Water Department": 0.10,
    "Revenue Department": 0.09, "Police Department": 0.08, "Parks & Recreation": 0.06,
    "Community Life Improvement Program": 0.05, "Department of Public Health": 0.05,
    "Office of Homeless Services": 0.04, "Department of Records": 0.04,
    "Office of Property Assessment": 0.04, "Managing Director's Office": 0.03,
    "Free Library of Philadelphia": 0.02,
}
WEEKDAY_CALLS: Final = 4000
ANSWERED_SHARE: Final = 0.70
_DAY_FACTOR: Final = np.array([1.08, 1.02, 1.0, 0.97, 0.93, 0.28, 0.18])  # Mon … Sun
_HOLIDAY_FACTOR: Final = 0.3
_OTHER_SHARE: Final = 0.11


def _pick(rng: np.random.Generator, shares: dict[str, float], n: int) -> np.ndarray:
    names = np.array(list(shares), dtype=object)
    p = np.array(list(shares.values()), dtype=float)
    return names[rng.choice(len(names), size=n, p=p / p.sum())]


def generate_contacts(requests: pd.DataFrame, *, calendar: CalendarConfig, end: datetime,
                      weeks: int = 6, seed: int = 311) -> pd.DataFrame:
    """Generate the synthetic contact log of the ``weeks`` weeks up to ``end``.

    Parameters
    ----------
    requests
        The synthetic demo requests (``service_request_id``, ``requested_datetime`` as
        ISO text or times, ``agency_responsible``) the contacts link to.
    calendar
        The city's working days and time zone.
    end
        Last contact time (UTC); the log covers whole local days before it.
    weeks
        Length of the log.
    seed
        Seed of the random generator.

    Returns
    -------
    pandas.DataFrame
        Contact fields as text and numbers, plus ``synthetic`` (always true), ready
        for ``hotspot311 ingest --kind contacts``.
    """
    rng = np.random.default_rng(seed + 7)
    tz = calendar.timezone
    last = pd.Timestamp(end).tz_convert(tz).tz_localize(None).normalize()  # local, naive
    days = pd.date_range(last - pd.Timedelta(days=7 * weeks), last - pd.Timedelta(days=1),
                         freq="D")
    plain = days.to_numpy(dtype="datetime64[D]")
    hol = calendar.holidays(int(days[0].year), int(days[-1].year))
    holiday = np.isin(plain, hol)
    factor = _DAY_FACTOR[days.day_of_week.to_numpy()] * np.where(holiday, _HOLIDAY_FACTOR, 1.0)
    calls_per_day = rng.poisson(WEEKDAY_CALLS * factor)
    others_per_day = rng.poisson(WEEKDAY_CALLS * _OTHER_SHARE * factor)
    per_day = calls_per_day + others_per_day
    n = int(per_day.sum())
    day_of = np.repeat(np.arange(len(days)), per_day)
    is_call = np.concatenate([np.r_[np.ones(c, bool), np.zeros(o, bool)]
                              for c, o in zip(calls_per_day, others_per_day, strict=True)])
    seconds = np.clip(rng.normal(13.0, 2.6, n), 7.0, 20.5) * 3600
    local = days[day_of] + pd.to_timedelta(np.floor(seconds), unit="s")
    received = local.tz_localize(tz, ambiguous=np.ones(n, bool), nonexistent="shift_forward")
    channel = np.where(is_call, "phone", _pick(rng, OTHER_CHANNELS, n))
    answered = np.where(is_call, rng.random(n) < ANSWERED_SHARE, True)
    outcome = np.where(answered, _pick(rng, OUTCOME_SHARES, n), "other")
    department = _pick(rng, DEPARTMENTS, n)
    wait = np.where(is_call, np.round(rng.exponential(np.where(answered, 95, 160))), np.nan)
    handle = np.where(answered & is_call, np.round(rng.lognormal(5.3, 0.5, n)), np.nan)

    sr_id = np.full(n, None, dtype=object)
    if len(requests):
        req_time = pd.to_datetime(requests["requested_datetime"], utc=True).dt.tz_convert(tz)
        req_day = (req_time.dt.tz_localize(None).dt.normalize() - days[0]).dt.days.to_numpy()
        ids = requests["service_request_id"].to_numpy(dtype=object)
        agency = requests["agency_responsible"].to_numpy(dtype=object)
        order = np.argsort(req_day, kind="stable")
        sorted_day = req_day[order]
        lo = np.searchsorted(sorted_day, day_of, side="left")
        hi = np.searchsorted(sorted_day, day_of, side="right")
        made = (outcome == "service_request") & (hi > lo)
        pick = lo + np.floor(rng.random(n) * np.maximum(hi - lo, 1)).astype(np.int64)
        earlier = np.searchsorted(sorted_day, day_of, side="left")
        asks = (outcome == "information") & (rng.random(n) < 0.05) & (earlier > 0)
        pick = np.where(asks, np.floor(rng.random(n) * np.maximum(earlier, 1)).astype(np.int64),
                        pick)
        linked = made | asks
        chosen = order[np.clip(pick, 0, len(order) - 1)]
        sr_id[linked] = ids[chosen[linked]]
        department = np.where(linked, agency[chosen], department)
    order = np.argsort(received.to_numpy(), kind="stable")
    frame = pd.DataFrame({
        "contact_id": [f"SYN-C-{seed}-{i:07d}" for i in range(n)],  # in time order
        "received_datetime": received.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")[order],
        "channel": channel[order],
        "outcome": outcome[order],
        "department": department[order],
        "service_request_id": sr_id[order],
        "answered": np.where(answered[order], "true", "false"),
        "wait_seconds": wait[order],
        "handle_seconds": handle[order],
        "team": "synthetic demo",
        "synthetic": True,
    })
    return frame
