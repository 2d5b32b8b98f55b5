"""``hotspot311 sync``: pull what changed in the registered feeds, once or every N minutes.

SIGTERM (and Ctrl-C) stop a sync cleanly between batches: the batch being written is
finished, with its watermark, and the next run resumes there.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
from types import FrameType

import click

from geo.feeds.engine import SyncReport, sync
from geo.store.sources import watermark_text
from hotspot311.cli.base import Context, handle_errors, pass_ctx
from hotspot311.errors import FeedError, InputError, describe

_EVERY = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_every(text: str) -> float:
    """Seconds of an interval such as ``15m``, ``1h``, ``30s``, ``1d``.

    Raises
    ------
    InputError
        Naming the value and the form allowed.

    Examples
    --------
    >>> parse_every("15m"), parse_every("2h")
    (900.0, 7200.0)
    """
    m = _EVERY.match(text.strip())
    if m is None or int(m.group(1)) == 0:
        raise InputError(f"--every: got {describe(text)}; expected a number and a unit, "
                         "s, m, h or d, such as 15m")
    return float(int(m.group(1)) * _UNIT[m.group(2)])


@click.command("sync")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--since", metavar="DATE", help="Start from this date/time, not the watermark.")
@click.option("--full", is_flag=True, help="Read everything again (unchanged rows change nothing).")
@click.option("--every", metavar="INTERVAL",
              help="Run again every INTERVAL (15m, 1h …) until SIGTERM.")
@click.option("--batch-rows", type=int, metavar="N",
              help="Write pages in batches of at least N rows (default: one page each).")
@pass_ctx
@handle_errors
def sync_cmd(ctx: Context, names: tuple[str, ...], since: str | None, full: bool,
             every: str | None, batch_rows: int | None) -> None:
    """Pull what changed in each source NAME (all sources when none is named)."""
    if since and full:
        raise InputError("--since and --full: give one of them")
    interval = parse_every(every) if every else None
    store = ctx.store()
    wanted = list(names) or [s.config.name for s in store.sources()]
    if not wanted:
        raise InputError("no sources; add one with: hotspot311 sources add NAME --kind … --url …")
    for name in wanted:
        store.source(name)  # every name exists, before anything is read
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        click.echo(f"{signal.Signals(signum).name}: stopping after the current batch", err=True)
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    failed = False
    try:
        while True:
            for name in wanted:
                if stopping.is_set():
                    break
                try:
                    report = sync(store, name, since=since, full=full,
                                  problems=ctx.problems(), stop=stopping.is_set,
                                  progress=sys.stderr.isatty(), batch_rows=batch_rows)
                except FeedError as err:
                    failed = True
                    click.echo(f"error: {err}", err=True)
                    continue
                click.echo(describe_report(report))
            since, full = None, False  # later rounds go on from the watermark
            if interval is None or stopping.wait(interval):
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed and interval is None:
        sys.exit(1)


def describe_report(report: SyncReport) -> str:
    """One line about one source's sync."""
    r = report.result
    quarantined = sum(r.quarantined.values())
    mark = watermark_text(report.watermark) or "none"
    end = " (stopped on request)" if report.stopped else ""
    return (f"{report.source}: {report.rows:,} rows in {report.pages} pages: "
            f"{r.inserted:,} new, {r.updated:,} updated, {r.unchanged:,} unchanged, "
            f"{quarantined:,} quarantined; watermark {mark}{end}")
