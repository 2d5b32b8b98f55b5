"""``python -m hotspot311.api.workers`` (what ``serve api --workers N`` runs): a process
that dies is replaced, processes that cannot start make the parent give up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests import ports
from tests.hotspot311.api.live import listening_children

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    """A port for the API's processes: free now, of this worker's share of ``API_PORTS``."""
    return ports.free_port(ports.API_PORTS)


def unused_port() -> int:
    """A port no one listens on, for a store that cannot be reached."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_listening = listening_children


def _start(tmp_path: Path, stderr: int) -> tuple[subprocess.Popen, int, dict[str, str]]:
    """Two server processes on a free port over an embedded store under ``tmp_path``,
    once both listen: the parent, the port and the environment it was given."""
    port = free_port()
    env = {**os.environ, "HOTSPOT311_STORE": str(tmp_path / "store"),
           "HOTSPOT311_API_MEDIA": str(tmp_path / "media")}
    proc = subprocess.Popen([sys.executable, "-m", "hotspot311.api.workers", "--port",
                             str(port), "--workers", "2"], cwd=ROOT, env=env, stderr=stderr)
    try:
        _wait("two server processes", lambda: len(_listening(proc.pid, port)) == 2)
    except BaseException:
        proc.kill()
        proc.wait(timeout=30)
        raise
    return proc, port, env


def _wait(what: str, check: object, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)  # poll interval while processes start


@pytest.mark.slow
def test_a_server_process_that_dies_is_replaced(tmp_path: Path) -> None:
    proc, port, env = _start(tmp_path, subprocess.PIPE)
    try:
        first = _listening(proc.pid, port)
        first[0].send_signal(signal.SIGKILL)

        def replaced() -> bool:  # one look: two listening, the killed one not among them
            now = {p.pid for p in _listening(proc.pid, port)}
            return len(now) == 2 and first[0].pid not in now

        _wait("a new process in its place", replaced)
        r = httpx.get(f"http://127.0.0.1:{port}/open311/v2/services.json", timeout=10)
        assert r.status_code == 200
        # a second server on the same port is refused, not let in beside the first
        second = subprocess.run([sys.executable, "-m", "hotspot311.api.workers", "--port",
                                 str(port), "--workers", "2"], cwd=ROOT, env=env,
                                capture_output=True, timeout=120)
        assert second.returncode != 0 and b"Address already in use" in second.stderr
        assert f"cannot listen on 127.0.0.1:{port}".encode() in second.stderr
        assert b"Traceback" not in second.stderr  # a message, not a stack
        assert len(_listening(proc.pid, port)) == 2
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert f"server process {first[0].pid} ended".encode() in err


@pytest.mark.slow
def test_server_processes_end_with_a_killed_parent(tmp_path: Path) -> None:
    proc, port, _ = _start(tmp_path, subprocess.DEVNULL)
    try:
        servers = _listening(proc.pid, port)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    _, alive = psutil.wait_procs(servers, timeout=60)
    assert alive == []  # none left serving the port


@pytest.mark.slow
def test_processes_that_cannot_start_make_the_parent_give_up(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HOTSPOT311_STORE": f"postgresql://nobody@127.0.0.1:{unused_port()}/x",
           "HOTSPOT311_API_MEDIA": str(tmp_path / "media")}
    proc = subprocess.run([sys.executable, "-m", "hotspot311.api.workers", "--port",
                           str(port), "--workers", "2"], cwd=ROOT, env=env,
                          capture_output=True, timeout=300)
    assert proc.returncode != 0
    assert b"server processes ended within 60 s of starting; stopping" in proc.stderr
