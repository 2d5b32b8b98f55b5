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


def test_free_port_skips_a_bound_port_and_falls_back_to_the_rest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
        monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
        # gw0's share is the one taken port: the search goes on into gw1's share
        assert free_port(range(port, port + 2)) == port + 1
        with pytest.raises(RuntimeError, match=f"no free port in {port}-{port}"):
            free_port(range(port, port + 1))
