"""The project's exceptions, in one place.

Every message names the field or parameter, the value received and what is allowed.
Input errors subclass :class:`ValueError` so callers that only know the standard
library can still catch them.
"""

from __future__ import annotations

from collections.abc import Iterable


class Hotspot311Error(Exception):
    """Base class of every error raised on purpose by hotspot311."""


class InputError(Hotspot311Error, ValueError):
    """The caller's input (a file, a parameter, a mapping) cannot be used.

    Parameters
    ----------
    problems
        One message per problem found; all of them are reported at once.
    """

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(message)


class MappingError(InputError):
    """A column mapping leaves required canonical fields unmapped or names missing columns."""


class LayerError(InputError):
    """A boundary layer or city profile cannot be loaded."""


class CRSMismatchError(InputError):
    """Two frames that must share a coordinate reference system do not."""


class FeedError(Hotspot311Error):
    """A city feed cannot be read; the message names the source, the URL and the page.

    Parameters
    ----------
    message
        What went wrong.
    source, url, page
        The source's name, the URL asked for (never a token) and the page number.
    """

    def __init__(self, message: str, *, source: str, url: str, page: int | None = None) -> None:
        self.source, self.url, self.page = source, url, page
        where = f" page {page}" if page is not None else ""
        super().__init__(f"source {source!r}{where} ({url}): {message}")


class StoreError(Hotspot311Error):
    """A store cannot be opened, read or written (not the caller's input)."""


class StoreConnectionError(StoreError):
    """A database server cannot be reached; the message names the server."""


def describe(value: object, limit: int = 60) -> str:
    """Return a short printable form of ``value`` for an error message.

    Parameters
    ----------
    value
        Any value received from the input.
    limit
        Longest text kept; longer values are cut and marked with an ellipsis.

    Returns
    -------
    str
        ``repr`` of the value, cut to ``limit`` characters.

    Examples
    --------
    >>> describe("x" * 100, limit=10)
    "'xxxxxxxx…"
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
