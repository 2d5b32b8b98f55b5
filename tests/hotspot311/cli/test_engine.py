"""``--engine dask [--scheduler]``: the same hotspots as the local run, through the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hotspot311.cli.main import cli
from tests.hotspot311.cli.test_history import dumping_store  # noqa: F401 (fixture)

distributed = pytest.importorskip("distributed")

BASE = ("hotspots", "--days", "120", "--end", "2024-09-01", "--min-samples", "8",
        "--eps", "100", "--top", "200")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def ranked(store: Path, *args: str) -> list[str]:
    result = CliRunner().invoke(cli, ["--store", str(store), *BASE, *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if "requests selected" in ln)
    return lines[start:]


def test_hotspots_on_a_dask_scheduler_equal_local(
    dumping_store: Path, scheduler: str  # noqa: F811
) -> None:
    local = ranked(dumping_store)
    assert len(local) > 10, "the window should hold many hotspots"
    assert ranked(dumping_store, "--engine", "dask", "--scheduler", scheduler) == local
    # the same through $HOTSPOT311_SCHEDULER
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOTSPOT311_SCHEDULER", scheduler)
        result = CliRunner().invoke(cli, ["--store", str(dumping_store), *BASE, "--engine",
                                          "dask"], catch_exceptions=False)
    assert result.exit_code == 0 and f"Dask scheduler {scheduler}" in result.stderr


def test_hotspots_on_a_local_cluster_equal_local(dumping_store: Path) -> None:  # noqa: F811
    assert ranked(dumping_store, "--engine", "dask") == ranked(dumping_store)


def test_scheduler_needs_engine_dask(dumping_store: Path) -> None:  # noqa: F811
    result = CliRunner().invoke(cli, ["--store", str(dumping_store), *BASE, "--scheduler",
                                      "tcp://127.0.0.1:8786"])
    assert result.exit_code == 2
    assert "--scheduler 'tcp://127.0.0.1:8786' needs --engine dask" in result.stderr
    result = CliRunner().invoke(cli, ["--store", str(dumping_store), *BASE, "--engine", "dask",
                                      "--weekly", "4"])
    assert result.exit_code == 2 and "--engine dask: runs the DBSCAN only" in result.stderr
