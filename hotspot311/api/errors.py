"""Open311 errors: an HTTP status and one or more descriptions (GeoReport v2 format)."""

from __future__ import annotations

from collections.abc import Sequence


class Open311Error(Exception):
    """An error answered in the spec's format: ``[{"code": 400, "description": …}]``.

    Parameters
    ----------
    status
        HTTP status (also each error's ``code``).
    descriptions
        One message per problem, each naming the field, the value and what is allowed.
    """

    def __init__(self, status: int, descriptions: str | Sequence[str]) -> None:
        self.status = status
        self.descriptions = ([descriptions] if isinstance(descriptions, str)
                             else list(descriptions))
        super().__init__("; ".join(self.descriptions))


__all__ = ["Open311Error"]
