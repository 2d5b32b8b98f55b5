"""Keys, sessions, rate limits and the HTTP hardening middleware of the Open311 server.

- API keys are checked by their hash (:mod:`geo.store.api_keys`); a wrong key and a
  revoked key are both answered 403, with different messages.
- The liaison form's session is a cookie holding the account name and an expiry, signed
  with HMAC-SHA256 (:func:`sign`, :func:`unsign`); the account is checked again (not
  revoked) on every use.
- Rate limits: a sliding window (two counters, constant cost) per client address
  (reads, tracking page, posts) and per API key (posts), with the ``limits`` library.
- :class:`BodyLimit` refuses a body over the limit with 413 before the app reads it.
- :class:`AccessLog` writes one JSON line per request to the ``hotspot311.api.access``
  logger: method, path, query with ``api_key`` values replaced by ``***``, status,
  milliseconds, client address. No header (and so no key) is logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from fastapi import Request
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from geo.store.api_keys import ApiKey, hash_key
from geo.store.base import Store
from hotspot311.api.errors import Open311Error

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ACCESS_LOG: Final = logging.getLogger("hotspot311.api.access")
SESSION_HOURS: Final = 12


def authenticate(store: Store, key: str | None) -> ApiKey:
    """The account of an API key.

    Raises
    ------
    Open311Error
        403 when the key is missing, unknown or revoked.
    """
    if not key:
        raise Open311Error(403, "api_key: required to post; ask the city for a key")
    record = store.api_key_by_hash(hash_key(key))
    if record is None:
        raise Open311Error(403, "api_key: not a valid key")
    if not record.active:
        raise Open311Error(403, f"api_key: the key of account {record.name!r} was revoked")
    return record


def given_key(request: Request, value: str | None = None) -> str | None:
    """The API key a client gave: ``value`` (the ``api_key`` parameter or form field),
    else the ``X-API-Key`` header, else ``Authorization: Bearer KEY`` (what feed clients
    send, so a key need not travel in a URL)."""
    if value:
        return value
    header = request.headers.get("x-api-key")
    if header:
        return header
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def sign(secret: str, value: str, *, now: float | None = None) -> str:
    """``value`` with an expiry, signed (URL-safe text for a cookie)."""
    expires = int((now or time.time()) + SESSION_HOURS * 3600)
    body = base64.urlsafe_b64encode(f"{expires}|{value}".encode()).decode().rstrip("=")
    mac = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def unsign(secret: str, token: str | None, *, now: float | None = None) -> str | None:
    """The value of a token made by :func:`sign`, or ``None`` (forged, expired, absent).

    Examples
    --------
    >>> unsign("s", sign("s", "ann"))
    'ann'
    >>> unsign("other", sign("s", "ann")) is None
    True
    """
    if not token or "." not in token:
        return None
    body, mac = token.rsplit(".", 1)
    want = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, want):
        return None
    try:
        expires, value = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().split(
            "|", 1)
    except ValueError:
        return None
    return value if int(expires) > (now or time.time()) else None


class RateLimits:
    """Sliding-window limits, each keyed by a client address or an account."""

    def __init__(self, **rates: str) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._rates = {name: parse(rate) for name, rate in rates.items()}

    def check(self, name: str, who: str) -> None:
        """Count one hit of ``who`` against limit ``name``.

        Raises
        ------
        Open311Error
            429 when over the limit.
        """
        rate = self._rates[name]
        if not self._limiter.hit(rate, name, who):
            raise Open311Error(429, f"too many requests: at most {rate} ({name}); try again "
                                    "later")


async def _refuse(send: Send, status: int, text: str) -> None:
    body = json.dumps([{"code": status, "description": text}]).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (413), declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_big = (f"request body: more than {self.max_bytes:,} bytes; allowed: at most "
                   f"{self.max_bytes:,}")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send, 413, too_big)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _refuse(send, 413, too_big)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body, given = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def redact_query(query: str) -> str:
    """A query string with every ``api_key`` value replaced by ``***``.

    Examples
    --------
    >>> redact_query("service_code=x&api_key=secret")
    'service_code=x&api_key=%2A%2A%2A'
    """
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "***" if k.lower() == "api_key" else v) for k, v in pairs])


class AccessLog:
    """One structured line per request on :data:`ACCESS_LOG` (no keys, no headers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            client = scope.get("client") or ("-", 0)
            raw = scope.get("query_string", b"")
            ACCESS_LOG.info(json.dumps({
                "method": scope["method"], "path": scope["path"],
                "query": redact_query(raw.decode("latin-1")) if raw else "",
                "status": status, "ms": round((time.perf_counter() - started) * 1000, 1),
                "client": client[0]}))


__all__ = ["AccessLog", "BodyLimit", "RateLimits", "authenticate", "given_key", "redact_query",
           "sign", "unsign"]
