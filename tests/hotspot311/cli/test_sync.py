"""``sources`` and ``sync`` through the command line, against a real Socrata-protocol
server: the scenario, bad input, SIGTERM between batches, and a real SIGKILL mid-sync
followed by another sync, which leaves the store as one uninterrupted sync does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from geo.feeds.engine import sync
from geo.store.base import Store, open_store
from hotspot311.cli.main import cli as main_cli
from layers.profile import CityProfile
from tests.geo.feeds.conftest import FAST, NOW
from tests.geo.feeds.servers import Table, graffiti_rows, serve, socrata_route
from tests.geo.feeds.test_socrata import NYC_MAP, add_socrata

ROOT = Path(__file__).resolve().parents[3]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "hotspot311", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (click's runner): exit code, stdout, stderr."""
    result = CliRunner().invoke(main_cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def add_args(url: str, page_size: int) -> list[str]:
    out = ["sources", "add", "nyc", "--kind", "socrata", "--url", url,
           "--dataset", "erm2-nwe9", "--page-size", str(page_size), "--rate-limit", "1000"]
    for pair in NYC_MAP:
        out += ["--map", pair]
    return out


def test_sources_and_sync_scenario(tmp_path: Path, phila: CityProfile) -> None:
    store = str(tmp_path / "s")
    with serve(socrata_route("erm2-nwe9"), Table(graffiti_rows())) as server:
        added = run("--store", store, *add_args(server.url, 200))
        assert added.returncode == 0, added.stderr
        again = run("--store", store, *add_args(server.url, 200))
        assert again.returncode == 2 and "exists already" in again.stderr
        synced = run("--store", store, "sync", "nyc")
        assert synced.returncode == 0, synced.stderr
        assert "nyc: 528 rows in 3 pages" in synced.stdout
        lib = open_store(tmp_path / "lib", phila)
        add_socrata(lib, server.url, page_size=200)
        sync(lib, "nyc", client_options=FAST)
    listed = run("--store", store, "sources", "list")
    assert "nyc" in listed.stdout and "socrata" in listed.stdout and " ok " in listed.stdout
    shown = run("--store", store, "sources", "show", "nyc")
    assert "rows synced  528" in shown.stdout and '"service_request_id": "unique_key"' in \
        shown.stdout
    status = run("--store", store, "status")
    assert "sources              1" in status.stdout
    assert "nyc" in status.stdout and "528 rows; watermark updated=" in status.stdout
    # the same store as the library's sync
    mine = open_store(tmp_path / "s", phila).requests()
    assert sorted(mine["service_request_id"]) == sorted(lib.requests()["service_request_id"])
    removed = run("--store", store, "sources", "remove", "nyc")
    assert removed.returncode == 0 and "its requests stay" in removed.stdout
    assert len(open_store(tmp_path / "s", phila).requests()) == len(mine)
    assert run("--store", store, "sources", "show", "nyc").returncode == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--kind", "socrata", "--url", "ftp://x", "--dataset", "erm2"],
     ["--url: got 'ftp://x'", "--dataset: got 'erm2'"]),
    (["--kind", "carto", "--url", "https://x/api/v2/sql", "--table", "a;b",
      "--token-env", "abc def", "--map", "nope=x"],
     ["--table: got 'a;b'", "--token-env: got 'abc def'", "field 'nope' is not a canonical"]),
    (["--kind", "open311", "--url", "https://x", "--option", "window=sideways",
      "--page-size", "0"],
     ["--option window: got 'sideways'", "--page-size: got 0"]),
])
def test_add_refuses_bad_input(tmp_path: Path, args: list[str], message: list[str]) -> None:
    out = run("--store", str(tmp_path / "s"), "sources", "add", "x", *args)
    assert out.returncode == 2
    for part in message:
        assert part in out.stderr


def test_unknown_source_and_every(tmp_path: Path) -> None:
    out = run("--store", str(tmp_path / "s"), "sync", "nope")
    assert out.returncode == 2 and "no source named 'nope'" in out.stderr
    out = run("--store", str(tmp_path / "s"), "sync", "--every", "soon")
    assert out.returncode == 2 and "--every: got 'soon'" in out.stderr


def _store_arg(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "embedded":
        return str(tmp_path / "killed")
    return str(request.getfixturevalue("postgis_url"))


@pytest.mark.parametrize("kind", ["embedded", pytest.param("postgis", marks=pytest.mark.postgis)])
@pytest.mark.parametrize("kill_after", [4])
def test_sigkill_mid_sync_then_sync_again(kind: str, kill_after: int, tmp_path: Path,
                                          request: pytest.FixtureRequest,
                                          phila: CityProfile) -> None:
    rows = graffiti_rows()
    location = _store_arg(kind, tmp_path, request)
    killed = threading.Event()
    proc: list[subprocess.Popen[str]] = []

    def kill(served: int) -> None:
        if served == kill_after and proc:
            proc[0].send_signal(signal.SIGKILL)
            killed.set()

    with serve(socrata_route("erm2-nwe9"), Table(rows), after_page=kill) as server:
        assert run("--store", location, *add_args(server.url, 50)).returncode == 0
        proc.append(cli("--store", location, "sync", "nyc"))
        proc[0].communicate(timeout=300)
        assert killed.is_set() and proc[0].returncode == -signal.SIGKILL
        store = open_store(location, phila)
        partial = store.source("nyc").state
        assert partial.rows < 528 and partial.rows % 50 == 0
        assert len(store.requests()) + len(store.quarantine()) == partial.rows
        server.after_page = None
        resumed = run("--store", location, "sync", "nyc")
        assert resumed.returncode == 0, resumed.stderr
        clean = open_store(tmp_path / "clean", phila)
        add_socrata(clean, server.url, page_size=50)
        sync(clean, "nyc", now=NOW, client_options=FAST)
    assert_same(open_store(location, phila), clean)


def assert_same(store: Store, clean: Store) -> None:
    cols = ["service_request_id", "status", "status_notes", "address", "requested_datetime"]
    a = store.requests()[cols].sort_values("service_request_id").reset_index(drop=True)
    b = clean.requests()[cols].sort_values("service_request_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert sorted(store.quarantine()["quarantine_id"]) == sorted(
        clean.quarantine()["quarantine_id"])
    state, clean_state = store.source("nyc").state, clean.source("nyc").state
    assert (state.rows, state.watermark) == (clean_state.rows, clean_state.watermark) == (
        528, clean_state.watermark)
    assert store.batches()["rows_read"].sum() == 528  # no page written twice


def test_sigterm_stops_between_batches(tmp_path: Path, phila: CityProfile) -> None:
    store = str(tmp_path / "s")
    table = Table(graffiti_rows())
    proc: list[subprocess.Popen[str]] = []

    def slow(served: int) -> None:
        if served == 2 and proc:
            proc[0].send_signal(signal.SIGTERM)
        time.sleep(0.2)

    with serve(socrata_route("erm2-nwe9"), table, after_page=slow) as server:
        assert run("--store", store, *add_args(server.url, 25)).returncode == 0
        proc.append(cli("--store", store, "sync", "--every", "1h", "nyc"))
        out, err = proc[0].communicate(timeout=300)
    assert proc[0].returncode == 0, err
    assert "SIGTERM: stopping after the current batch" in err
    assert "(stopped on request)" in out
    state = open_store(store, phila).source("nyc").state
    assert 0 < state.rows < 528 and state.last_outcome == "ok"
    stored = open_store(store, phila)
    assert len(stored.requests()) + len(stored.quarantine()) == state.rows
