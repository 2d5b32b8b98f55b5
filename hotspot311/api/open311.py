"""The GeoReport v2 routes under ``/open311/v2/``: services, requests, intake.

``.json`` or ``.xml`` is chosen by the path's suffix (intake answers JSON or XML alike).
Reads without an API key get the public view (:mod:`layers.privacy`); with a valid
key (``api_key`` parameter, ``X-API-Key`` header or ``Authorization: Bearer KEY``), the
full record. Errors are the spec's list of ``{code, description}``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode

import pandas as pd
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from geo.store.query import RequestQuery
from hotspot311.api.cache import MAX_QUERY, CachedPage
from hotspot311.api.errors import Open311Error
from hotspot311.api.intake import Submission
from hotspot311.api.reads import (
    build_query,
    encode_cursor,
    iso_times,
    snap_public,
    window_is_now,
)
from hotspot311.api.records import ROW_COLUMNS, records_from_rows
from hotspot311.api.render import content_type, item_body, list_body, raw_response, respond
from hotspot311.api.rowcache import page_items
from hotspot311.api.security import authenticate, given_key
from hotspot311.api.state import client_of, state_of

router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])
Fmt = Literal["json", "xml"]

_POST_BODY: dict[str, Any] = {"requestBody": {"content": {
    "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
        "api_key": {"type": "string"}, "service_code": {"type": "string"},
        "lat": {"type": "number"}, "long": {"type": "number"},
        "address_string": {"type": "string"}, "address_id": {"type": "string"},
        "description": {"type": "string"}, "media_url": {"type": "string"},
        "device_id": {"type": "string"},
        "attribute[CODE]": {"type": "string", "description": "one per attribute"}},
        "required": ["api_key", "service_code"]}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "media": {"type": "string", "format": "binary",
                  "description": "a JPEG or PNG photo"}}}}}}}


def _reader_privacy(request: Request) -> Any:
    st = state_of(request)
    key = given_key(request, request.query_params.get("api_key"))
    if key:
        authenticate(st.store, key)
        return None
    return st.privacy


def next_link(request: Request, cursor: str) -> str:
    """The ``Link`` header of the next page: this request's filters and the ``after``
    cursor, never the caller's ``api_key`` (a key stays where the client put it; a
    header value is logged and cached by proxies), nor ``page``."""
    kept = [(k, v) for k, v in request.query_params.multi_items()
            if k.lower() not in ("api_key", "page", "after")]
    url = request.url.replace(query=urlencode([*kept, ("after", cursor)]))
    return f'<{url}>; rel="next"'


@router.get("/services.{fmt}", summary="The service catalogue")
def services(request: Request, fmt: Fmt) -> Response:
    """Every service type: code, name, description, whether it has attributes."""
    st = state_of(request)
    st.limits.check("read", client_of(request))
    return respond(fmt, "services", st.catalogue.service_list())


@router.get("/services/{code}.{fmt}", summary="One service's definition (attributes)")
def service_definition(request: Request, code: str, fmt: Fmt) -> Response:
    """The attributes a request of this service may carry."""
    st = state_of(request)
    st.limits.check("read", client_of(request))
    found = st.catalogue.by_code(code)
    if found is None:
        raise Open311Error(404, f"service_code: {code[:60]!r} is not in the catalogue; "
                                f"allowed: {[d.code for d in st.catalogue.definitions]}")
    return respond(fmt, "service_definition", st.catalogue.definition(found))


@router.get("/requests.{fmt}", summary="Requests matching the filters (one page)")
def list_requests(request: Request, fmt: Fmt) -> Response:
    """Filters: ``service_request_id``, ``service_code``, ``start_date``, ``end_date``,
    ``status``, ``updated_after``, ``updated_before``, ``bbox``, ``lat``/``long``/
    ``radius``, ``page``, ``page_size``, ``after`` (the next-page cursor of the ``Link``
    header). Without a key, ``bbox`` and the circle are answered as boxes on the grid of
    the rounded coordinates."""
    st = state_of(request)
    st.limits.check("read", client_of(request))
    privacy = _reader_privacy(request)
    params = {k: v for k, v in request.query_params.items() if k != "api_key"}
    query = build_query(params, catalogue=st.catalogue, tz=st.calendar.timezone,
                        now=datetime.now(UTC))
    if privacy is not None:  # no finer position filter than the rounded coordinates
        query = snap_public(query, privacy.coordinate_decimals)
    # a page answered before is answered again while the stored requests are unchanged
    # (hotspot311.api.cache); the key holds all that makes the page and its Link header
    # (not a page of the default window: it moves with the clock)
    raw_query = request.url.query
    version = (st.store.data_version() if st.pages.max_bytes and not window_is_now(params)
               and len(raw_query) <= MAX_QUERY else None)
    key = (fmt, privacy is None, request.url.scheme, request.url.netloc, query,
           tuple((k, v) for k, v in request.query_params.multi_items()
                 if k.lower() != "api_key"))
    kept = st.pages.get(key, version)
    if kept is not None:
        return raw_response(kept.body, kept.media_type, dict(kept.headers))

    def render(rows: dict[str, list[Any]]) -> dict[str, bytes]:
        records = records_from_rows(rows, catalogue=st.catalogue, calendar=st.calendar,
                                    privacy=privacy)
        return {r["service_request_id"]: item_body(fmt, "requests", r) for r in records}

    # rows rendered before at the same data version are reused (hotspot311.api.rowcache)
    page = page_items(st.store, st.rows, query, variant=(fmt, privacy is None),
                      columns=ROW_COLUMNS, render=render)
    headers = {}
    if not query.ids and len(page.items) == query.limit and page.last is not None:
        cursor = encode_cursor(pd.Timestamp(page.last[0]), str(page.last[1]))
        headers["Link"] = next_link(request, cursor)
    response = raw_response(list_body(fmt, "requests", page.items), content_type(fmt), headers)
    if version is not None:
        st.pages.put(key, CachedPage(version, bytes(response.body), str(response.media_type),
                                     tuple(headers.items()),
                                     key_bytes=2 * len(raw_query) + len(request.url.netloc)))
    return response


@router.get("/requests/{request_id}.{fmt}", summary="One request")
async def one_request(request: Request, request_id: str, fmt: Fmt) -> Response:
    """The request with this ``service_request_id`` (the public view without a key).

    The busiest read, so it runs in the event loop: the store's asyncio reads when it has
    them (PostGIS), else the thread pool; a key is checked on the thread pool."""
    st = state_of(request)
    st.limits.check("read", client_of(request))
    privacy: Any = st.privacy
    if given_key(request, request.query_params.get("api_key")):
        privacy = await run_in_threadpool(_reader_privacy, request)
    query = RequestQuery(ids=(request_id,), limit=1)
    rows = (await st.reads.query_rows(query, columns=ROW_COLUMNS) if st.reads is not None
            else await run_in_threadpool(st.store.query_rows, query, columns=ROW_COLUMNS))
    if not rows["service_request_id"]:
        raise Open311Error(404, f"service_request_id: {request_id[:60]!r} is not a stored "
                                "request")
    return respond(fmt, "requests", records_from_rows(rows, catalogue=st.catalogue,
                                                      calendar=st.calendar, privacy=privacy))


@router.post("/requests.{fmt}", summary="Post a request (api_key required)",
             openapi_extra=_POST_BODY, status_code=201)
async def post_request(request: Request, fmt: Fmt) -> Response:
    """A new request, through the same validation, geocoding and store as a file.

    The ``Idempotency-Key`` header makes a retry safe: the same key (per account) names the
    same request, stored once. Answers 201 with ``service_request_id``,
    ``expected_datetime`` and ``service_notice`` (200 for a replay)."""
    st = state_of(request)
    st.limits.check("write_address", client_of(request))
    async with request.form(max_files=1, max_fields=200,
                            max_part_size=st.settings.max_body_bytes) as form:
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        given = given_key(request, fields.get("api_key"))
        account = await run_in_threadpool(authenticate, st.store, given)
        st.limits.check("write_key", account.name)
        photo = form.get("media")
        data = await photo.read() if isinstance(photo, UploadFile) else None
        attributes: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            if key.startswith("attribute[") and key.endswith("]") and isinstance(value, str):
                attributes.setdefault(key[10:].split("]")[0], []).append(value)
        sub = Submission(account=account, service_code=fields.get("service_code", ""),
                         lat=fields.get("lat") or None, long=fields.get("long") or None,
                         address_string=fields.get("address_string") or None,
                         address_id=fields.get("address_id") or None,
                         description=fields.get("description") or None, attributes=attributes,
                         media_url=fields.get("media_url") or None, photo=data or None,
                         device_id=fields.get("device_id") or None,
                         idempotency_key=request.headers.get("idempotency-key"))
    base = str(request.base_url).rstrip("/") + "/media/"
    receipt = await run_in_threadpool(st.intake.submit, sub, media_base=base)
    body = [{"service_request_id": receipt.service_request_id,
             "service_notice": receipt.service_notice, "account_id": None,
             "expected_datetime": iso_times([receipt.expected_datetime],
                                            st.calendar.timezone)[0]}]
    headers = {"Idempotent-Replayed": "true"} if receipt.replayed else {}
    return respond(fmt, "requests", body, status=200 if receipt.replayed else 201,
                   headers=headers)


__all__ = ["router"]
