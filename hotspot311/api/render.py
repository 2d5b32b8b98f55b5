"""Open311 bodies as JSON or XML (GeoReport v2 element names), errors included.

Values are data in both: JSON is written by orjson, XML by :mod:`xml.etree.ElementTree`
(which escapes markup); characters XML 1.0 cannot hold (control characters a resident
may have pasted) become U+FFFD in XML only. Times (aware datetimes) are written in both
as ISO 8601 with their offset, to the second (``2026-01-01T22:04:05-05:00``): the
fraction is dropped, as GeoReport v2's examples show them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import orjson
from fastapi.responses import Response

#: Root and item element of each list body.
ROOTS: Final = {"services": ("services", "service"),
                "requests": ("service_requests", "request"),
                "errors": ("errors", "error")}
#: Characters XML 1.0 cannot carry (C0 controls but tab, line feed and carriage return;
#: U+FFFE, U+FFFF), as a regular expression character set's inside.
NOT_XML_CHARS: Final = "\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff"
_NOT_XML = re.compile(f"[{NOT_XML_CHARS}]")
_HEADERS: Final = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
#: orjson's options for every body: times to the second.
_JSON: Final = orjson.OPT_OMIT_MICROSECONDS


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return _NOT_XML.sub("\ufffd", str(value))


def _element(tag: str, value: Any) -> ET.Element:
    el = ET.Element(tag)
    if isinstance(value, dict):
        for k, v in value.items():
            el.append(_element(k, v))
    elif isinstance(value, list):
        child = {"attributes": "attribute", "values": "value"}.get(tag, "item")
        for v in value:
            el.append(_element(child, v))
    elif value is not None:
        el.text = _text(value)
    return el


#: The XML declaration every document starts with.
_DECLARATION: Final = b"<?xml version='1.0' encoding='utf-8'?>\n"


def to_xml(kind: str, items: Sequence[dict[str, Any]] | dict[str, Any]) -> bytes:
    """An XML document: a list body (``kind`` in :data:`ROOTS`) or one element.

    Examples
    --------
    >>> to_xml("errors", [{"code": 404, "description": "<b>"}]).splitlines()[1]
    b'<errors><error><code>404</code><description>&lt;b&gt;</description></error></errors>'
    """
    if isinstance(items, dict):
        return _DECLARATION + ET.tostring(_element(kind, items), encoding="utf-8")
    return list_body("xml", kind, [item_body("xml", kind, item) for item in items])


def item_body(fmt: str, kind: str, item: dict[str, Any]) -> bytes:
    """One item of a list body (``kind`` in :data:`ROOTS`) in ``fmt``: what
    :func:`list_body` puts together, so a list made of kept items is the list made
    whole.

    Examples
    --------
    >>> item_body("json", "errors", {"code": 400}), item_body("xml", "errors", {"code": 400})
    (b'{"code":400}', b'<error><code>400</code></error>')
    """
    if fmt == "xml":
        return bytes(ET.tostring(_element(ROOTS[kind][1], item), encoding="utf-8"))
    return orjson.dumps(item, option=_JSON)


def list_body(fmt: str, kind: str, items: Sequence[bytes]) -> bytes:
    """A list body in ``fmt`` of items made by :func:`item_body`.

    Examples
    --------
    >>> list_body("json", "errors", [b'{"code":400}', b'{"code":404}'])
    b'[{"code":400},{"code":404}]'
    >>> list_body("xml", "errors", []).splitlines()[1]
    b'<errors />'
    """
    if fmt == "xml":
        outer = ROOTS[kind][0].encode("ascii")
        if not items:
            return _DECLARATION + b"<" + outer + b" />"
        return b"".join([_DECLARATION, b"<", outer, b">", *items, b"</", outer, b">"])
    if not items:
        return b"[]"
    # the brackets on the first and last item, so the page is copied once
    ends = [b"[" + items[0], *items[1:]] if len(items) > 1 else [b"[" + items[0]]
    ends[-1] = ends[-1] + b"]"
    return b",".join(ends)


def respond(fmt: str, kind: str, body: Sequence[dict[str, Any]] | dict[str, Any], *,
            status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The response in ``fmt`` (``json`` or ``xml``)."""
    extra = {**_HEADERS, **(headers or {})}
    if fmt == "xml":
        return Response(to_xml(kind, body), status_code=status,
                        media_type=content_type(fmt), headers=extra)
    return Response(orjson.dumps(body, option=_JSON), status_code=status,
                    media_type=content_type(fmt), headers=extra)


def content_type(fmt: str) -> str:
    """The content type of a body in ``fmt``."""
    return "text/xml; charset=utf-8" if fmt == "xml" else "application/json; charset=utf-8"


def raw_response(body: bytes, media_type: str, headers: dict[str, str] | None = None
                 ) -> Response:
    """A 200 response of a body already rendered (a page joined by :func:`list_body`, or
    one kept), with the headers :func:`respond` gives."""
    return Response(body, media_type=media_type, headers={**_HEADERS, **(headers or {})})


def error_response(fmt: str, status: int, descriptions: Sequence[str]) -> Response:
    """The spec's error body: one ``{"code", "description"}`` per problem."""
    return respond(fmt, "errors", [{"code": status, "description": d} for d in descriptions],
                   status=status)


__all__ = [
    "ROOTS",
    "content_type",
    "error_response",
    "item_body",
    "list_body",
    "raw_response",
    "respond",
    "to_xml",
]
