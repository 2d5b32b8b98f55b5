"""Geocoder providers: the interface every geocoder meets, and an adapter for online ones.

The offline :class:`geo.geocode.geocoder.Geocoder` has this interface; a city with an online
geocoder plugs it in behind the same one through :class:`GeopyProvider`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import pyproj

from hotspot311.errors import InputError, describe

#: Columns of every provider's result, one row per input address, same index.
RESULT_COLUMNS = ["x", "y", "lat", "lon", "match_type", "score", "reason", "normalized"]


@runtime_checkable
class Provider(Protocol):
    """Anything that geocodes a series of addresses into :data:`RESULT_COLUMNS`."""

    def geocode(self, addresses: pd.Series) -> pd.DataFrame:
        """Return one row per input row, aligned to ``addresses.index``."""
        ...


class GeopyProvider:
    """Adapter from a geopy geocoder (``geocode(query) -> Location | None``) to :class:`Provider`.

    Parameters
    ----------
    geocoder
        A geopy geocoder instance (e.g. ``geopy.geocoders.Nominatim(user_agent=...)``), or
        any object with a compatible ``geocode`` method. geopy itself is imported only by
        :meth:`nominatim`.
    crs
        Projected CRS for the ``x``/``y`` columns.
    suffix
        Text appended to each query, e.g. ``", Philadelphia, PA"``.
    """

    def __init__(self, geocoder: Any, *, crs: str = "EPSG:2272", suffix: str = "") -> None:
        if not callable(getattr(geocoder, "geocode", None)):
            raise InputError(f"geocoder={describe(geocoder)} has no geocode method")
        self._geocode: Callable[[str], Any] = geocoder.geocode
        self._suffix = suffix
        self._to_xy = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)

    @classmethod
    def nominatim(cls, user_agent: str, **kwargs: Any) -> GeopyProvider:
        """Build over geopy's Nominatim (needs geopy installed and network access)."""
        from geopy.geocoders import Nominatim  # lazy: optional dependency

        return cls(Nominatim(user_agent=user_agent), **kwargs)

    def geocode(self, addresses: pd.Series) -> pd.DataFrame:
        """Geocode each distinct address once through the wrapped geocoder."""
        texts = addresses.astype(object).where(addresses.notna(), "").astype(str)
        codes, uniq = pd.factorize(texts, use_na_sentinel=False)
        rows = []
        for t in uniq:
            norm = " ".join(t.upper().split())
            loc = self._geocode(t + self._suffix) if norm else None
            if loc is None:
                rows.append((np.nan, np.nan, "unmatched", 0.0,
                             "unparseable" if not norm else "unknown_street", norm))
            else:
                rows.append((float(loc.latitude), float(loc.longitude), "exact", 100.0, "",
                             norm))
        frame = pd.DataFrame(rows, columns=["lat", "lon", "match_type", "score", "reason",
                                            "normalized"])
        x, y = self._to_xy.transform(frame["lon"].to_numpy(), frame["lat"].to_numpy())
        frame["x"], frame["y"] = x, y
        out = frame.iloc[codes][RESULT_COLUMNS].reset_index(drop=True)
        out.index = addresses.index
        return out
