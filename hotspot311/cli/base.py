"""What every ``hotspot311`` command shares: the context (store, city), errors, exit codes.

Exit codes scripts can trust: 0 success; 2 bad input or usage (the message says which
field, value and what is allowed); 3 the store cannot be opened or written; 4 ``ingest
--strict`` quarantined rows; 1 anything unexpected.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

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


class Context:
    """Options shared by every command; the store is opened on first use."""

    def __init__(self, store: str | None, city: str | None) -> None:
        settings = get_settings()
        self.store_location = store or settings.store
        self.city = city or settings.city
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

    return wrapper  # type: ignore[return-value]


def output_path(value: str) -> Path:
    """Check that an output path's directory exists."""
    path = Path(value)
    if not path.parent.exists():
        raise InputError(f"--output: directory {path.parent} does not exist")
    return path


#: Passes the :class:`Context` to a command.
pass_ctx = click.make_pass_decorator(Context)
