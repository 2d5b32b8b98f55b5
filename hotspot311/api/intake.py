"""Intake: one request posted by a liaison, field staff or a partner system, through the
same validate → geocode → store path as a file.

The posted fields become a one-row mapped frame (canonical columns, unknown ones as
``src:`` extras) that :func:`geo.ingest.validate.validate` checks with the same rules and
quarantine reasons as a file row. A row that ``needs_geocoding`` (an address and no usable
coordinates) is placed by the offline geocoder on the spot and validated again, as
``hotspot311 geocode`` does; an address the geocoder cannot place stays in the quarantine
(reason ``needs_geocoding``, in the review list) and the client gets a 400 naming it. Any
other quarantine reason is likewise stored and answered with a 400: nothing is lost.

The write is one ordinary atomic batch (``open311-<id>``), with the problem rule. The
tracking number is ``<prefix>-<10 characters>``: derived from the account and the
client's ``Idempotency-Key`` when one is given (so a retry names the same request, and a
request already stored is answered again instead of written twice), random otherwise.
``expected_datetime`` comes from the SLA table (working days from the city calendar).
A keyed post keeps a digest of its fields (:func:`fingerprint`) with the request (or the
quarantined row); the same key with different fields is refused with 422 naming the key,
never answered with the first request.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd

from clustering.problems import ProblemAssigner, ProblemRules
from geo.geocode.geocoder import Geocoder
from geo.ingest.model import row_hash
from geo.ingest.readers import ROW_COLUMN
from geo.ingest.validate import ValidatedBatch, validate
from geo.store.api_keys import ApiKey
from geo.store.base import Store
from geo.store.query import QUERY_COLUMNS, RequestQuery
from hotspot311.api.catalogue import Catalogue
from hotspot311.api.errors import Open311Error
from hotspot311.api.photos import clean_photo, save_photo
from hotspot311.errors import InputError
from reports.calendar import CalendarConfig
from reports.sla import sla_due_time

SOURCE_FILE: Final = "open311 intake"
#: Where a keyed post's :func:`fingerprint` is kept (an extra column of the request).
FINGERPRINT: Final = "src:idempotency_fingerprint"
MAX_TEXT: Final = 10_000
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U


@dataclass
class Submission:
    """What a client posted (``POST requests.json`` or the liaison form)."""

    account: ApiKey
    service_code: str
    lat: str | None = None
    long: str | None = None
    address_string: str | None = None
    address_id: str | None = None
    description: str | None = None
    attributes: dict[str, list[str]] = field(default_factory=dict)
    media_url: str | None = None
    photo: bytes | None = None
    device_id: str | None = None
    idempotency_key: str | None = None
    channel: str = "open311"


@dataclass
class Receipt:
    """The answer to a stored post."""

    service_request_id: str
    expected_datetime: pd.Timestamp | None
    service_notice: str
    replayed: bool = False


def tracking_number(prefix: str, account: str, key: str | None) -> str:
    """A tracking number: from (account, Idempotency-Key) when given, else random.

    Examples
    --------
    >>> tracking_number("H311", "ann", "k1") == tracking_number("H311", "ann", "k1")
    True
    >>> len(tracking_number("H311", "ann", None))
    15
    """
    seed = (f"{account}\x1f{key}".encode() if key is not None
            else secrets.token_bytes(16))
    digest = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big")
    chars = [_ALPHABET[(digest >> (5 * i)) & 31] for i in range(10)]
    return f"{prefix}-{''.join(chars)}"


def fingerprint(sub: Submission) -> str:
    """What a post asks for, as a digest: the same ``Idempotency-Key`` must come with
    the same fields (service, location, texts, attributes, photo bytes, device).

    Examples
    --------
    >>> from geo.store.api_keys import ApiKey
    >>> ann = ApiKey("ann", "liaison", "h", None, None)
    >>> a = Submission(ann, "street-defect", lat="39.95", long="-75.16")
    >>> fingerprint(a) == fingerprint(Submission(ann, "street-defect", lat="39.95",
    ...                                          long="-75.16"))
    True
    >>> fingerprint(a) == fingerprint(Submission(ann, "street-defect", lat="39.96",
    ...                                          long="-75.16"))
    False
    """
    doc = {"service_code": sub.service_code, "lat": sub.lat, "long": sub.long,
           "address_string": sub.address_string, "address_id": sub.address_id,
           "description": sub.description, "media_url": sub.media_url,
           "device_id": sub.device_id,
           "attributes": {k: sorted(v) for k, v in sorted(sub.attributes.items())},
           "photo": hashlib.sha256(sub.photo).hexdigest() if sub.photo else None}
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def recorded_fingerprint(value: object) -> str | None:
    """The fingerprint kept with a stored request's ``extra`` or a quarantined row's
    ``raw`` (JSON text or an already decoded object), if any."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict):
        return None
    found = value.get(FINGERPRINT, value.get(FINGERPRINT[4:]))
    return found if isinstance(found, str) else None


