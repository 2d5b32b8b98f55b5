"""Settings of the Open311 server, from the environment (read when the app is made).

============================== ==============================================================
variable                       meaning (default)
============================== ==============================================================
``HOTSPOT311_API_CORS``        origins allowed by CORS, comma-separated (none: CORS off)
``HOTSPOT311_API_MAX_BODY``    largest request body in bytes (8 MiB)
``HOTSPOT311_API_MAX_PHOTO``   largest photo in bytes (5 MiB)
``HOTSPOT311_API_READ_RATE``   reads per client address (``300/minute``)
``HOTSPOT311_API_WRITE_RATE``  posts per API key and per client address (``60/minute``)
``HOTSPOT311_API_TRACK_RATE``  tracking-page look-ups per client address (``30/minute``)
``HOTSPOT311_API_MEDIA``       folder for photos (``STORE/media``, or ``./.hotspot311-media``
                               for a PostGIS store)
``HOTSPOT311_API_SECRET``      key signing the liaisons' session cookies (random per start)
``HOTSPOT311_API_ID_PREFIX``   prefix of new tracking numbers (``H311``)
``HOTSPOT311_API_THREADS``     threads running the (synchronous) route functions, per
                               server process; also the PostGIS pool size (16), beside
                               a quarter as many asyncio connections for look-ups
``HOTSPOT311_API_PAGE_CACHE``  bytes of answered ``requests`` pages each server process
                               keeps while the stored requests are unchanged (64 MiB;
                               0: none; :mod:`hotspot311.api.cache`)
``HOTSPOT311_API_ROW_CACHE``   bytes of rendered request rows each server process keeps
                               for pages that hold rows served before, while the stored
                               requests are unchanged (64 MiB; 0: none;
                               :mod:`hotspot311.api.rowcache`)
============================== ==============================================================
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from hotspot311.errors import InputError
from hotspot311.settings import is_postgres_url


@dataclass(frozen=True)
class ApiSettings:
    """What the app needs to know besides the store and the city."""

    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 8 * 1024 * 1024
    max_photo_bytes: int = 5 * 1024 * 1024
    read_rate: str = "300/minute"
    write_rate: str = "60/minute"
    track_rate: str = "30/minute"
    media_dir: Path = Path(".hotspot311-media")
    secret: str = ""
    id_prefix: str = "H311"
    threads: int = 16
    page_cache_bytes: int = 64 * 1024 * 1024
    row_cache_bytes: int = 64 * 1024 * 1024


def _int(name: str, default: int, *, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{name}: {raw!r} is not a whole number") from None
    if value < minimum:
        raise InputError(f"{name}: {value} must be >= {minimum}")
    return value


def api_settings(store_location: str) -> ApiSettings:
    """Settings from the environment (see the module docstring).

    Parameters
    ----------
    store_location
        The store directory or URL (the photo folder defaults beside a directory store).
    """
    media = os.environ.get("HOTSPOT311_API_MEDIA")
    if media:
        media_dir = Path(media)
    elif is_postgres_url(store_location):
        media_dir = Path(".hotspot311-media")
    else:
        media_dir = Path(store_location) / "media"
    cors = tuple(o.strip() for o in os.environ.get("HOTSPOT311_API_CORS", "").split(",")
                 if o.strip())
    return ApiSettings(
        cors_origins=cors,
        max_body_bytes=_int("HOTSPOT311_API_MAX_BODY", 8 * 1024 * 1024),
        max_photo_bytes=_int("HOTSPOT311_API_MAX_PHOTO", 5 * 1024 * 1024),
        read_rate=os.environ.get("HOTSPOT311_API_READ_RATE", "300/minute"),
        write_rate=os.environ.get("HOTSPOT311_API_WRITE_RATE", "60/minute"),
        track_rate=os.environ.get("HOTSPOT311_API_TRACK_RATE", "30/minute"),
        media_dir=media_dir,
        secret=os.environ.get("HOTSPOT311_API_SECRET") or secrets.token_urlsafe(32),
        id_prefix=os.environ.get("HOTSPOT311_API_ID_PREFIX", "H311"),
        threads=_int("HOTSPOT311_API_THREADS", 16),
        page_cache_bytes=_int("HOTSPOT311_API_PAGE_CACHE", 64 * 1024 * 1024, minimum=0),
        row_cache_bytes=_int("HOTSPOT311_API_ROW_CACHE", 64 * 1024 * 1024, minimum=0),
    )


__all__ = ["ApiSettings", "api_settings"]
