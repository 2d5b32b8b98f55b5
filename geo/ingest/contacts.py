"""The contact model: one row per contact with a 311 center, and its validation.

Most contacts (calls, emails, web forms, walk-ins, social media, app, text) never become a
service request; a contact that made or asked about one names it in
``service_request_id``. Fields (:data:`geo.ingest.contacts_mapping.CONTACT_FIELDS`):

``contact_id`` (text, the key), ``received_datetime`` (timezone-aware, UTC), ``channel``
(phone, email, web, walk_in, social, app, text), ``outcome`` (information, referral,
service_request, transfer_911, other), ``department``, ``service_request_id``,
``answered`` (true/false; an abandoned call is false; missing when unknown),
``wait_seconds``, ``handle_seconds`` (≥ 0, missing when unknown), ``team``; derived:
``synthetic``, ``extra`` (unmapped source columns as JSON), ``batch_id``, ``row_hash``.

Each row is checked in this order and the first failure is its quarantine reason:

=======================  ==================================================================
reason                   meaning
=======================  ==================================================================
``missing_id``           no ``contact_id``
``missing_time``         no ``received_datetime``
``unparseable_time``     ``received_datetime`` is not a time hotspot311 can read
``time_in_future``       ``received_datetime`` is more than a day after now
``missing_channel``      no ``channel``
``unknown_channel``      a channel that is neither canonical nor a mapped city code
``missing_outcome``      no ``outcome``
``unknown_outcome``      an outcome that is neither canonical nor a mapped city code
``invalid_answered``     ``answered`` is not true/false (yes/no, y/n, 1/0)
``invalid_seconds``      ``wait_seconds`` or ``handle_seconds`` not a number ≥ 0
``duplicate_id``         a later row of the same file has the same id, so it was kept
=======================  ==================================================================

Upserts are keyed on ``contact_id``: a row whose content differs replaces the stored one
(the later ingest wins); an equal row changes nothing. Text holding U+0000 (which
PostgreSQL cannot store) gets U+FFFD here, so both stores keep the same text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import pandas as pd

from geo.ingest.contacts_mapping import CODED, CONTACT_FIELDS, ContactMapping
from geo.ingest.readers import ROW_COLUMN
from geo.ingest.times import parse_times
from geo.ingest.validate import normalize_ids
from layers.profile import CityProfile

CONTACT_REASONS: Final[dict[str, str]] = {
    "missing_id": "no contact_id; map the id column with --map contact_id=COLUMN",
    "missing_time": "no received_datetime; map it with --map received_datetime=COLUMN",
    "unparseable_time": "received_datetime {value!r} is not a time hotspot311 can read "
    "(epoch ms, ISO 8601, M/D/YYYY H:MM, YYYY/MM/DD H:MM)",
    "time_in_future": "received_datetime {value} is in the future",
    "missing_channel": "no channel; map it or give one with --set channel=phone",
    "unknown_channel": "channel {value!r} is not a channel; allowed: {allowed} "
    "(or map the city's code with --value-map channel=CODE:VALUE)",
    "missing_outcome": "no outcome; map it with --map outcome=COLUMN",
    "unknown_outcome": "outcome {value!r} is not an outcome; allowed: {allowed} "
    "(or map the city's code with --value-map outcome=CODE:VALUE)",
    "invalid_answered": "answered {value!r} is not true/false (yes/no, y/n, 1/0)",
    "invalid_seconds": "{value}; allowed: a number of seconds >= 0",
    "duplicate_id": "row {kept} of this file has the same contact_id and comes later, so it "
    "was kept",
}

#: Columns of the contact quarantine.
CONTACT_QUARANTINE_COLUMNS: Final = (
    "quarantine_id", "batch_id", "source_file", "source_row", "reason", "detail",
    "contact_id", "raw", "quarantined_at",
)
#: Stored contact columns, in order.
CONTACT_COLUMNS: Final = (*CONTACT_FIELDS, "synthetic", "extra", "batch_id", "row_hash")
_TEXT: Final = ("contact_id", "channel", "outcome", "department", "service_request_id", "team")
_TRUE: Final = frozenset({"true", "t", "yes", "y", "1", "answered"})
_FALSE: Final = frozenset({"false", "f", "no", "n", "0", "abandoned"})
_FUTURE_TOLERANCE: Final = timedelta(days=1)


@dataclass
class ContactBatch:
    """Validated contacts of one source file.

    Attributes
    ----------
    contacts
        Usable contacts (:data:`CONTACT_COLUMNS`).
    quarantine
        Rows that cannot be used (:data:`CONTACT_QUARANTINE_COLUMNS`).
    rows_read
        Rows in the source; ``len(contacts) + len(quarantine) == rows_read``.
    """

    contacts: pd.DataFrame
    quarantine: pd.DataFrame
    rows_read: int


def empty_contacts() -> pd.DataFrame:
    """An empty contact frame with typed columns."""
    data: dict[str, pd.Series] = {}
    for name in CONTACT_COLUMNS:
        if name == "received_datetime":
            data[name] = pd.Series([], dtype="datetime64[ns, UTC]")
        elif name in ("wait_seconds", "handle_seconds"):
            data[name] = pd.Series([], dtype="float64")
        elif name == "answered":
            data[name] = pd.Series([], dtype="boolean")
        elif name == "synthetic":
            data[name] = pd.Series([], dtype="bool")
        elif name == "row_hash":
            data[name] = pd.Series([], dtype="uint64")
        else:
            data[name] = pd.Series([], dtype="object")
    return pd.DataFrame(data)


def empty_contact_quarantine() -> pd.DataFrame:
    """An empty contact quarantine frame with typed columns."""
    frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in CONTACT_QUARANTINE_COLUMNS})
    frame["source_row"] = frame["source_row"].astype("int64")
    frame["quarantined_at"] = frame["quarantined_at"].astype("datetime64[ns, UTC]")
    return frame


def contact_row_hash(frame: pd.DataFrame) -> np.ndarray:
    """Fingerprint of each contact's content (fields, ``synthetic`` and ``extra``)."""
    cols = [c for c in (*CONTACT_FIELDS, "synthetic", "extra") if c in frame.columns]
    return pd.util.hash_pandas_object(frame[cols], index=False).to_numpy()


