"""Feed sources as both stores keep them: the configuration and the sync state.

A source is a city feed (Open311, Socrata, CARTO or a file URL) registered by name. Its
configuration says where and how to read it (endpoint, dataset or table, column
mapping, page size, rate limit, the *name* of the environment variable holding a token,
never the token); its state says how far the last sync got: the watermark (a keyset
position, plain text values), the last run's time, outcome and error, and the rows and
pages synced so far.

The state advances in the same transaction (or snapshot) as the batch of the page it
describes (:meth:`geo.store.base.Store.write_batch`, keyword ``source_state``), so a
sync killed at any moment resumes at the last page written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Final

import pandas as pd

#: The feed protocols a source may use.
KINDS: Final = ("open311", "socrata", "carto", "file_url")


@dataclass(frozen=True)
class SourceConfig:
    """Where and how to read one feed.

    Attributes
    ----------
    name
        The source's name (letters, digits, ``-``, ``_``, ``.``).
    kind
        One of :data:`KINDS`.
    url
        Endpoint: the Open311 base that ``requests.json`` hangs from, the Socrata
        domain, the CARTO SQL API URL, or the file's URL.
    dataset, table, jurisdiction
        Socrata dataset id, CARTO table name, Open311 ``jurisdiction_id``.
    columns, constants
        The column mapping (:class:`geo.ingest.mapping.ColumnMapping`).
    page_size
        Rows asked for per request.
    rate_limit
        Most requests per second sent to the endpoint.
    token_env
        Name of the environment variable holding the app token or API key.
    options
        Protocol options (e.g. Open311 ``window=updated``).
    """

    name: str
    kind: str
    url: str
    dataset: str | None = None
    table: str | None = None
    jurisdiction: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    page_size: int = 1000
    rate_limit: float = 5.0
    token_env: str | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceState:
    """How far the syncs of one source got.

    Attributes
    ----------
    name
        The source's name.
    watermark
        Keyset position after the last page written (text values, e.g. ``updated``
        and ``id``), or ``None`` before the first page.
    last_sync
        When the last sync started.
    last_outcome
        ``running``, ``ok`` or ``error``.
    last_error
        The last error's message (``None`` after a clean run).
    rows, pages
        Rows and pages written by syncs so far.
    """

    name: str
    watermark: dict[str, str] | None = None
    last_sync: datetime | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    rows: int = 0
    pages: int = 0

    def advanced(self, watermark: dict[str, str] | None, rows: int) -> SourceState:
        """This state after one more page of ``rows`` rows ending at ``watermark``."""
        return replace(self, watermark=watermark, rows=self.rows + rows, pages=self.pages + 1)


@dataclass(frozen=True)
class Source:
    """A registered source: its configuration and its state."""

    config: SourceConfig
    state: SourceState


def config_to_json(config: SourceConfig) -> str:
    """The configuration as JSON text (name and kind included)."""
    return json.dumps(asdict(config), sort_keys=True)


def config_from_json(text: str | dict[str, Any]) -> SourceConfig:
    """A configuration from :func:`config_to_json`'s text (or its parsed object)."""
    data = json.loads(text) if isinstance(text, str) else dict(text)
    known = SourceConfig.__dataclass_fields__
    return SourceConfig(**{k: v for k, v in data.items() if k in known})


def state_to_json(state: SourceState) -> dict[str, Any]:
    """The state as a JSON-ready object (times as ISO text)."""
    out = asdict(state)
    out["last_sync"] = state.last_sync.isoformat() if state.last_sync else None
    return out


def state_from_json(data: dict[str, Any]) -> SourceState:
    """A state from :func:`state_to_json`'s object."""
    known = SourceState.__dataclass_fields__
    values = {k: v for k, v in data.items() if k in known}
    if values.get("last_sync"):
        values["last_sync"] = datetime.fromisoformat(values["last_sync"])
    return SourceState(**values)


def sources_frame(sources: list[Source]) -> pd.DataFrame:
    """One row per source: name, kind, last sync, outcome, rows, watermark, last error.

    Examples
    --------
    >>> cfg = SourceConfig(name="nyc", kind="socrata", url="https://data.example")
    >>> sources_frame([Source(cfg, SourceState("nyc"))])[["name", "last_sync", "rows"]]
      name last_sync  rows
    0  nyc     never     0
    """
    columns = ["name", "kind", "last_sync", "outcome", "rows", "watermark", "last_error"]
    return pd.DataFrame([{
        "name": s.config.name, "kind": s.config.kind,
        "last_sync": s.state.last_sync.isoformat(timespec="seconds") if s.state.last_sync
        else "never",
        "outcome": s.state.last_outcome or "", "rows": s.state.rows,
        "watermark": watermark_text(s.state.watermark),
        "last_error": (s.state.last_error or "")[:300],
    } for s in sources], columns=columns)


def data_as_of(sources: list[Source], batches_ingested: pd.Series) -> datetime | None:
    """When the stored data were last known current.

    With sources: the start of the newest sync that ended well (what the feeds had
    then is stored); without: the time of the newest ingest batch.

    Examples
    --------
    >>> data_as_of([], pd.Series(["2024-05-01T08:00:00+00:00"])).isoformat()
    '2024-05-01T08:00:00+00:00'
    """
    synced = [s.state.last_sync for s in sources
              if s.state.last_sync is not None and s.state.last_outcome == "ok"]
    if synced:
        return max(synced)
    times = pd.to_datetime(batches_ingested.dropna(), utc=True, format="ISO8601")
    return None if times.empty else times.max().to_pydatetime()


def watermark_text(watermark: dict[str, str] | None) -> str:
    """A watermark on one line, its time first (empty when there is none).

    Examples
    --------
    >>> watermark_text({"id": "row-1", "updated": "2024-05-01T08:00:00.000Z"})
    'updated=2024-05-01T08:00:00.000Z id=row-1'
    """
    items = sorted((watermark or {}).items(), key=lambda kv: (kv[0] != "updated", kv[0]))
    return " ".join(f"{k}={v}" for k, v in items)
