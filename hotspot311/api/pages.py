"""The HTML pages: the residents' tracking page and the liaisons' form.

Both are server-rendered, escaped by Jinja2's autoescape, phone-friendly, and work
without JavaScript. The tracking page shows status, service, dates, the agreed
completion date and status notes: nothing personal (no address, description, position
or photo); it is rate limited per client address. The liaison form posts through the
same :meth:`hotspot311.api.intake.Intake.submit` as ``POST requests.json``; its session
is a signed cookie made by signing in with the account's API key.
"""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Any, Final

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from geo.store.api_keys import ApiKey
from geo.store.query import RequestQuery
from hotspot311.api.errors import Open311Error
from hotspot311.api.intake import Receipt, Submission
from hotspot311.api.render import NOT_XML_CHARS
from hotspot311.api.security import authenticate, sign, unsign
from hotspot311.api.state import AppState, client_of, state_of

router = APIRouter(include_in_schema=False)
COOKIE: Final = "h311_session"
FORM_ROLES: Final = ("liaison", "field_staff")
_CSP: Final = ("default-src 'self'; img-src 'self' data: https://*.openstreetmap.org; "
               "script-src 'self'; style-src 'self'; frame-ancestors 'none'; "
               "form-action 'self'; base-uri 'none'")
_HEADERS: Final = {"Content-Security-Policy": _CSP, "X-Frame-Options": "DENY",
                   "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
                   "X-Content-Type-Options": "nosniff"}