def validate_contacts(mapped: pd.DataFrame, *, profile: CityProfile, mapping: ContactMapping,
                      batch_id: str, source_file: str,
                      now: datetime | None = None) -> ContactBatch:
    """Type, check and code mapped contact rows; split them into contacts and quarantine.

    Parameters
    ----------
    mapped
        Output of :func:`geo.ingest.contacts_mapping.apply_contact_mapping`.
    profile
        City profile (time zone of naive times).
    mapping
        The mapping whose value maps code ``channel`` and ``outcome``.
    batch_id
        Identifier recorded on every row.
    source_file
        Name recorded in the quarantine.
    now
        Reference time for "in the future" (UTC now when omitted).

    Returns
    -------
    ContactBatch
        Contacts and quarantine; together they hold every row read.
    """
    now = now or datetime.now(UTC)
    df = mapped.reset_index(drop=True)
    reason = pd.Series(None, index=df.index, dtype=object)
    detail = pd.Series(None, index=df.index, dtype=object)

    def text(name: str) -> pd.Series:
        if name not in df.columns:
            return pd.Series(pd.NA, index=df.index, dtype="string")
        s = df[name].astype("string").str.replace("\x00", "\ufffd", regex=False).str.strip()
        return s.mask(s == "")

    def mark(mask: pd.Series, code: str, values: pd.Series | None = None, **fmt: str) -> None:
        m = mask.fillna(False).astype(bool) & reason.isna()
        if not m.any():
            return
        reason[m] = code
        template = CONTACT_REASONS[code]
        detail[m] = (template.format(**fmt) if values is None else
                     [template.format(value=str(v)[:80], **fmt) for v in values[m]])

    ids = normalize_ids(text("contact_id"))
    mark(ids.isna(), "missing_id")
    raw_time = text("received_datetime")
    received = parse_times(raw_time, tz=profile.timezone)
    mark(raw_time.isna(), "missing_time")
    mark(received.isna() & raw_time.notna(), "unparseable_time", raw_time)
    mark(received > pd.Timestamp(now + _FUTURE_TOLERANCE), "time_in_future", received)
    coded: dict[str, pd.Series] = {}
    for name, allowed in CODED.items():
        raw = text(name)
        folded = raw.str.casefold()
        codes = dict(mapping.values.get(name, {}))
        canonical = folded.map(lambda v, c=codes: c.get(v, v) if isinstance(v, str) else v)
        ok = canonical.isin(allowed).fillna(False).astype(bool)
        mark(raw.isna(), f"missing_{name}")
        mark(raw.notna() & ~ok, f"unknown_{name}", raw, allowed=", ".join(allowed))
        coded[name] = canonical.astype(object).where(ok, None)
    answered_raw = text("answered").str.casefold()
    answered = pd.Series(pd.NA, index=df.index, dtype="boolean")
    answered[answered_raw.isin(list(_TRUE)).fillna(False).astype(bool)] = True
    answered[answered_raw.isin(list(_FALSE)).fillna(False).astype(bool)] = False
    mark(answered_raw.notna() & answered.isna(), "invalid_answered", text("answered"))
    seconds: dict[str, pd.Series] = {}
    for name in ("wait_seconds", "handle_seconds"):
        raw = text(name)
        number = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = raw.notna() & ~(np.isfinite(number) & (number >= 0))
        described = pd.Series([f"{name} {v!r} is not a number >= 0" for v in raw.fillna("")],
                              index=df.index)
        mark(bad, "invalid_seconds", described)
        seconds[name] = number
    good = reason.isna() & ids.notna()
    later = ids[good].duplicated(keep="last")
    if later.any():
        rows = df.loc[good, ROW_COLUMN]
        winner = rows.groupby(ids[good]).transform("last")
        losers = later[later].index
        reason[losers] = "duplicate_id"
        detail[losers] = [CONTACT_REASONS["duplicate_id"].format(kept=w) for w in winner[losers]]

    extra_cols = [c for c in df.columns if c.startswith("src:") and c != "src:synthetic"]
    synthetic = text("src:synthetic").fillna("").str.lower().isin(["true", "1", "yes"])
    q = reason.notna()
    quarantine = _quarantine(df[q], reason[q], detail[q], ids[q], batch_id, source_file, now)
    keep = ~q
    out = pd.DataFrame(index=df.index[keep])
    for name in _TEXT:
        values = coded[name] if name in coded else text(name)
        out[name] = values[keep].astype(object).where(values[keep].notna(), None)
    out["contact_id"] = ids[keep]
    out["service_request_id"] = normalize_ids(text("service_request_id"))[keep]
    out["received_datetime"] = received[keep]
    out["answered"] = answered[keep]
    for name, values in seconds.items():
        out[name] = values[keep]
    out["synthetic"] = synthetic[keep].astype(bool).to_numpy()
    if extra_cols:
        renamed = df.loc[keep, extra_cols].rename(columns=lambda c: c[4:])
        lines = renamed.to_json(orient="records", lines=True, force_ascii=False).splitlines()
        out["extra"] = lines if len(renamed) else None
    else:
        out["extra"] = None
    out["batch_id"] = batch_id
    out = out[[*CONTACT_FIELDS, "synthetic", "extra", "batch_id"]].reset_index(drop=True)
    out["row_hash"] = contact_row_hash(out)
    return ContactBatch(contacts=out, quarantine=quarantine, rows_read=len(df))


