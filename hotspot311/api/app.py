"""The Open311 app: :func:`create_app` over a store, with the hardening around it.

Routes: GeoReport v2 under ``/open311/v2/`` (:mod:`hotspot311.api.open311`), the
tracking page ``/track`` and the liaison form ``/liaison`` (:mod:`hotspot311.api.pages`),
photos at ``/media/NAME.jpg``, the vendored Leaflet at ``/static/vendor/``, OpenAPI docs
at ``/docs``. Around them: the body size limit, the access log without keys, CORS only
when origins are configured, and the spec's error bodies for every error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from geo.geocode.city import load_geocoder
from geo.geocode.geocoder import Geocoder
from geo.store.base import Store
from hotspot311.api import open311, pages
from hotspot311.api.cache import PageCache
from hotspot311.api.catalogue import Catalogue
from hotspot311.api.errors import Open311Error
from hotspot311.api.intake import Intake
from hotspot311.api.render import error_response
from hotspot311.api.rowcache import RowCache
from hotspot311.api.security import AccessLog, BodyLimit, RateLimits
from hotspot311.api.settings import ApiSettings
from hotspot311.api.state import AppState, templates
from hotspot311.errors import StoreError
from layers.privacy import load_privacy
from reports.calendar import load_calendar

VENDOR: Final = Path(__file__).resolve().parents[2] / "static" / "vendor"
OWN_STATIC: Final = Path(__file__).resolve().parent / "static"
log = logging.getLogger("hotspot311.api")
_MEDIA_NAME = re.compile(r"^[0-9a-f]{32}\.jpg$")


def _fmt(request: Request) -> str:
    return "xml" if request.url.path.endswith(".xml") else "json"


def _lifespan(on_close: Callable[[], None] | None, threads: int) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the synchronous routes run on anyio's thread pool: as many threads as pooled
        # database connections, so no thread holds its turn waiting for a connection
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        state: AppState = app.state.h311
        # look-ups are single-row reads: a quarter as many connections as threads
        reads = state.store.async_reads(max_size=max(2, threads // 4))
        try:
            if reads is not None:  # opened in this process's event loop, which uses it
                await reads.open()
                state.reads = reads
            yield
        finally:
            state.reads = None
            if reads is not None:
                await reads.close()
            if on_close is not None:
                on_close()

    return lifespan


def create_app(store: Store, *, settings: ApiSettings,
               geocoder: Callable[[], Geocoder] | None = None,
               on_close: Callable[[], None] | None = None) -> FastAPI:
    """The Open311 server over ``store``.

    Parameters
    ----------
    store
        Either store, open; the app does not close it.
    settings
        Limits, CORS, photo folder, session secret (:func:`hotspot311.api.settings.api_settings`).
    geocoder
        Returns the offline geocoder (default: the profile's street data).
    on_close
        Called when the server shuts down (e.g. closing the store).

    Returns
    -------
    fastapi.FastAPI
        Serve it with uvicorn (:func:`hotspot311.api.server.serve`).
    """
    profile = store.profile
    catalogue = Catalogue.for_city(profile)
    calendar = load_calendar(profile)
    intake = Intake(store, catalogue=catalogue, calendar=calendar, media_dir=settings.media_dir,
                    max_photo_bytes=settings.max_photo_bytes, id_prefix=settings.id_prefix,
                    geocoder=geocoder or (lambda: load_geocoder(profile)))
    app = FastAPI(title=f"{profile.name} 311: Open311 GeoReport v2",
                  description="Service catalogue, requests, intake and request tracking "
                              "(hotspot311).", version="v2", docs_url="/docs",
                  redoc_url=None, lifespan=_lifespan(on_close, settings.threads))
    app.state.h311 = AppState(
        store=store, settings=settings, catalogue=catalogue, calendar=calendar,
        privacy=load_privacy(profile), intake=intake,
        limits=RateLimits(read=settings.read_rate, track=settings.track_rate,
                          write_key=settings.write_rate, write_address=settings.write_rate),
        templates=templates(), pages=PageCache(settings.page_cache_bytes),
        rows=RowCache(settings.row_cache_bytes))
    app.include_router(open311.router)
    app.include_router(pages.router)
    app.mount("/static/api", StaticFiles(directory=OWN_STATIC), name="api-static")
    if VENDOR.is_dir():
        app.mount("/static/vendor", StaticFiles(directory=VENDOR), name="vendor")

    @app.get("/media/{name}", include_in_schema=False)
    def media(name: str) -> Response:
        path = settings.media_dir / name
        if not _MEDIA_NAME.match(name) or not path.is_file():
            raise Open311Error(404, f"media: {name[:60]!r} is not a stored photo")
        return FileResponse(path, media_type="image/jpeg",
                            headers={"X-Content-Type-Options": "nosniff"})

    @app.exception_handler(Open311Error)
    async def open311_error(request: Request, err: Open311Error) -> Response:
        return error_response(_fmt(request), err.status, err.descriptions)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, err: StoreError) -> Response:
        log.error("store error on %s %s: %s", request.method, request.url.path, err)
        return error_response(_fmt(request), 503, ["the store is unavailable; nothing was "
                                                   "changed; try again later"])

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> Response:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: "
                    f"{e.get('msg')}" for e in err.errors()]
        return error_response(_fmt(request), 400, problems or ["invalid request"])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> Response:
        text = {404: f"{request.url.path[:80]}: no such resource",
                405: f"{request.method}: not allowed on {request.url.path[:80]}"}.get(
            err.status_code, str(err.detail))
        return error_response(_fmt(request), err.status_code, [text])

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "Idempotency-Key", "X-API-Key",
                                          "Authorization"])
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(AccessLog)
    return app


__all__ = ["create_app"]
