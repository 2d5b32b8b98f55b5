"""``hotspot311 api-keys add|list|revoke`` and ``hotspot311 serve api`` (a real process)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from click.testing import CliRunner

from geo.store.api_keys import hash_key
from geo.store.embedded import EmbeddedStore
from hotspot311.cli.main import cli
from layers.profile import load_profile
from tests.conftest import ROOT
from tests.hotspot311.api.live import listening_children
from tests.ports import API_PORTS, free_port


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def _keys_cycle(store: str) -> str:
    code, out, err = _invoke("--store", store, "api-keys", "add", "ann", "--role", "liaison")
    assert code == 0, err
    key = out.rstrip("\n").splitlines()[-1]
    assert key.startswith("h311_") and " " not in key and len(key) > 40
    code, out, _ = _invoke("--store", store, "api-keys", "add", "ann", "--role", "liaison")
    assert code == 2 and "already has a key" in out + _
    code, out, err = _invoke("--store", store, "api-keys", "add", "x", "--role", "mayor")
    assert code == 2 and "mayor" in out + err
    code, out, _ = _invoke("--store", store, "api-keys", "list")
    assert code == 0 and "ann" in out and "liaison" in out and key not in out
    code, out, _ = _invoke("--store", store, "api-keys", "revoke", "ann")
    assert code == 0 and "revoked" in out
    code, out, _ = _invoke("--store", store, "api-keys", "revoke", "bob")
    assert code == 2 and "no account 'bob'" in out + _
    return key


def test_api_keys_embedded(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    key = _keys_cycle(store)
    record = EmbeddedStore(Path(store), load_profile("philadelphia")).api_key_by_hash(
        hash_key(key))
    assert record is not None and record.name == "ann" and not record.active
    text = (Path(store) / "api_keys.json").read_text()
    assert key not in text and hash_key(key) in text


@pytest.mark.postgis
def test_api_keys_postgis(postgis_url: str) -> None:
    key = _keys_cycle(postgis_url)
    import psycopg

    with psycopg.connect(postgis_url) as conn:
        rows = conn.execute("SELECT name, key_hash, revoked_at IS NOT NULL FROM api_keys"
                            ).fetchall()
    assert rows == [("ann", hash_key(key), True)]


def _listening_children(pid: int, port: int) -> list[psutil.Process]:
    """The child processes of ``pid`` listening on ``port``, once two are (they start one
    after another) or after a minute."""
    deadline = time.monotonic() + 60
    while True:
        found = listening_children(pid, port)
        if len(found) >= 2 or time.monotonic() > deadline:
            return found
        time.sleep(0.2)  # poll interval while the processes start


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_api_runs_uvicorn_on_the_given_port(tmp_path: Path, workers: int) -> None:
    port = free_port(API_PORTS)
    env = {**os.environ, "HOTSPOT311_API_MEDIA": str(tmp_path / "media")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotspot311", "--store", str(tmp_path / "store"), "serve",
         "api", "--port", str(port), "--workers", str(workers)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/open311/v2/services.json", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "serve api did not answer"
                time.sleep(0.2)  # poll interval while the process starts
        assert r.status_code == 200
        assert any(s["service_code"] == "street-defect" for s in r.json())
        assert httpx.get(f"http://127.0.0.1:{port}/track").status_code == 200
        servers: list[psutil.Process] = []
        if workers > 1:
            servers = _listening_children(proc.pid, port)
            # one listening socket per server process (SO_REUSEPORT), none in the parent
            assert len(servers) == workers
            assert not [c for c in psutil.Process(proc.pid).net_connections("tcp")
                        if c.status == psutil.CONN_LISTEN]
            # a burst of keep-alive clients is spread over the processes by the system
            # (uvicorn's shared socket gave all 50 of 50 to one process at times)
            clients = [httpx.Client(timeout=10) for _ in range(40)]
            try:
                for client in clients:
                    assert client.get(f"http://127.0.0.1:{port}/track").status_code == 200
                held = {s.pid: sum(c.status == psutil.CONN_ESTABLISHED
                                   and c.laddr.port == port
                                   for c in s.net_connections("tcp")) for s in servers}
                assert sum(held.values()) == 40 and min(held.values()) >= 5, held
            finally:
                for client in clients:
                    client.close()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    for server in servers:  # stopped with the parent, none left behind
        assert not server.is_running() or server.status() == psutil.STATUS_ZOMBIE
    assert b"Open311 server for Philadelphia" in out
    assert b'"path": "/open311/v2/services.json"' in err  # the structured access log
