"""``--engine dask [--scheduler tcp://HOST:8786]``: where the heavy commands run.

``--engine local`` (the default) runs in this process. ``--engine dask`` connects a
``distributed.Client`` to the scheduler named by ``--scheduler`` (or
``$HOTSPOT311_SCHEDULER``), or starts a ``LocalCluster`` of worker processes on this
machine when none is named, prints the dashboard link (when the dashboard can run) and
closes the client (and the local cluster) when the command ends.

What a command reports while it runs goes to stderr (stdout carries its results):
the engine and dashboard line, progress bars (:func:`task_progress` for Dask graphs,
:func:`progress_bar` for a count of files) and where the DBSCAN spills
(:func:`spill_directory`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from tqdm import tqdm

from hotspot311.errors import InputError, StoreConnectionError

if TYPE_CHECKING:
    from distributed import Client

F = TypeVar("F", bound=Callable[..., Any])

ENGINES = ("local", "dask")


def engine_options(func: F) -> F:
    """Add ``--engine`` and ``--scheduler`` to a command."""
    func = click.option(
        "--scheduler", metavar="ADDRESS",
        help="Dask scheduler, e.g. tcp://HOST:8786 (default: $HOTSPOT311_SCHEDULER, else a "
             "LocalCluster on this machine). Needs --engine dask.")(func)
    func = click.option(
        "--engine", type=click.Choice(ENGINES), default="local", show_default=True,
        help="local: this process; dask: a Dask cluster (see --scheduler).")(func)
    return func


@contextmanager
def dask_client(engine: str, scheduler: str | None) -> Iterator[Client | None]:
    """Yield a connected ``distributed.Client`` for ``--engine dask``, else ``None``.

    Parameters
    ----------
    engine
        ``local`` or ``dask``.
    scheduler
        Scheduler address; ``None`` reads ``$HOTSPOT311_SCHEDULER`` and, if that is unset
        too, starts a ``LocalCluster`` (one single-threaded worker process per core).

    Yields
    ------
    distributed.Client or None
        The client, closed (with its local cluster) on exit.

    Raises
    ------
    InputError
        If ``--scheduler`` is given without ``--engine dask``.
    StoreConnectionError
        If the scheduler cannot be reached; the message names it.
    """
    if engine != "dask":
        if scheduler:
            raise InputError(f"--scheduler {scheduler!r} needs --engine dask; got --engine "
                             f"{engine}")
        yield None
        return
    from distributed import Client, LocalCluster

    address = scheduler or os.environ.get("HOTSPOT311_SCHEDULER") or None
    if address:
        try:
            client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as err:
            raise StoreConnectionError(
                f"--scheduler: cannot reach the Dask scheduler at {address!r} ({err})"
            ) from err
        try:
            _announce(client, f"Dask scheduler {address}")
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1,
                           processes=True, dashboard_address=":0")
    client = Client(cluster)
    try:
        _announce(client, f"Dask LocalCluster, {len(cluster.workers)} workers")
        yield client
    finally:
        client.close()
        cluster.close()


def _announce(client: Client, what: str) -> None:
    """Print where the work runs and where to watch it (the Dask dashboard, served by the
    scheduler when bokeh is installed there; bokeh is one of our dependencies)."""
    info = client.scheduler_info()
    link = client.dashboard_link if info.get("services", {}).get("dashboard") else (
        "none (the scheduler serves no dashboard: install bokeh where it runs)")
    click.echo(f"engine: {what}; dashboard: {link}", err=True)


def progress_bar(desc: str) -> Callable[[list[Any]], None]:
    """A watcher that draws a progress bar (on stderr) until the futures given are done.

    Parameters
    ----------
    desc
        What the bar counts, e.g. ``"stage"``.

    Returns
    -------
    callable
        Takes a list of ``distributed`` futures and returns when all have finished
        (with a result or an error: their errors are raised by whoever gathers them).
    """

    def watch(futures: list[Any]) -> None:
        from distributed import as_completed

        with tqdm(total=len(futures), desc=desc, unit="file", file=sys.stderr,
                  disable=len(futures) < 2) as bar:
            for _ in as_completed(futures):
                bar.update(1)

    return watch


def task_progress(desc: str) -> Callable[[list[Any]], None]:
    """A watcher that shows Dask's progress bar on stderr until the futures are done.

    The bar is ``distributed.progress``: it counts every task of the futures' graphs
    (reads, splits, tiles …) as the scheduler reports them. ``distributed`` draws it on
    standard output, which carries a command's results, so it is drawn on stderr here.

    Parameters
    ----------
    desc
        What runs, printed before the bar (e.g. ``"DBSCAN tiles, pass 1"``).

    Returns
    -------
    callable
        Takes a list of ``distributed`` futures and returns when all have finished
        (their errors are raised by whoever gathers them).
    """

    def watch(futures: list[Any]) -> None:
        from distributed import progress

        click.echo(f"{desc}:", err=True)
        with redirect_stdout(sys.stderr):
            progress(futures, notebook=False)  # the bar's line is cleared when done

    return watch


@contextmanager
def spill_directory(client: Client | None, given: str | None) -> Iterator[str | None]:
    """Where the partitioned DBSCAN spills (``--spill-dir``), announced on stderr.

    Parameters
    ----------
    client
        The command's Dask client (``None``: the local engine).
    given
        ``--spill-dir``: a directory every worker reads and writes at this path (made
        if missing; the run's own subdirectory is removed at the end, the directory
        stays).

    Yields
    ------
    str or None
        ``given`` (absolute); else, on a ``LocalCluster`` this process started, a new
        temporary directory, removed on exit; else (a remote scheduler, whose workers may
        not share this machine's disk) ``None``: the workers hold the points in memory.

    Raises
    ------
    InputError
        If ``--spill-dir`` is given without ``--engine dask``, or cannot be made.
    """
    if client is None:
        if given:
            raise InputError(f"--spill-dir {given!r} needs --engine dask")
        yield None
        return
    if given:
        path = Path(given).absolute()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"--spill-dir: cannot make {given!r} ({err})") from err
        click.echo(f"spill: {path}", err=True)
        yield str(path)
        return
    if client.cluster is not None:  # a LocalCluster: its workers share this disk
        with tempfile.TemporaryDirectory(prefix="hotspot311-spill-") as tmp:
            click.echo(f"spill: {tmp} (temporary, removed at the end)", err=True)
            yield tmp
        return
    click.echo("spill: none (the workers hold the points in memory; give --spill-dir DIR, "
               "a directory every worker reads and writes, to bound their memory)", err=True)
    yield None
