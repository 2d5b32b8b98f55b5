"""The sync engine shared by every feed protocol.

``sync`` reads a registered source page by page from its watermark; every page (or
group of pages, ``batch_rows``) becomes one ordinary ingest batch (mapped with the
source's column mapping, validated, quarantined, idempotent, atomic), written together
with the source's new watermark (:meth:`geo.store.base.Store.write_batch`, keyword
``source_state``). So a sync killed at any moment resumes where it stopped, with
nothing lost and nothing doubled. Each protocol module gives ``pages(config, client, *,
watermark, now)`` and ``DEFAULT_COLUMNS``; :mod:`geo.feeds.open311` also
``services``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pandas as pd
from tqdm import tqdm

from geo.feeds import carto, file_url, open311, socrata
from geo.feeds.client import FeedClient
from geo.feeds.records import Page, iso_z, parse_time
from geo.ingest.mapping import ColumnMapping, apply_mapping
from geo.ingest.readers import ROW_COLUMN
from geo.ingest.sink import ProblemAssigner, WriteResult
from geo.ingest.validate import validate
from geo.store.base import Store
from geo.store.sources import SourceConfig, SourceState
from hotspot311.errors import FeedError, InputError, MappingError

PROTOCOLS: dict[str, ModuleType] = {
    "open311": open311, "socrata": socrata, "carto": carto, "file_url": file_url}


@dataclass
class SyncReport:
    """What one sync of one source did.

    Attributes
    ----------
    source
        The source's name.
    pages, batches
        Pages read and batches written.
    rows
        Rows read (each counted once; a row served twice in one batch is ``repeated``).
    result
        The store's counts summed over the batches.
    watermark
        The source's watermark afterwards.
    stopped
        Whether the sync stopped early on request (SIGTERM), between batches.
    error
        The error that ended the sync, if one did.
    """

    source: str
    pages: int = 0
    batches: int = 0
    rows: int = 0
    repeated: int = 0
    result: WriteResult = field(default_factory=WriteResult)
    watermark: dict[str, str] | None = None
    stopped: bool = False
    error: str | None = None


def mapping_of(config: SourceConfig) -> ColumnMapping:
    """The source's column mapping over its protocol's defaults."""
    defaults = ColumnMapping(columns=dict(PROTOCOLS[config.kind].DEFAULT_COLUMNS))
    mine = ColumnMapping(columns=dict(config.columns), constants=dict(config.constants))
    merged = defaults.merged(mine)
    # a default whose field the user gave a constant to gives way
    columns = {k: v for k, v in merged.columns.items() if k not in merged.constants}
    return ColumnMapping(columns=columns, constants=merged.constants)


def client_for(config: SourceConfig, **options: Any) -> FeedClient:
    """A client with the source's rate limit and token header.

    Raises
    ------
    InputError
        When the source names a token variable that is not set.
    """
    headers: dict[str, str] = {"User-Agent": "hotspot311 feeds"}
    if config.token_env:
        token = os.environ.get(config.token_env)
        if not token:
            raise InputError(f"source {config.name!r}: environment variable "
                             f"{config.token_env} (its token) is not set")
        if config.kind == "socrata":
            headers[socrata.TOKEN_HEADER] = token
        else:
            headers["Authorization"] = f"Bearer {token}"
    return FeedClient(config.name, rate_limit=config.rate_limit, headers=headers, **options)


def sync(
    store: Store,
    name: str,
    *,
    since: str | None = None,
    full: bool = False,
    problems: ProblemAssigner | None = None,
    stop: Callable[[], bool] | None = None,
    progress: bool = False,
    now: datetime | None = None,
    batch_rows: int | None = None,
    client_options: dict[str, Any] | None = None,
) -> SyncReport:
    """Pull what changed in source ``name`` since its watermark into ``store``.

    Parameters
    ----------
    store
        The store holding the source.
    name
        The source's name.
    since
        Start from this ISO date or time instead of the watermark.
    full
        Start from the beginning (every row again; unchanged rows change nothing).
    problems
        Keeps ``problem_id`` current in each write.
    stop
        Asked between batches; when it returns true the sync ends there, cleanly.
    progress
        Show a progress bar with rows and pages.
    now
        The sync's time (reference for future times, end of Open311 windows).
    batch_rows
        Group pages into batches of at least this many rows (default: one page each).
    client_options
        Keyword arguments of :class:`geo.feeds.client.FeedClient` (timeouts, retries).

    Returns
    -------
    SyncReport
        Pages, rows and the store's counts.

    Raises
    ------
    FeedError
        When the feed fails (named source, URL and page); every batch written before
        stays, with its watermark, and the error is recorded as the last outcome.
    InputError
        When no source has ``name`` or its token variable is unset.
    """
    source = store.source(name)
    config = source.config
    started = now or datetime.now(UTC)
    if full:
        watermark = None
    elif since is not None:
        watermark = {"updated": iso_z(parse_time(since, what="--since"))}
    else:
        watermark = source.state.watermark
    state = replace(source.state, last_sync=started, last_outcome="running", last_error=None)
    report = SyncReport(source=name, watermark=watermark)
    protocol = PROTOCOLS[config.kind]
    bar = tqdm(desc=name, unit=" rows", disable=not progress, leave=False)
    store.ensure_profile_layers()
    try:
        with client_for(config, **(client_options or {})) as client:
            if hasattr(protocol, "services"):
                store.save_source_services(name, protocol.services(config, client))
            pages = protocol.pages(config, client, watermark=watermark, now=started)
            repeats = getattr(protocol, "REPEATS", False)
            for group in _groups(pages, batch_rows or 1):
                state = _write(store, config, group, state, report, problems, started,
                               repeats=repeats)
                bar.update(sum(len(p.frame) for p in group))
                bar.set_postfix(pages=report.pages, refresh=False)
                if stop is not None and stop():
                    report.stopped = True
                    break
    except FeedError as err:
        report.error = str(err)
        store.save_source_state(replace(state, last_outcome="error", last_error=str(err)))
        raise
    finally:
        bar.close()
    store.save_source_state(replace(state, last_outcome="ok", last_error=None))
    report.watermark = state.watermark
    return report


def _groups(pages: Iterator[Page], rows: int) -> Iterator[list[Page]]:
    """Consecutive pages with at least ``rows`` rows together (the last may have fewer)."""
    group: list[Page] = []
    count = 0
    for page in pages:
        group.append(page)
        count += len(page.frame)
        if count >= rows:
            yield group
            group, count = [], 0
    if group:
        yield group


def _write(store: Store, config: SourceConfig, group: list[Page], state: SourceState,
           report: SyncReport, problems: ProblemAssigner | None, started: datetime, *,
           repeats: bool) -> SourceState:
    """Map, validate and write one group of pages with the watermark of its last page."""
    last = group[-1]
    report.pages += len(group)
    frame, repeated = _combined(group, repeats=repeats)
    report.repeated += repeated
    new_state = state.advanced(last.watermark, len(frame))
    if frame.empty:  # nothing to lose: the watermark goes with the next write
        report.watermark = new_state.watermark
        return new_state
    try:
        mapped = apply_mapping(frame, mapping_of(config), fmt=last.fmt)
    except MappingError as err:
        raise FeedError(f"the columns served no longer fit the source's mapping: {err}",
                        source=config.name, url=last.url, page=last.number) from err
    pages = f"{group[0].number}" if len(group) == 1 else f"{group[0].number}-{last.number}"
    batch_id = f"{config.name}-{started:%Y%m%dT%H%M%S%fZ}-p{pages}"
    source_file = f"{config.kind}:{config.name} page {pages}"
    batch = validate(mapped, profile=store.profile, batch_id=batch_id, source_file=source_file,
                     now=started)
    info: dict[str, object] = {"batch_id": batch_id, "source_file": source_file,
                               "format": f"feed-{config.kind}", "encoding": "utf-8"}
    result = store.write_batch(batch, info=info, problems=problems, source_state=new_state)
    report.batches += 1
    report.rows += len(frame)
    for key in ("inserted", "updated", "unchanged", "released"):
        setattr(report.result, key, getattr(report.result, key) + getattr(result, key))
    for reason, n in result.quarantined.items():
        report.result.quarantined[reason] = report.result.quarantined.get(reason, 0) + n
    report.watermark = new_state.watermark
    return new_state


def _combined(group: list[Page], *, repeats: bool) -> tuple[pd.DataFrame, int]:
    """The group's rows in one frame, row numbers running on; with ``repeats`` (a
    protocol whose pages may overlap), rows served twice alike are dropped."""
    frames = [p.frame for p in group if len(p.frame)]
    if not frames:
        return group[-1].frame, 0
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    dropped = 0
    if repeats and len(frames) > 1:
        twice = frame.drop(columns=[ROW_COLUMN]).astype(str).duplicated()
        dropped = int(twice.sum())
        if dropped:
            frame = frame[~twice.to_numpy()].reset_index(drop=True)
    frame = frame.copy()
    frame[ROW_COLUMN] = range(1, len(frame) + 1)
    return frame, dropped
