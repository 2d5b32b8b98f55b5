"""Several server processes on one port, each with a listening socket of its own.

uvicorn's ``--workers`` shares one listening socket among its processes. Each process's
event loop accepts every connection that is waiting when it wakes, so a burst of new
clients lands on whichever process woke first: measured with 50 clients and 2 processes,
all 50 connections on one process, or 30 and 20. A keep-alive connection stays where it
landed, so the busier process set the tail latency while the other idled (look-up p95
60-80 ms against a p50 of 25 ms).

Here each process binds the port itself with ``SO_REUSEPORT``, and the kernel gives each
new connection to one of the listening sockets by a hash of its addresses: the
connections spread evenly on average, whoever is awake. A parent process holds the port
(bound, never listening, so it receives no connection; a port another server holds is
refused first), starts the processes, starts a process again if one dies (and gives up
when they keep dying as they start), and stops them all on ``SIGINT`` or ``SIGTERM``;
a process ends with its parent. A process listens only once its app has started.
Where the system has no ``SO_REUSEPORT``, uvicorn's own workers serve instead.

``hotspot311 serve api --workers N`` runs this module (``python -m
hotspot311.api.workers``) on the app of :mod:`hotspot311.api.asgi`, by name, as it hands
one process to uvicorn by name: the command-line front door does not import this one.
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing
import signal
import socket
import sys
import time
from collections.abc import Mapping
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Final

import uvicorn

from hotspot311.api.server import UVICORN_OPTIONS

#: Connections a listening socket queues before the server accepts them.
BACKLOG: Final = 2048
#: Seconds between the parent's checks of its processes.
_WATCH: Final = 0.5
#: A process ending within this many seconds of its start ended early; after
#: :data:`_EARLY_DEATHS` such ends in a row the parent gives up (the store is down, the
#: port taken …) instead of starting processes in a loop.
_EARLY: Final = 60.0
_EARLY_DEATHS: Final = 5


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` with ``SO_REUSEPORT`` (not listening).

    Raises
    ------
    OSError
        When the address cannot be bound (in use without ``SO_REUSEPORT``, unknown host).
    """
    family, kind, proto, address = _address(host, port)
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _address(host: str, port: int) -> tuple[socket.AddressFamily, socket.SocketKind, int,
                                            Any]:
    """Family, type, protocol and address to bind a TCP server to ``host``:``port``."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return family, kind, proto, address


def serve_workers(app: str, *, host: str, port: int, workers: int,
                  options: Mapping[str, Any]) -> None:
    """Run ``workers`` uvicorn processes of the app factory ``app`` on ``host``:``port``,
    each with its own listening socket (see the module docstring), until ``SIGINT`` or
    ``SIGTERM``.

    Parameters
    ----------
    app
        ``module:function`` of an app factory, imported by each process.
    host, port
        Where to listen (port 0: a free port, the same for every process).
    workers
        Number of server processes.
    options
        Further :class:`uvicorn.Config` arguments (log level, limits …).
    """
    if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - Linux and BSDs have it
        uvicorn.run(app, factory=True, host=host, port=port, workers=workers, **options)
        return
    # a plain bind first: SO_REUSEPORT alone would join another server already on the
    # port (another city's, or processes left by a killed parent) instead of failing
    family, kind, proto, address = _address(host, port)
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:  # taken, or an address this machine does not have
            raise SystemExit(f"hotspot311 api: cannot listen on {host}:{port}: "
                             f"{err.strerror or err}; choose another --port or --host") from None
        port = probe.getsockname()[1]
    held = reuse_port_socket(host, port)
    print(f"hotspot311 api: {workers} server processes on {host}:{port}", file=sys.stderr,
          flush=True)
    spawn = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def start() -> BaseProcess:
        proc = spawn.Process(target=_serve_one, args=(app, host, port, dict(options)),
                             name="hotspot311-api", daemon=False)
        proc.start()
        return proc

    procs = [start() for _ in range(workers)]
    started = [time.monotonic()] * workers
    early_deaths = 0
    try:
        while not stopping:
            time.sleep(_WATCH)
            for i, proc in enumerate(procs):
                if proc.is_alive() or stopping:
                    continue
                early = time.monotonic() - started[i] < _EARLY
                early_deaths = early_deaths + 1 if early else 0
                print(f"hotspot311 api: server process {proc.pid} ended (exit code "
                      f"{proc.exitcode})", file=sys.stderr, flush=True)
                if early_deaths >= _EARLY_DEATHS:  # it cannot start: say so, stop
                    raise SystemExit(f"hotspot311 api: {early_deaths} server processes "
                                     f"ended within {_EARLY:g} s of starting; stopping")
                procs[i], started[i] = start(), time.monotonic()  # serve on
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn finishes what it is answering
        deadline = time.monotonic() + 30  # one wait for them all
        for proc in procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
        held.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve_one(app: str, host: str, port: int, options: dict[str, Any]) -> None:
    """One server process: its own ``SO_REUSEPORT`` socket, served by uvicorn.

    The socket is bound here but listens only once uvicorn serves it, after the app is
    made and its start-up has run (store open, pool connected): until then the system
    gives new connections to the other processes. The process ends with its parent.
    """
    _end_with_parent()
    sock = reuse_port_socket(host, port)
    config = uvicorn.Config(app, factory=True, host=host, port=port, backlog=BACKLOG,
                            **options)
    uvicorn.Server(config).run(sockets=[sock])


def _end_with_parent() -> None:
    """Ask Linux to send this process ``SIGTERM`` when its parent dies (a parent killed
    with ``SIGKILL`` leaves no server behind on the port); elsewhere nothing is done."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


#: prctl(2) option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG: Final = 1


def main(argv: list[str] | None = None) -> None:
    """``python -m hotspot311.api.workers [--host H] [--port P] [--workers N]``: the app
    of :func:`hotspot311.api.asgi.app_from_env` (store and city from the environment)."""
    parser = argparse.ArgumentParser(prog="python -m hotspot311.api.workers",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8311)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    serve_workers("hotspot311.api.asgi:app_from_env", host=args.host, port=args.port,
                  workers=max(1, args.workers), options=UVICORN_OPTIONS)


if __name__ == "__main__":
    main()


__all__ = ["BACKLOG", "main", "reuse_port_socket", "serve_workers"]
