"""Settings, read from the environment on first use (never at import).

=====================  =====================================================  ===============
variable               meaning                                                default
=====================  =====================================================  ===============
``HOTSPOT311_STORE``   a directory (embedded store) or a ``postgresql://``    ``./.hotspot311``
                       URL (PostGIS store)
``HOTSPOT311_CITY``    a city profile: a name under ``layers/profiles`` or a   ``philadelphia``
                       path to a TOML file
``HOTSPOT311_LOG_DIR`` where the command line writes the traceback of an       ``$XDG_STATE_HOME/
                       unexpected error                                        hotspot311`` (or
                                                                               ``~/.local/state/
                                                                               hotspot311``)
``HOTSPOT311_DEBUG``   ``1``: show such tracebacks inline (as ``--debug``)     off
=====================  =====================================================  ===============

When ``HOTSPOT311_STORE`` is unset but the standard libpq variable ``PGDATABASE`` or
``PGHOST`` is set, the PostGIS store is used with the libpq defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_STORE = ".hotspot311"
DEFAULT_CITY = "philadelphia"


@dataclass(frozen=True)
class Settings:
    """The settings in force.

    Attributes
    ----------
    store
        Directory of the embedded store, or a ``postgresql://`` URL.
    city
        Name or path of the city profile.
    log_dir
        Directory for tracebacks of unexpected errors (:func:`log_directory`).
    debug
        Show tracebacks of unexpected errors inline instead.
    """

    store: str
    city: str
    log_dir: str = ""
    debug: bool = False

    @property
    def is_postgis(self) -> bool:
        """Whether ``store`` selects the PostGIS store."""
        return is_postgres_url(self.store)


def is_postgres_url(value: str) -> bool:
    """Return whether ``value`` is a PostgreSQL connection URL or libpq keyword string.

    Examples
    --------
    >>> is_postgres_url("postgresql://localhost/db"), is_postgres_url("./store")
    (True, False)
    """
    return value.startswith(("postgresql://", "postgres://")) or value == "postgresql:"


def from_environment(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from environment variables.

    Parameters
    ----------
    environ
        The variables to read; ``os.environ`` when omitted.

    Returns
    -------
    Settings
        The settings in force.
    """
    env = dict(os.environ if environ is None else environ)
    store = env.get("HOTSPOT311_STORE", "").strip()
    if not store:
        store = "postgresql:" if (env.get("PGDATABASE") or env.get("PGHOST")) else DEFAULT_STORE
    city = env.get("HOTSPOT311_CITY", "").strip() or DEFAULT_CITY
    state = env.get("XDG_STATE_HOME", "").strip() or os.path.join(
        env.get("HOME", "").strip() or os.path.expanduser("~"), ".local", "state")
    log_dir = env.get("HOTSPOT311_LOG_DIR", "").strip() or os.path.join(state, "hotspot311")
    debug = env.get("HOTSPOT311_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
    return Settings(store=store, city=city, log_dir=log_dir, debug=debug)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the settings from ``os.environ``, built on first use and then cached."""
    return from_environment()
