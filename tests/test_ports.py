"""The test servers' port shares: two xdist workers never start from the same port."""

from __future__ import annotations

import socket

import pytest

from tests.ports import free_port, worker_share


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_worker_shares_are_disjoint_and_inside_the_range(monkeypatch: pytest.MonkeyPatch,
                                                         workers: int) -> None:
    ports = range(8600, 8700)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(workers))
    shares = []
    for index in range(workers):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{index}")
        shares.append(set(worker_share(ports)))
    assert all(share and share <= set(ports) for share in shares)
    assert sum(len(share) for share in shares) == len(set().union(*shares))


def _bound_below_ephemeral() -> socket.socket:
    """A socket bound to a port below Linux's ephemeral range whose next port is free.

    Ports picked by ``bind(("127.0.0.1", 0))`` come from the ephemeral range, where the
    test servers' client connections take ports all the time: the port after one picked
    there may be taken by the time ``free_port`` tries it. Below 32768, and away from the
    servers' own ranges, nothing else binds.
    """
    for port in range(29000, 29998, 2):
        taken = socket.socket()
        try:
            taken.bind(("127.0.0.1", port))
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port + 1))
        except OSError:
            taken.close()
            continue
        return taken
    raise RuntimeError("no free pair of ports in 29000-29999 on 127.0.0.1")


def test_free_port_skips_a_bound_port_and_falls_back_to_the_rest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with _bound_below_ephemeral() as taken:
        port = taken.getsockname()[1]
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
        monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
        # gw0's share is the one taken port: the search goes on into gw1's share
        assert free_port(range(port, port + 2)) == port + 1
        with pytest.raises(RuntimeError, match=f"no free port in {port}-{port}"):
            free_port(range(port, port + 1))
