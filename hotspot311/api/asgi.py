"""The ASGI entry point: the app for the store and city named by the environment.

``uvicorn hotspot311.api.asgi:app_from_env --factory`` (what ``hotspot311 serve api``
runs) builds the app from ``HOTSPOT311_STORE`` and ``HOTSPOT311_CITY`` (see
:mod:`hotspot311.settings`) and the ``HOTSPOT311_API_*`` variables
(:mod:`hotspot311.api.settings`). The command-line front door hands over to uvicorn by
this name, so the two front doors stay independent of each other.
"""

from __future__ import annotations

import gc

from fastapi import FastAPI

from hotspot311.api.app import create_app
from hotspot311.api.server import configure_access_log, open_api_store
from hotspot311.api.settings import api_settings
from hotspot311.settings import from_environment
from layers.profile import load_profile


def app_from_env() -> FastAPI:
    """The Open311 app over the store of ``HOTSPOT311_STORE`` for ``HOTSPOT311_CITY``."""
    settings = from_environment()
    configure_access_log()
    api = api_settings(settings.store)
    store = open_api_store(settings.store, load_profile(settings.city), pool_size=api.threads)
    app = create_app(store, settings=api, on_close=store.close)
    # what start-up made lives as long as the server process: out of the collector's
    # sight, a full collection no longer walks it (about 150,000 objects and 90 ms, once
    # in a while in the middle of somebody's request)
    gc.freeze()
    return app


__all__ = ["app_from_env"]
