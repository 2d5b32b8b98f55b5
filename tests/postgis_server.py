"""A throwaway PostGIS server for tests and benchmarks (a pytest plugin module).

Load it with ``pytest_plugins = ["tests.postgis_server"]`` in ``tests/conftest.py``.

Fixtures
--------
postgis_server
    Session scope: ``initdb`` + ``pg_ctl`` on a temporary directory and a free port on
    127.0.0.1 (as the ``postgres`` user when run as root, since PostgreSQL refuses
    root), with a migrated template database.
postgis_url
    Function scope: a fresh database cloned from the template (``CREATE DATABASE …
    TEMPLATE``), dropped after the test.

When PostgreSQL 15 or PostGIS is missing and the process is root, the project's
``scripts/install-test-deps.sh`` is run once to install them. If they are still missing,
the PostGIS tests are skipped with the reason, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.ports import free_port

PG_BIN = Path(os.environ.get("HOTSPOT311_PG_BIN", "/usr/lib/postgresql/15/bin"))
POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")
INSTALL_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install-test-deps.sh"
PORTS = range(55400, 55500)
TEMPLATE = "hotspot311_template"


class ServerUnavailable(RuntimeError):
    """PostgreSQL/PostGIS cannot be started here (binaries missing, initdb failed)."""


@dataclass
class PostgresServer:
    """A running throwaway server.

    Attributes
    ----------
    root
        Temporary directory holding the data directory, socket and log.
    port
        TCP port on 127.0.0.1.
    user
        Superuser name (trust authentication on 127.0.0.1 only).
    """

    root: Path
    port: int
    user: str = "postgres"
    options: str = ""
    _names: Iterator[int] = field(default_factory=itertools.count)

    def url(self, dbname: str = "postgres") -> str:
        """Connection URL of one database."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_template(self) -> None:
        """Create the template database with the schema migrated."""
        from geo.store.postgis_schema import migrate

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(TEMPLATE)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
        with psycopg.connect(self.url(TEMPLATE)) as conn:
            migrate(conn)
            conn.commit()

    def clone(self, prefix: str = "t") -> str:
        """Create a fresh database from the template; return its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(TEMPLATE)
                )
            )
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop a database made by :meth:`clone` (closing its sessions)."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def kill(self) -> None:
        """Stop the server at once, as a crash would (``immediate``), keeping its files."""
        _run_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m",
                       "immediate", "-w", "stop"], check=True)

    def start(self) -> None:
        """Start the server again on its data directory and port (after :meth:`kill`)."""
        _run_as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-l",
                       str(self.root / "log"), "-o", self.options, "-w", "-t", "60", "start"],
                      check=True)

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        _run_as_owner(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def missing_reason() -> str | None:
    """Why no server can be started here, or ``None`` when everything is installed."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL 15 server binaries not found in {PG_BIN}"
    if not POSTGIS_CONTROL.exists():
        return f"PostGIS 3 for PostgreSQL 15 not installed ({POSTGIS_CONTROL} missing)"
    return None


def ensure_installed() -> None:
    """Run the project's install script when something is missing and we are root."""
    if missing_reason() is None or os.geteuid() != 0 or not INSTALL_SCRIPT.exists():
        return
    subprocess.run(["bash", str(INSTALL_SCRIPT)], check=False, capture_output=True, timeout=900)


def start_server() -> PostgresServer:
    """Start a throwaway PostGIS server on 127.0.0.1.

    Returns
    -------
    PostgresServer
        Running, with the template database created.

    Raises
    ------
    ServerUnavailable
        When the binaries are missing or the server does not start.
    """
    ensure_installed()
    reason = missing_reason()
    if reason:
        raise ServerUnavailable(reason)
    root = Path(tempfile.mkdtemp(prefix="hotspot311-pg-"))
    owner = _owner()
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    os.chmod(root, 0o700)
    data = root / "data"
    init = _run_as_owner(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        check=False,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise ServerUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
    port = _free_port()
    opts = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60 "
        "-c shared_buffers=256MB -c maintenance_work_mem=256MB -c work_mem=64MB "
        "-c max_wal_size=4GB"
    )
    started = _run_as_owner(
        [
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        ],
        check=False,
    )
    server = PostgresServer(root=root, port=port, options=opts)
    if started.returncode != 0:
        log = (root / "log").read_text(errors="replace")[-800:] if (root / "log").exists() else ""
        server.stop()
        raise ServerUnavailable(f"pg_ctl start failed: {started.stderr.strip()} {log}")
    try:
        server.create_template()
    except Exception:
        server.stop()
        raise
    return server


def _owner() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as err:
        raise ServerUnavailable("running as root and there is no 'postgres' user") from err


def _run_as_owner(cmd: list[str], *, check: bool) -> subprocess.CompletedProcess[str]:
    owner = _owner()
    if owner is not None:
        cmd = ["runuser", "-u", owner.pw_name, "--", *cmd]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)


def _free_port() -> int:
    try:
        return free_port(PORTS)
    except RuntimeError as err:
        raise ServerUnavailable(str(err)) from err


# --- pytest fixtures ---------------------------------------------------------------
@pytest.fixture(scope="session")
def postgis_server() -> Iterator[PostgresServer]:
    """A throwaway PostGIS server for the whole session (see the module docstring)."""
    try:
        server = start_server()
    except ServerUnavailable as err:
        message = f"PostGIS tests cannot run: {err}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: a missing PostGIS fails the run)", pytrace=False)
        pytest.skip(message + " (run scripts/install-test-deps.sh)")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgis_url(postgis_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, migrated database cloned from the template."""
    url = postgis_server.clone()
    try:
        yield url
    finally:
        postgis_server.drop(url)
