"""What every ``hotspot311`` command shares: the context (store, city), errors, exit codes.

Exit codes scripts can trust: 0 success; 2 bad input or usage (the message says which
field, value and what is allowed); 3 the store cannot be opened or written; 4 ``ingest
--strict`` quarantined rows; 1 anything unexpected.

An unexpected error (a bug, or a failure no check foresaw) shows no traceback: one line
names the command and what failed, and the traceback goes to a log file whose path that
line gives (:func:`report_crash`). ``--debug`` (or ``HOTSPOT311_DEBUG=1``) prints the
traceback instead.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from clustering.problems import ProblemAssigner, ProblemRules
from geo.store.base import Store, open_store
from hotspot311.errors import Hotspot311Error, InputError, StoreError
from hotspot311.settings import get_settings
from layers.profile import load_profile

F = TypeVar("F", bound=Callable[..., Any])

EXIT_INPUT = 2
EXIT_STORE = 3
EXIT_STRICT = 4
EXIT_UNEXPECTED = 1


class Context:
    """Options shared by every command; the store is opened on first use."""

    def __init__(self, store: str | None, city: str | None, *, debug: bool = False) -> None:
        settings = get_settings()
        self.store_location = store or settings.store
        self.city = city or settings.city
        self.debug = debug or settings.debug
        self._store: Store | None = None

    def store(self) -> Store:
        """Open (once) and return the store."""
        if self._store is None:
            self._store = open_store(self.store_location, load_profile(self.city))
        return self._store

    def problems(self) -> ProblemAssigner:
        """The city's problem rule, handed to every write so ``problem_id`` stays current."""
        return ProblemAssigner(ProblemRules.for_city(self.store().profile))


def handle_errors(func: F) -> F:
    """Turn project errors into one-line messages and trustworthy exit codes."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(EXIT_INPUT)
        except StoreError as err:
            click.echo(f"store error: {err}", err=True)
            sys.exit(EXIT_STORE)
        except Hotspot311Error as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(1)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise  # usage errors and exits: click reports them
        except Exception as err:
            ctx = click.get_current_context(silent=True)
            obj = ctx.find_object(Context) if ctx is not None else None
            report_crash(ctx.command_path if ctx is not None else "hotspot311", err,
                         debug=obj.debug if obj is not None else get_settings().debug)

    return wrapper  # type: ignore[return-value]


def report_crash(command: str, err: BaseException, *, debug: bool,
                 argv: Sequence[str] | None = None) -> NoReturn:
    """Report an unexpected error in one line and exit 1.

    The traceback is written to a new file in the log directory (``HOTSPOT311_LOG_DIR``,
    else the user's state directory, else the system temporary directory), whose path the
    line gives; with ``debug`` it is printed before the line instead.

    Parameters
    ----------
    command
        The command that failed (``hotspot311 ingest``).
    err
        The exception.
    debug
        Print the traceback instead of writing it to a file.
    argv
        The command line, recorded in the log (``sys.argv`` when omitted).
    """
    if isinstance(err, BrokenPipeError):  # `hotspot311 … | head`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_UNEXPECTED)
    message = " ".join(str(err).split())  # one line, whatever the message holds
    if len(message) > 200:
        message = message[:199] + "…"
    what = f"{type(err).__name__}: {message}" if message else type(err).__name__
    text = "".join(traceback.format_exception(err))
    if debug:
        click.echo(text.rstrip("\n"), err=True)
        click.echo(f"error: {command} failed unexpectedly ({what})", err=True)
        sys.exit(EXIT_UNEXPECTED)
    log, problem = _write_log(command, text, argv)
    where = (f"the traceback is in {log}" if log is not None
             else f"the traceback could not be written ({problem})")
    click.echo(f"error: {command} failed unexpectedly ({what}); {where}; "
               "run again with --debug to see it here", err=True)
    sys.exit(EXIT_UNEXPECTED)


def _write_log(command: str, text: str, argv: Sequence[str] | None
               ) -> tuple[Path | None, str | None]:
    """Write a crash log into the first usable log directory; its path, or why not."""
    now = datetime.now(UTC)
    name = f"error-{now:%Y%m%dT%H%M%S}-{os.getpid()}.log"
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("hotspot311")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        release = "unknown"
    body = (f"command: {command}\nargv: {list(sys.argv if argv is None else argv)!r}\n"
            f"time: {now.isoformat(timespec='seconds')}\nhotspot311: {release}\n"
            f"python: {platform.python_version()} on {platform.platform()}\n\n{text}")
    problem = None
    for directory in (Path(get_settings().log_dir),
                      Path(tempfile.gettempdir()) / "hotspot311-logs"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / name
            with open(path, "x", encoding="utf-8") as handle:
                handle.write(body)
            return path, None
        except OSError as err:
            problem = f"{directory}: {err.strerror or err}"
    return None, problem


def output_path(value: str) -> Path:
    """Check that an output path's directory exists."""
    path = Path(value)
    if not path.parent.exists():
        raise InputError(f"--output: directory {path.parent} does not exist")
    return path


#: Passes the :class:`Context` to a command.
pass_ctx = click.make_pass_decorator(Context)