def _quarantine(rows: pd.DataFrame, reason: pd.Series, detail: pd.Series, ids: pd.Series,
                batch_id: str, source_file: str, now: datetime) -> pd.DataFrame:
    """Quarantine records: the raw row as JSON, the reason, a stable id."""
    if rows.empty:
        return empty_contact_quarantine()
    raw_cols = [c for c in rows.columns if c != ROW_COLUMN]
    raw = rows[raw_cols].rename(columns=lambda c: c[4:] if c.startswith("src:") else c)
    raw = raw.map(lambda v: v.replace("\x00", "\ufffd") if isinstance(v, str) else v)
    raw_json = raw.to_json(orient="records", lines=True, force_ascii=False).splitlines()
    qid = [hashlib.sha1(f"contact\x1f{r}\x1f{c}\x1f{n}".encode("utf-8", "surrogatepass"))
           .hexdigest()[:20]
           for r, c, n in zip(raw_json, reason, rows[ROW_COLUMN], strict=True)]
    return pd.DataFrame({
        "quarantine_id": qid,
        "batch_id": batch_id,
        "source_file": source_file,
        "source_row": rows[ROW_COLUMN].astype("int64").to_numpy(),
        "reason": reason.to_numpy(dtype=object),
        "detail": detail.to_numpy(dtype=object),
        "contact_id": ids.to_numpy(dtype=object),
        "raw": raw_json,
        "quarantined_at": pd.Timestamp(now),
    })


def typed_contacts(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` in the one typed form both stores return (text as ``object``)."""
    template = empty_contacts()
    out = pd.DataFrame(index=frame.index)
    for c in template.columns:
        dtype = template[c].dtype
        if c == "received_datetime":
            out[c] = pd.to_datetime(frame[c], utc=True).astype("datetime64[ns, UTC]")
        elif c == "row_hash":
            out[c] = frame[c].astype("int64").to_numpy().view("uint64")
        elif c in ("wait_seconds", "handle_seconds"):
            out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
        elif str(dtype) == "boolean":
            out[c] = frame[c].astype("boolean")
        elif c == "synthetic":
            out[c] = frame[c].astype(bool)
        else:
            out[c] = frame[c].astype(object).where(frame[c].notna(), None)
    return out


def typed_contact_quarantine(frame: pd.DataFrame) -> pd.DataFrame:
    """A contact quarantine frame in the one typed form both stores return."""
    out = frame.astype(object).where(frame.notna(), None)
    out["source_row"] = frame["source_row"].astype("int64")
    out["quarantined_at"] = pd.to_datetime(frame["quarantined_at"], utc=True).astype(
        "datetime64[ns, UTC]")
    return out
