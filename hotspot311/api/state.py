"""What every route of one app shares: the store, the city's rules and the limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from fastapi import Request

from geo.store.base import Store
from geo.store.query import AsyncQueries
from hotspot311.api.cache import PageCache
from hotspot311.api.catalogue import Catalogue
from hotspot311.api.intake import Intake
from hotspot311.api.rowcache import RowCache
from hotspot311.api.security import RateLimits
from hotspot311.api.settings import ApiSettings
from layers.privacy import PrivacyRules
from reports.calendar import CalendarConfig

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass
class AppState:
    """The shared parts of one Open311 app (held on ``app.state.h311``)."""

    store: Store
    settings: ApiSettings
    catalogue: Catalogue
    calendar: CalendarConfig
    privacy: PrivacyRules
    intake: Intake
    limits: RateLimits
    templates: jinja2.Environment
    #: The store's asyncio reads while the server runs (:meth:`Store.async_reads`), or
    #: ``None``: routes then read on the thread pool.
    reads: AsyncQueries | None = None
    #: Answered ``requests`` pages, kept while the store's data version holds.
    pages: PageCache = field(default_factory=PageCache)
    #: Rendered rows of ``requests`` pages, kept while the store's data version holds.
    rows: RowCache = field(default_factory=RowCache)


def templates() -> jinja2.Environment:
    """The page templates, every value HTML-escaped (autoescape on for all of them)."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined)


def state_of(request: Request) -> AppState:
    """The app's shared state."""
    return request.app.state.h311


def client_of(request: Request) -> str:
    """The client address the rate limits count by."""
    return request.client.host if request.client else "-"


__all__ = ["AppState", "client_of", "state_of", "templates"]
