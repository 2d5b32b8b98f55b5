"""The network client of every feed: httpx with timeouts, retries and a rate limit.

Retried, with exponential backoff and full jitter (or the server's ``Retry-After``):
429, 5xx, timeouts and connection errors. Not retried, raised at once as a
:class:`hotspot311.errors.FeedError` naming the source, the URL and the page: any other
4xx, an HTML page served with 200, a body that is not JSON (truncated, cut off).
"""

from __future__ import annotations

import email.utils
import functools
import json
import random
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import unquote_plus

import httpx
import orjson

from hotspot311.errors import FeedError


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's roots), made once per process: loading the
    roots costs ~0.1 s, more than a whole incremental page."""
    return httpx.create_ssl_context()


#: Statuses worth another try.
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


class FeedClient:
    """GET requests to one source's endpoint.

    Parameters
    ----------
    source
        The source's name, for messages.
    rate_limit
        Most requests per second (``0`` or less: no limit).
    timeout
        Seconds to wait for a connection or for the next bytes of a response.
    retries
        Further tries after the first on a retryable failure.
    backoff, max_backoff
        Base and cap (seconds) of the exponential backoff; a ``Retry-After`` longer
        than ``max_backoff`` is cut to it.
    headers
        Sent with every request (an app token goes here, never into the URL).
    random_state
        Seed of the jitter.
    sleep
        The pause function (``time.sleep``; a stop-aware one from the CLI).
    transport
        An httpx transport (tests of the client alone).
    """

    def __init__(
        self,
        source: str,
        *,
        rate_limit: float = 5.0,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 60.0,
        headers: Mapping[str, str] | None = None,
        random_state: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.source = source
        self.interval = 1.0 / rate_limit if rate_limit > 0 else 0.0
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.requests_sent = 0
        self.retried = 0
        self._random = random.Random(random_state)
        self._last = -float("inf")
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout), headers=dict(headers or {}),
            follow_redirects=True, transport=transport, verify=_ssl_context(),
        )

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> FeedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, url: str, *, params: Mapping[str, Any] | None = None, page: int | None = None,
            headers: Mapping[str, str] | None = None) -> httpx.Response:
        """GET ``url``, retrying transient failures.

        Returns
        -------
        httpx.Response
            A response with status 2xx or 304.

        Raises
        ------
        FeedError
            When the retries are spent, or on a failure not worth retrying.
        """
        shown = _shown(url, params)
        for attempt in range(self.retries + 1):
            self._wait_turn()
            try:
                response = self._http.get(url, params=params, headers=headers)
                response.read()
            except httpx.TimeoutException as err:
                cause = f"no response within {self._http.timeout.read} s ({type(err).__name__})"
                delay = None
            except httpx.TransportError as err:
                cause = f"connection failed ({type(err).__name__}: {err})"
                delay = None
            else:
                if response.status_code < 300 or response.status_code == 304:
                    return response
                cause = f"HTTP {response.status_code}: {_snippet(response.text)}"
                if response.status_code not in RETRY_STATUSES:
                    raise FeedError(cause, source=self.source, url=shown, page=page)
                delay = retry_after(response.headers.get("Retry-After"))
            if attempt == self.retries:
                raise FeedError(f"{cause}; gave up after {attempt + 1} tries",
                                source=self.source, url=shown, page=page)
            self.retried += 1
            self.sleep(self._delay(attempt, delay))
        raise AssertionError("unreachable")  # pragma: no cover

    def get_json(self, url: str, *, params: Mapping[str, Any] | None = None,
                 page: int | None = None) -> tuple[Any, httpx.Response]:
        """GET ``url`` and parse the body as JSON.

        Raises
        ------
        FeedError
            As :meth:`get`, and when the body is HTML or not complete JSON.
        """
        response = self.get(url, params=params, page=page)
        shown = _shown(url, params)
        kind = response.headers.get("content-type", "")
        if "html" not in kind and _utf8(response):
            try:  # orjson reads the bytes at once, 2-3x faster than json
                return orjson.loads(response.content), response
            except orjson.JSONDecodeError:
                pass  # json's reading below: its message, and what only it accepts
        body = response.text
        if "html" in kind or body.lstrip()[:1] == "<":
            raise FeedError(f"served an HTML page with status {response.status_code}, not "
                            f"JSON: {_snippet(body)}", source=self.source, url=shown, page=page)
        try:
            return json.loads(body), response
        except json.JSONDecodeError as err:
            raise FeedError(
                f"the body is not complete JSON ({err.msg} at character {err.pos} of "
                f"{len(body)}; truncated?)", source=self.source, url=shown, page=page,
            ) from err

    def _wait_turn(self) -> None:
        """Sleep until the rate limit allows the next request."""
        now = time.monotonic()
        wait = self._last + self.interval - now
        if wait > 0:
            self.sleep(wait)
        self._last = time.monotonic()
        self.requests_sent += 1

    def _delay(self, attempt: int, retry_after_s: float | None) -> float:
        """Seconds before the next try: the server's word, else backoff with jitter."""
        if retry_after_s is not None:
            return min(retry_after_s, self.max_backoff)
        cap = min(self.max_backoff, self.backoff * 2**attempt)
        return self._random.uniform(cap / 2, cap)


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date).

    Examples
    --------
    >>> retry_after("3"), retry_after(None), retry_after("soon")
    (3.0, None, None)
    >>> retry_after("Wed, 02 Dec 2026 10:00:05 GMT",
    ...             now=datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC))
    5.0
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def readable(url: str | httpx.URL) -> str:
    """A URL with its query decoded, for messages and batch records.

    Examples
    --------
    >>> readable("http://h/r.json?%24limit=5&q=a+b")
    'http://h/r.json?$limit=5&q=a b'
    """
    return unquote_plus(str(url))


def _shown(url: str, params: Mapping[str, Any] | None) -> str:
    """The URL with its query, decoded for reading, for messages."""
    return unquote_plus(str(httpx.URL(url, params=dict(params or {}))))


def _utf8(response: httpx.Response) -> bool:
    """Whether the body is read as UTF-8 (no other charset declared)."""
    encoding = (response.encoding or "utf-8").lower().replace("_", "-")
    return encoding in ("utf-8", "utf8")


def _snippet(text: str, limit: int = 120) -> str:
    """The start of a body on one line."""
    one = " ".join(text.split())
    return repr(one if len(one) <= limit else one[: limit - 1] + "…")
