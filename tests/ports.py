"""Free TCP ports on 127.0.0.1 for servers the tests start (PostgreSQL, Streamlit).

A port is free when it can be bound, but it is only taken when the server binds it a
moment later. Two pytest-xdist workers starting servers at once would both find the same
first free port, and the second server then fails to bind while its test talks to the
first one. So each worker (``gw0``, ``gw1``, …) searches from the start of its own share
of the range, and the shares meet only when a worker has used its whole share.
"""

from __future__ import annotations

import os
import socket

API_PORTS = range(8700, 8800)
"""Where the tests' own HTTP API servers listen: below Linux's ephemeral range (32768 on),
so no client connection of another test takes the port between the search and the bind."""


def worker_share(ports: range) -> range:
    """The part of ``ports`` this pytest-xdist worker searches first.

    Parameters
    ----------
    ports : range
        The whole range the servers of one kind use.

    Returns
    -------
    range
        ``ports`` split evenly over ``PYTEST_XDIST_WORKER_COUNT`` workers; the whole range
        outside xdist.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")
    index = int(worker) if worker.isdigit() else 0
    workers = max(int(count), 1) if count.isdigit() else 1
    size = max(len(ports) // workers, 1)
    first = ports.start + (index % workers) * size
    return range(first, min(first + size, ports.stop))


def free_port(ports: range) -> int:
    """A port of ``ports`` that 127.0.0.1 can bind now, this worker's share first.

    Parameters
    ----------
    ports : range
        The ports to try.

    Returns
    -------
    int
        The first bindable port of this worker's share, else of the rest of the range.

    Raises
    ------
    RuntimeError
        When no port of ``ports`` can be bound.
    """
    share = worker_share(ports)
    order = [*share, *(port for port in ports if port not in share)]
    for port in order:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1} on 127.0.0.1")
