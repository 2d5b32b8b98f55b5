"""The city's working-day calendar: weekends, public holidays and city observances.

Configured in the ``[calendar]`` table of ``<profile>.services.toml``::

    [calendar]
    country = "US"                  # holidays package country code
    subdiv = "PA"                   # state (optional)
    observances = ["Good Friday"]   # city observances by name, every year
    dates = ["2024-12-24"]          # one-off closures, YYYY-MM-DD
    weekend = ["Sat", "Sun"]        # days that are never working days (default)

Holidays come from the ``holidays`` package, including its "observed" days (a holiday
falling on a Saturday is observed on the Friday before, on a Sunday on the Monday after).
A city without a ``[calendar]`` table gets weekends only.

Working days are judged on the *local* date in the city's time zone.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

import holidays
import numpy as np
from dateutil.easter import easter

from hotspot311.errors import InputError, describe
from layers.profile import CityProfile
from layers.services import services_path

_DAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _election_day(year: int) -> date:
    """The Tuesday after the first Monday of November."""
    return _nth_weekday(year, 11, 0, 1) + timedelta(days=1)


#: City observances that can be named in ``observances`` (name → date in a year).
OBSERVANCES: Final[dict[str, Callable[[int], date]]] = {
    "Good Friday": lambda year: easter(year) - timedelta(days=2),
    "Easter Monday": lambda year: easter(year) + timedelta(days=1),
    "Election Day": _election_day,
    "Christmas Eve": lambda year: date(year, 12, 24),
    "New Year's Eve": lambda year: date(year, 12, 31),
    "Day After Thanksgiving": lambda year: _nth_weekday(year, 11, 3, 4) + timedelta(days=1),
}


@dataclass(frozen=True)
class CalendarConfig:
    """How a city's working days are counted.

    Attributes
    ----------
    timezone
        IANA time zone whose local dates decide weekends and holidays.
    country, subdiv
        ``holidays`` package country and subdivision (``None``: no public holidays).
    observances
        Names from :data:`OBSERVANCES`, observed every year.
    dates
        One-off non-working dates.
    weekend
        Weekday numbers (Monday = 0) that are never working days.
    """

    timezone: str
    country: str | None = None
    subdiv: str | None = None
    observances: tuple[str, ...] = ()
    dates: tuple[date, ...] = ()
    weekend: tuple[int, ...] = (5, 6)
    _cache: dict[tuple[int, int], np.ndarray] = field(
        default_factory=dict, compare=False, repr=False
    )

    def holidays(self, first_year: int, last_year: int) -> np.ndarray:
        """Non-working dates (besides weekends) from ``first_year`` to ``last_year``.

        Returns
        -------
        numpy.ndarray
            Sorted unique ``datetime64[D]`` dates.
        """
        key = (first_year, last_year)
        if key not in self._cache:
            years = range(first_year, last_year + 1)
            days: set[date] = set()
            if self.country is not None:
                days |= set(holidays.country_holidays(self.country, subdiv=self.subdiv,
                                                      years=years))
            days |= {OBSERVANCES[name](y) for name in self.observances for y in years}
            days |= {d for d in self.dates if first_year <= d.year <= last_year}
            self._cache[key] = np.array(sorted(days), dtype="datetime64[D]")
        return self._cache[key]

    @property
    def weekmask(self) -> str:
        """numpy weekmask, Monday first (``"1111100"`` for a Saturday–Sunday weekend)."""
        return "".join("0" if i in self.weekend else "1" for i in range(7))


def calendar_from_dict(raw: dict[str, Any], *, timezone: str, where: str = "[calendar]"
                       ) -> CalendarConfig:
    """Build a :class:`CalendarConfig` from a parsed ``[calendar]`` table.

    Parameters
    ----------
    raw
        The table (empty: weekends only).
    timezone
        The city's time zone.
    where
        Where the table came from, for messages.

    Returns
    -------
    CalendarConfig
        The validated configuration.

    Raises
    ------
    InputError
        Listing every invalid entry.

    Examples
    --------
    >>> cal = calendar_from_dict({"country": "US", "subdiv": "PA"}, timezone="America/New_York")
    >>> str(cal.holidays(2024, 2024)[4])
    '2024-06-19'
    """
    problems: list[str] = []
    country, subdiv = raw.get("country"), raw.get("subdiv")
    if country is not None:
        try:
            holidays.country_holidays(str(country), subdiv=subdiv, years=2000)
        except NotImplementedError:
            problems.append(f"{where}: country {describe(country)} is not known to the "
                            f"holidays package; allowed: ISO codes such as 'US', 'CA', 'GB'")
        except Exception as err:  # the package raises NotImplementedError or ValueError
            problems.append(f"{where}: subdiv {describe(subdiv)} of {country!r}: {err}")
    elif subdiv is not None:
        problems.append(f"{where}: subdiv {describe(subdiv)} given without a country")
    names = _as_list(raw.get("observances", []), "observances", where, problems)
    for name in names:
        if name not in OBSERVANCES:
            problems.append(f"{where}: observances: {describe(name)} is not known; allowed: "
                            f"{', '.join(OBSERVANCES)} (or list dates under 'dates')")
    dates: list[date] = []
    for value in _as_list(raw.get("dates", []), "dates", where, problems):
        try:
            dates.append(value if isinstance(value, date) else date.fromisoformat(str(value)))
        except ValueError:
            problems.append(f"{where}: dates: {describe(value)} is not a date YYYY-MM-DD")
    weekend: list[int] = []
    for value in _as_list(raw.get("weekend", ["Sat", "Sun"]), "weekend", where, problems):
        if value in _DAY_NAMES:
            weekend.append(_DAY_NAMES.index(value))
        else:
            problems.append(f"{where}: weekend: {describe(value)} is not one of "
                            f"{', '.join(_DAY_NAMES)}")
    if len(weekend) == 7:
        problems.append(f"{where}: weekend: every day is a weekend day; no day could be worked")
    if problems:
        raise InputError(problems)
    return CalendarConfig(
        timezone=timezone, country=str(country) if country is not None else None,
        subdiv=str(subdiv) if subdiv is not None else None,
        observances=tuple(str(n) for n in names), dates=tuple(dates),
        weekend=tuple(sorted(set(weekend))),
    )


def load_calendar(profile: CityProfile) -> CalendarConfig:
    """Read the ``[calendar]`` table of the city's services file.

    Parameters
    ----------
    profile
        The city profile (its time zone and its ``<stem>.services.toml``).

    Returns
    -------
    CalendarConfig
        Weekends only when the city has no services file or no ``[calendar]`` table.
    """
    path = services_path(profile)
    if path is None or not path.is_file():
        return CalendarConfig(timezone=profile.timezone)
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    return calendar_from_dict(raw.get("calendar", {}), timezone=profile.timezone,
                              where=f"{path} [calendar]")


def _as_list(value: object, name: str, where: str, problems: list[str]) -> list[Any]:
    if isinstance(value, list):
        return value
    problems.append(f"{where}: {name} must be a list, got {describe(value)}")
    return []


def is_working_day(cal: CalendarConfig, days: Iterable[date]) -> list[bool]:
    """Whether each of ``days`` is a working day.

    Examples
    --------
    >>> cal = CalendarConfig(timezone="UTC", country="US")
    >>> is_working_day(cal, [date(2024, 5, 24), date(2024, 5, 25), date(2024, 5, 27)])
    [True, False, False]
    """
    days = list(days)
    if not days:
        return []
    arr = np.array(days, dtype="datetime64[D]")
    years = arr.astype("datetime64[Y]").astype(int) + 1970
    hol = cal.holidays(int(years.min()), int(years.max()))
    return [bool(v) for v in np.is_busday(arr, weekmask=cal.weekmask, holidays=hol)]