def _page(st: AppState, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = st.templates.get_template(name).render(city=st.store.profile.name, **values)
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _local(value: Any, tz: str, fmt: str = "%A %d %B %Y") -> str:
    if value is None or pd.isna(value):
        return "not set"
    return str(pd.Timestamp(value).tz_convert(tz).strftime(fmt))


def track_record(st: AppState, rows: pd.DataFrame) -> dict[str, str]:
    """What the tracking page shows of one stored request (nothing personal)."""
    from reports.sla import sla_due_time

    row = rows.iloc[0]
    tz = st.calendar.timezone
    stored = pd.to_datetime(rows["expected_datetime"], utc=True).iloc[0]
    requested = pd.to_datetime(rows["requested_datetime"], utc=True).iloc[0]
    expected = stored if not pd.isna(stored) else sla_due_time(
        None if pd.isna(row["service_name"]) else row["service_name"],
        None if pd.isna(requested) else requested.to_pydatetime(),
        services=st.catalogue.services, calendar=st.calendar)
    expected = None if expected is None or pd.isna(expected) else expected
    name = str(row["service_name"]) if not pd.isna(row["service_name"]) else "not given"
    status = str(row["status"]) if not pd.isna(row["status"]) else "unknown"
    notes = row["status_notes"]
    return {
        "id": str(row["service_request_id"]),
        "status": {"open": "Open: in progress", "closed": "Closed"}.get(status, status),
        "service": name,
        "requested": _local(row["requested_datetime"], tz),
        "due": _local(expected, tz) if not pd.isna(expected) else "no agreed time frame",
        "closed": _local(row["closed_datetime"], tz) if not pd.isna(row["closed_datetime"])
        else "",
        "updated": _local(row["updated_datetime"], tz, "%A %d %B %Y, %H:%M"),
        "notes": "none yet" if notes is None or pd.isna(notes) else str(notes),
        "notice": st.intake.notice(name, None if pd.isna(expected) else expected)
        if status == "open" else "",
    }


#: What XML cannot carry, and DEL: shown as U+FFFD where a page repeats what someone
#: typed (a NUL is not text in HTML).
_NOT_HTML = re.compile(f"[{NOT_XML_CHARS}\x7f]")


@router.get("/track", response_class=HTMLResponse)
def track(request: Request, id: str | None = None) -> HTMLResponse:
    """The tracking page: a form, and the request when a number is given."""
    st = state_of(request)
    try:
        st.limits.check("track", client_of(request))
    except Open311Error:
        return _page(st, "track.html", 429, title="Too many look-ups", asked="", record=None,
                     message="Too many look-ups from your connection. Please wait a minute "
                             "and try again.")
    asked = (id or "").strip()[:100]
    if not asked:
        return _page(st, "track.html", title="Track your request", asked="", record=None,
                     message="")
    rows = pd.DataFrame()
    for candidate in dict.fromkeys((asked, asked.upper())):
        rows = st.store.query_requests(RequestQuery(ids=(candidate,), limit=1))
        if not rows.empty:
            break
    asked = _NOT_HTML.sub("\ufffd", asked)  # shown back: no control characters in the page
    if rows.empty:
        return _page(st, "track.html", 404, title="Request not found", asked=asked, record=None,
                     message=f"We have no request with the number {asked}. Check the number "
                             "and try again; a request made in the last few minutes may not "
                             "be listed yet.")
    record = track_record(st, rows)
    return _page(st, "track.html", title=f"Request {record['id']}", asked=asked,
                 record=record, message="")


def _account(request: Request) -> ApiKey | None:
    st = state_of(request)
    name = unsign(st.settings.secret, request.cookies.get(COOKIE))
    if name is None:
        return None
    found = [k for k in st.store.api_keys() if k.name == name]
    return found[0] if found and found[0].active and found[0].role in FORM_ROLES else None


def _csrf(st: AppState, account: ApiKey) -> str:
    return hmac.new(st.settings.secret.encode(), f"csrf|{account.name}".encode(),
                    "sha256").hexdigest()


@router.get("/liaison/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    """Sign-in page for liaisons and field staff."""
    return _page(state_of(request), "login.html", title="Sign in", message="")


@router.post("/liaison/login")
async def login(request: Request) -> Response:
    """Check the key; set the signed session cookie."""
    st = state_of(request)
    async with request.form(max_files=0, max_fields=5) as form:
        given = str(form.get("api_key") or "")
    try:
        st.limits.check("write_address", client_of(request))
        account = authenticate(st.store, given)
        if account.role not in FORM_ROLES:
            raise Open311Error(403, f"account {account.name!r} is a {account.role}; the form "
                                    f"is for {' and '.join(FORM_ROLES)}")
    except Open311Error as err:
        return _page(st, "login.html", err.status, title="Sign in",
                     message="; ".join(err.descriptions))
    out = RedirectResponse("/liaison", status_code=303)
    out.set_cookie(COOKIE, sign(st.settings.secret, account.name), httponly=True,
                   samesite="strict", secure=request.url.scheme == "https", path="/")
    return out


@router.post("/liaison/logout")
async def logout(request: Request) -> Response:
    """Forget the session."""
    out = RedirectResponse("/liaison/login", status_code=303)
    out.delete_cookie(COOKIE, path="/")
    return out


def _form_page(request: Request, account: ApiKey, *, status: int = 200,
               errors: list[str] | None = None, receipt: Receipt | None = None,
               service_code: str | None = None, find: str = "", lat: str = "",
               lon: str = "", address: str = "", found: str = "") -> HTMLResponse:
    st = state_of(request)
    defs = st.catalogue.definitions
    service = st.catalogue.by_code(service_code or "") or (defs[0] if defs else None)
    if service is None:
        return _page(st, "login.html", 503, title="No services",
                     message="The city's service catalogue is empty.")
    minx, miny, maxx, maxy = _extent(st)
    center = ((miny + maxy) / 2, (minx + maxx) / 2)
    return _page(st, "liaison.html", status, title="New request", account=account.name,
                 role=account.role, csrf=_csrf(st, account), services=defs, service=service,
                 errors=errors or [], receipt=receipt, find=find, found=found, lat=lat, lon=lon,
                 address=address, center=center, idempotency_key=secrets.token_urlsafe(16))


def _extent(st: AppState) -> tuple[float, float, float, float]:
    w, s, e, n = st.store.profile.extent.bounds
    return float(w), float(s), float(e), float(n)


@router.get("/liaison", response_class=HTMLResponse)
def liaison_form(request: Request, service: str | None = None, find: str = "") -> Response:
    """The form; ``find`` looks an address up with the offline geocoder (no script
    needed) and fills the position."""
    st = state_of(request)
    account = _account(request)
    if account is None:
        return RedirectResponse("/liaison/login", status_code=303)
    lat = lon = found = ""
    find = find.strip()[:200]
    if find:
        try:
            hit = st.intake.geocode(find)
        except Open311Error as err:
            hit = {"match_type": "unmatched", "reason": "; ".join(err.descriptions)}
        if hit["match_type"] == "unmatched":
            found = f"Not found: {find} ({hit.get('reason')}). Tap the map instead."
        else:
            lat, lon = f"{float(hit['lat']):.6f}", f"{float(hit['lon']):.6f}"
            found = f"Found: {hit.get('normalized') or find} ({hit['match_type']})."
    return _form_page(request, account, service_code=service, find=find, lat=lat, lon=lon,
                      address=find, found=found)


@router.post("/liaison", response_class=HTMLResponse)
async def liaison_post(request: Request) -> Response:
    """Send the form through the intake."""
    st = state_of(request)
    account = _account(request)
    if account is None:
        return RedirectResponse("/liaison/login", status_code=303)
    async with request.form(max_files=1, max_fields=200,
                            max_part_size=st.settings.max_body_bytes) as form:
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        if not hmac.compare_digest(fields.get("csrf", ""), _csrf(st, account)):
            return _form_page(request, account, status=403,
                              errors=["the form is out of date; reload it and send again"])
        attributes: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            if key.startswith("attribute[") and isinstance(value, str):
                attributes.setdefault(key[10:].split("]")[0], []).append(value)
        photo = form.get("media")
        data = await photo.read() if isinstance(photo, UploadFile) else None
    sub = Submission(account=account, service_code=fields.get("service_code", ""),
                     lat=fields.get("lat") or None, long=fields.get("long") or None,
                     address_string=fields.get("address_string") or None,
                     description=fields.get("description") or None, attributes=attributes,
                     photo=data or None, idempotency_key=fields.get("idempotency_key") or None,
                     channel="liaison-form")
    try:
        st.limits.check("write_key", account.name)
        receipt = await run_in_threadpool(st.intake.submit, sub, now=datetime.now(UTC),
                                          media_base=str(request.base_url) + "media/")
    except Open311Error as err:
        return _form_page(request, account, status=err.status, errors=err.descriptions,
                          service_code=sub.service_code, lat=sub.lat or "", lon=sub.long or "",
                          address=sub.address_string or "")
    return _form_page(request, account, status=201, receipt=receipt,
                      service_code=sub.service_code)


__all__ = ["router", "track_record"]