def _check_same(recorded: str | None, print_: str, key: str, rid: str) -> None:
    """Refuse a key reused for a different request (requests stored before
    fingerprints were kept have none and are answered as before)."""
    if recorded is not None and recorded != print_:
        raise Open311Error(422, f"Idempotency-Key: {key[:60]!r} was already used by this "
                                f"account for a different request ({rid}); the same key "
                                "must come with the same fields; use a new key for a new "
                                "request")


class Intake:
    """The intake of one app: store, city catalogue, SLA calendar and geocoder.

    Parameters
    ----------
    store
        Where requests go.
    catalogue, calendar
        Services (codes, attributes, SLA days) and working days.
    media_dir
        Folder for cleaned photos.
    max_photo_bytes
        Largest photo accepted.
    id_prefix
        Prefix of tracking numbers.
    geocoder
        Returns the city's offline geocoder (called once, on the first address).
    """

    def __init__(self, store: Store, *, catalogue: Catalogue, calendar: CalendarConfig,
                 media_dir: Path, max_photo_bytes: int, id_prefix: str,
                 geocoder: Callable[[], Geocoder]) -> None:
        self.store = store
        self.catalogue = catalogue
        self.calendar = calendar
        self.media_dir = media_dir
        self.max_photo_bytes = max_photo_bytes
        self.id_prefix = id_prefix
        self._geocoder_factory = geocoder
        self._geocoder: Geocoder | None = None
        self._problems = ProblemAssigner(ProblemRules.for_city(store.profile))
        self._lock = threading.Lock()  # one write at a time (check, then write)
        self._geocoder_lock = threading.Lock()  # the geocoder's cache is not thread-safe

    def geocode(self, address: str) -> dict[str, Any]:
        """The offline geocoder's answer for one address (``lat``, ``lon``,
        ``match_type``, ``score``, ``reason``)."""
        with self._geocoder_lock:
            if self._geocoder is None:
                try:
                    self._geocoder = self._geocoder_factory()
                except InputError as err:
                    raise Open311Error(400, f"address_string: cannot be placed here ({err}); "
                                            "give lat and long") from err
            res = self._geocoder.geocode(pd.Series([address], dtype=object))
        return {c: res[c].iloc[0] for c in res.columns}

    def submit(self, sub: Submission, *, now: datetime | None = None,
               media_base: str = "/media/") -> Receipt:
        """Check, place and store one request.

        Raises
        ------
        Open311Error
            400 for a field that cannot be used (unknown service, attributes, no
            location, an address the geocoder cannot place: the last two also leave a
            quarantine row), 413 for a photo too large.
        """
        definition = self.catalogue.by_code(sub.service_code or "")
        if definition is None:
            raise Open311Error(400, f"service_code: {str(sub.service_code)[:60]!r} is not in "
                                    "the catalogue; allowed: "
                                    f"{[d.code for d in self.catalogue.definitions]}")
        from layers.service_attributes import check_attributes

        attrs, problems = check_attributes(definition, sub.attributes)
        for name in ("description", "address_string"):
            value = getattr(sub, name)
            if value is not None and len(value) > MAX_TEXT:
                problems.append(f"{name}: {len(value):,} characters; allowed: at most "
                                f"{MAX_TEXT:,}")
        if sub.address_id and not (sub.lat or sub.address_string):
            problems.append(f"address_id: {sub.address_id[:40]!r} cannot be used: this city "
                            "has no address repository; give lat and long or address_string")
        if sub.idempotency_key is not None and not 1 <= len(sub.idempotency_key) <= 255:
            problems.append("Idempotency-Key: allowed: 1 to 255 characters")
        if problems:
            raise Open311Error(400, problems)
        rid = tracking_number(self.id_prefix, sub.account.name, sub.idempotency_key)
        now = now or datetime.now(UTC)
        print_ = fingerprint(sub)
        with self._lock:
            if sub.idempotency_key is not None:
                again = self._stored(rid, print_, sub.idempotency_key)
                if again is not None:
                    return again
                self._quarantined_before(rid, print_, sub.idempotency_key)
            media = sub.media_url
            if sub.photo:
                media = media_base + save_photo(
                    clean_photo(sub.photo, max_bytes=self.max_photo_bytes), self.media_dir)
            mapped = self._mapped(rid, sub, definition.name, definition.agency, attrs, media,
                                  now)
            if sub.idempotency_key is not None:
                mapped[FINGERPRINT] = print_
            batch = validate(mapped, profile=self.store.profile, batch_id=f"open311-{rid}",
                             source_file=SOURCE_FILE, now=now)
            why = ""
            if len(batch.quarantine) and batch.quarantine["reason"].iloc[0] == "needs_geocoding":
                geocoded, why = self._place(mapped, sub.address_string or "", rid, now)
                batch = geocoded if geocoded is not None else batch
            failed = batch.quarantine
            if len(failed) and sub.idempotency_key is not None and self._already_quarantined(
                    rid, str(failed["reason"].iloc[0])):
                raise self._refusal(batch, sub, why)
            info: dict[str, object] = {"batch_id": f"open311-{rid}", "source_file": SOURCE_FILE,
                                       "format": "open311", "encoding": "utf-8"}
            self.store.ensure_profile_layers()
            self.store.write_batch(batch, info=info, problems=self._problems)
        if len(batch.quarantine):
            raise self._refusal(batch, sub, why)
        expected = pd.to_datetime(batch.requests["expected_datetime"], utc=True).iloc[0]
        return Receipt(rid, None if pd.isna(expected) else expected,
                       self.notice(definition.name, expected))

    def notice(self, service_name: str, expected: pd.Timestamp | None) -> str:
        """The agreed time frame of a service, in words."""
        sla = self.catalogue.sla(service_name)
        if sla is None or sla.sla_days is None:
            return f"{service_name}: no agreed time frame."
        days = f"{sla.sla_days:g} {'working ' if sla.working_days else ''}day" + (
            "" if sla.sla_days == 1 else "s")
        when = ""
        if expected is not None and not pd.isna(expected):
            local = pd.Timestamp(expected).tz_convert(self.calendar.timezone)
            when = f"; expected by {local:%A %d %B %Y}"
        who = sla.agency or "the department"
        return f"{service_name}: {who} agreed to finish within {days}{when}."

    def _stored(self, rid: str, print_: str, key: str) -> Receipt | None:
        rows = self.store.query_requests(RequestQuery(ids=(rid,), limit=1),
                                         columns=(*QUERY_COLUMNS, "extra"))
        if rows.empty:
            return None
        row = rows.iloc[0]
        _check_same(recorded_fingerprint(row.get("extra")), print_, key, rid)
        stored = pd.to_datetime(rows["expected_datetime"], utc=True).iloc[0]
        requested = pd.to_datetime(rows["requested_datetime"], utc=True).iloc[0]
        due = stored if not pd.isna(stored) else sla_due_time(
            row["service_name"], None if pd.isna(requested) else requested.to_pydatetime(),
            services=self.catalogue.services, calendar=self.calendar)
        expected = None if due is None or pd.isna(due) else pd.Timestamp(due)
        return Receipt(rid, expected, self.notice(str(row["service_name"]), expected),
                       replayed=True)

    def _quarantined_before(self, rid: str, print_: str, key: str) -> None:
        """Refuse a key whose earlier post (quarantined) asked for something else."""
        for raw in self.store.quarantined(rid)["raw"]:
            _check_same(recorded_fingerprint(raw), print_, key, rid)

    def _already_quarantined(self, rid: str, reason: str) -> bool:
        return bool((self.store.quarantined(rid)["reason"] == reason).any())

    def _mapped(self, rid: str, sub: Submission, name: str, agency: str,
                attrs: dict[str, object], media: str | None, now: datetime) -> pd.DataFrame:
        when = pd.Timestamp(now).tz_convert("UTC")
        due = sla_due_time(name, when.to_pydatetime(), services=self.catalogue.services,
                           calendar=self.calendar)
        row: dict[str, object] = {
            "service_request_id": rid, "status": "open", "service_code": sub.service_code,
            "service_name": name, "agency_responsible": agency,
            "description": sub.description, "requested_datetime": when.isoformat(),
            "updated_datetime": when.isoformat(),
            "expected_datetime": None if due is None else due.isoformat(),
            "address": sub.address_string, "lat": sub.lat, "lon": sub.long,
            "media_url": media, "source": f"{sub.channel}:{sub.account.role}",
            "src:account": sub.account.name, ROW_COLUMN: 1,
        }
        if sub.device_id:
            row["src:device_id"] = sub.device_id
        for code, value in attrs.items():
            row[f"src:attribute_{code}"] = (value if isinstance(value, str)
                                            else json.dumps(value, ensure_ascii=False))
        mapped = pd.DataFrame([row], dtype=object)
        mapped[ROW_COLUMN] = mapped[ROW_COLUMN].astype("int64")
        return mapped

    def _place(self, mapped: pd.DataFrame, address: str, rid: str,
               now: datetime) -> tuple[ValidatedBatch | None, str]:
        found = self.geocode(address)
        if found["match_type"] == "unmatched":
            return None, str(found.get("reason") or "unmatched")
        placed = mapped.copy()
        placed["lat"], placed["lon"] = repr(float(found["lat"])), repr(float(found["lon"]))
        batch = validate(placed, profile=self.store.profile, batch_id=f"open311-{rid}",
                         source_file=SOURCE_FILE, now=now)
        req = batch.requests
        if len(req):
            req["geocode_match_type"] = found["match_type"]
            req["geocode_score"] = float(found["score"])
            req["row_hash"] = row_hash(req)
        return batch, ""

    def _refusal(self, batch: ValidatedBatch, sub: Submission, why: str) -> Open311Error:
        q = batch.quarantine.iloc[0]
        reason = str(q["reason"])
        if reason == "needs_geocoding":
            return Open311Error(400, f"address_string: {str(sub.address_string)[:120]!r} "
                                     f"cannot be placed by the city's geocoder ({why}); give "
                                     "lat and long. The request is kept for review "
                                     f"(quarantine {q['quarantine_id']}).")
        return Open311Error(400, f"location: {q['detail']} (reason {reason}; kept as "
                                 f"quarantine {q['quarantine_id']}); give lat and long inside "
                                 "the city or an address_string")


__all__ = ["FINGERPRINT", "Intake", "Receipt", "Submission", "fingerprint",
           "recorded_fingerprint", "tracking_number"]
