"""Helpers for the Open311 tests: a real uvicorn server on a free port, demo stores, keys."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import uvicorn
from fastapi import FastAPI

from geo.store.api_keys import hash_key, new_key
from geo.store.base import Store


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1 (the OS picks it); yield
    the base URL; stop the server afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, access_log=False, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # waiting for the server's own flag, not a fixed time
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def listening_children(pid: int, port: int) -> list[psutil.Process]:
    """The child processes of ``pid`` with a socket listening on ``port`` (one look)."""
    return [c for c in psutil.Process(pid).children()
            if any(k.status == psutil.CONN_LISTEN and k.laddr.port == port
                   for k in c.net_connections("tcp"))]


@dataclass
class Keys:
    """One account per role plus a revoked one: name → key."""

    keys: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return self.keys[name]


def add_accounts(store: Store) -> Keys:
    """Accounts ``ann`` (liaison), ``fred`` (field staff), ``partner`` (partner system)
    and ``old`` (liaison, revoked)."""
    out = Keys()
    for name, role in (("ann", "liaison"), ("fred", "field_staff"), ("partner", "partner"),
                       ("old", "liaison")):
        key = new_key()
        store.add_api_key(name, role, hash_key(key))
        out.keys[name] = key
    store.revoke_api_key("old")
    return out


def build_demo_store(store: Store, workdir: Path, n_synthetic: int = 2000) -> None:
    """The bundled real requests plus ``n_synthetic`` labelled synthetic ones."""
    from hotspot311.cli.demo import build_demo

    build_demo(store, n_synthetic=n_synthetic, workdir=workdir, contact_weeks=0)
