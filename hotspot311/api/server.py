"""Serving the app with uvicorn: ``hotspot311 serve api`` and the tests' live servers."""

from __future__ import annotations

import logging
import sys
from typing import Any, Final

import uvicorn
from fastapi import FastAPI

from geo.store.base import Store, open_store
from hotspot311.settings import is_postgres_url
from layers.profile import CityProfile

#: Pooled database connections of a served PostGIS store.
POOL_SIZE = 16


def open_api_store(location: str, profile: CityProfile, *, pool_size: int = POOL_SIZE) -> Store:
    """The store for a server: a PostGIS store gets a pool of ``pool_size`` connections
    (one per route thread, :class:`hotspot311.api.settings.ApiSettings` ``threads``)."""
    if is_postgres_url(location):
        from geo.store.postgis import PostGISStore

        return PostGISStore.open(location, profile, max_size=pool_size)
    return open_store(location, profile)


def configure_access_log() -> None:
    """Send the structured access log to stderr (one JSON object per line)."""
    log = logging.getLogger("hotspot311.api.access")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


#: How every server process runs uvicorn: its access log off (ours leaves keys out),
#: at most 500 connections, idle keep-alive closed after 15 s, request heads up to 64 KiB.
UVICORN_OPTIONS: Final[dict[str, Any]] = {
    "access_log": False, "log_level": "warning", "limit_concurrency": 500,
    "timeout_keep_alive": 15, "h11_max_incomplete_event_size": 64 * 1024}


def server(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8311) -> uvicorn.Server:
    """A uvicorn server for ``app`` (:data:`UVICORN_OPTIONS`)."""
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, **UVICORN_OPTIONS))


def serve(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8311) -> None:
    """Run ``app`` until interrupted."""
    configure_access_log()
    server(app, host=host, port=port).run()


__all__ = ["POOL_SIZE", "UVICORN_OPTIONS", "configure_access_log", "open_api_store", "serve",
           "server"]
