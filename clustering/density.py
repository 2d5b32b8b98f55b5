"""Background density and a suggested ``min_samples`` for DBSCAN.

Under a uniform (Poisson) background of ``n`` points over ``A`` km², a disc of radius
``eps`` holds on average ``n / A · π · eps²`` points. A hotspot should be clearly denser
than that, so :func:`suggest_min_samples` asks for ``factor`` times the background
count, and never fewer than ``floor`` points.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from hotspot311.errors import InputError, describe

__all__ = ["Density", "density", "suggest_min_samples"]

_M2_PER_KM2 = 1_000_000.0


@dataclass(frozen=True)
class Density:
    """Background density of a set of points.

    Attributes
    ----------
    points_per_km2
        Points per square kilometre.
    expected_per_disc
        Expected number of points in a disc of radius ``eps_m`` under uniform density.
    """

    points_per_km2: float
    expected_per_disc: float


def density(n_points: int, area_km2: float, eps_m: float) -> Density:
    """Report the density of ``n_points`` spread over ``area_km2``.

    Parameters
    ----------
    n_points
        Number of points (requests).
    area_km2
        Area they are spread over, in km² (e.g. the city's land area).
    eps_m
        DBSCAN radius in metres.

    Returns
    -------
    Density
        Points per km² and the expected number of points in an ``eps_m`` disc.

    Raises
    ------
    InputError
        If ``n_points`` is not an integer >= 0, or ``area_km2`` or ``eps_m`` is not a
        finite number > 0.

    Examples
    --------
    >>> d = density(22_156, 347.5, 100.0)
    >>> round(d.points_per_km2, 1), round(d.expected_per_disc, 2)
    (63.8, 2.0)
    """
    _check(n_points, area_km2, eps_m)
    per_km2 = n_points / area_km2
    disc_km2 = math.pi * eps_m * eps_m / _M2_PER_KM2
    return Density(points_per_km2=per_km2, expected_per_disc=per_km2 * disc_km2)


def suggest_min_samples(
    n_points: int, area_km2: float, eps_m: float, *, factor: float = 3.0, floor: int = 4
) -> int:
    """Suggest ``min_samples`` so that a core point is ``factor`` times the background.

    Parameters
    ----------
    n_points
        Number of points (requests).
    area_km2
        Area they are spread over, in km².
    eps_m
        DBSCAN radius in metres.
    factor
        How many times denser than a uniform background a core neighbourhood must be.
    floor
        Smallest suggestion: a handful of requests is not a hotspot however sparse the
        background.

    Returns
    -------
    int
        ``max(floor, ceil(factor * expected_per_disc))``.

    Raises
    ------
    InputError
        As for :func:`density`, or if ``factor`` is not a finite number > 0 or ``floor``
        is not an integer >= 1.

    Examples
    --------
    >>> suggest_min_samples(22_156, 347.5, 100.0)
    7
    >>> suggest_min_samples(500, 347.5, 100.0)
    4
    """
    problems = []
    if not _positive(factor):
        problems.append(f"factor must be a finite number > 0; got {describe(factor)}")
    if not (isinstance(floor, numbers.Integral) and not isinstance(floor, bool) and floor >= 1):
        problems.append(f"floor must be an integer >= 1; got {describe(floor)}")
    _check(n_points, area_km2, eps_m, problems)
    expected = density(n_points, area_km2, eps_m).expected_per_disc
    return max(int(floor), math.ceil(factor * expected))


def _positive(value: object) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
        and float(value) > 0
    )


def _check(n_points: int, area_km2: float, eps_m: float, problems: list[str] | None = None) -> None:
    problems = [] if problems is None else problems
    if not (
        isinstance(n_points, numbers.Integral) and not isinstance(n_points, bool) and n_points >= 0
    ):
        problems.append(f"n_points must be an integer >= 0; got {describe(n_points)}")
    if not _positive(area_km2):
        problems.append(f"area_km2 must be a finite number > 0; got {describe(area_km2)}")
    if not _positive(eps_m):
        problems.append(f"eps_m must be a finite number > 0; got {describe(eps_m)}")
    if problems:
        raise InputError(problems)
