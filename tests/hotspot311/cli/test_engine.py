"""``--engine dask [--scheduler]``: the same hotspots as the local run, through the CLI."""

from __future__ import annotations

import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import clustering.partitioned
from geo.joins import build_index
from geo.store.embedded import EmbeddedStore
from hotspot311.cli.main import cli
from layers.profile import CityProfile
from tests.geo.test_partitioned import requests, single_machine, write_parts  # noqa: F401
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
    start = next(i for i, ln in enumerate(lines) if " selected; " in ln)
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


def test_join_files_on_a_dask_scheduler_equal_single_machine(
    tmp_path: Path, scheduler: str, requests: pd.DataFrame, phila: CityProfile  # noqa: F811
) -> None:
    source = write_parts(requests, tmp_path / "in", "geoparquet")
    store = tmp_path / "store"
    result = CliRunner().invoke(cli, ["--store", str(store), "join", "--engine", "dask",
                                      "--scheduler", scheduler, "--input", str(source),
                                      "--output", str(tmp_path / "out")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"read {len(requests):,} requests in 3 partitions" in result.stdout
    embedded = EmbeddedStore(store, phila)
    indexes = {k: build_index(embedded.areas(k)) for k in embedded.layer_keys()}
    expected = single_machine(requests, phila.crs, indexes)
    back = pd.concat([gpd.read_parquet(p) for p in sorted((tmp_path / "out").glob("*/*"))])
    back = back.set_index("service_request_id").loc[expected.index]
    for key in indexes:
        n = int(expected[key].notna().sum())
        assert f"{key:<22} joined {n:>9,}  outside every area {len(requests) - n:>8,}" \
            in result.stdout
        assert plain(back[key]) == plain(expected[key]), key
    # progress on stderr, results alone on stdout
    assert "join and write:" in result.stderr and "% Completed" in result.stderr
    assert "Completed" not in result.stdout and "join and write" not in result.stdout


def plain(values: pd.Series) -> list[object]:
    return [None if pd.isna(v) else str(v) for v in values]


def test_join_engine_options_are_checked(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "s"), "join", "--engine",
                                      "dask"])
    assert result.exit_code == 2 and "give --input DIR|GLOB and --output DIR" in result.stderr
    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "s"), "join", "--input", "x"])
    assert result.exit_code == 2 and "--input/--output need --engine dask" in result.stderr


PARKS = Path(__file__).resolve().parents[3] / "data/philadelphia/requests/parks-maintenance.csv"


def parks_files(directory: Path) -> list[str]:
    """The real parks file in three parts and a fourth with two bad rows and three repeats."""
    directory.mkdir()
    raw = pd.read_csv(PARKS, dtype=str)
    paths = []
    for i, chunk in enumerate(np.array_split(np.arange(len(raw)), 3)):
        paths.append(directory / f"parks-{i}.csv")
        raw.iloc[chunk].to_csv(paths[-1], index=False)
    extra = raw.iloc[:5].copy()
    extra.loc[extra.index[0], "request_id"] = ""  # missing_id
    extra.loc[extra.index[1], "start_time"] = "not a time"  # unparseable_time
    paths.append(directory / "parks-extra.csv")
    extra.to_csv(paths[-1], index=False)
    return [str(p) for p in paths]


def counts(stdout: str) -> dict[str, int]:
    """Sum of each count line (read, inserted, …) over the files printed."""
    total: dict[str, int] = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("read", "inserted", "updated", "unchanged",
                                            "quarantined"):
            total[parts[0]] = total.get(parts[0], 0) + int(parts[1].replace(",", ""))
    return total


def test_ingest_on_dask_equals_local_and_is_idempotent(
    tmp_path: Path, scheduler: str, phila: CityProfile
) -> None:
    files = parks_files(tmp_path / "in")
    local = CliRunner().invoke(cli, ["--store", str(tmp_path / "local"), "ingest", *files],
                               catch_exceptions=False)
    dask_run = CliRunner().invoke(cli, ["--store", str(tmp_path / "dask"), "ingest", *files,
                                        "--engine", "dask", "--scheduler", scheduler],
                                  catch_exceptions=False)
    assert local.exit_code == 0 and dask_run.exit_code == 0, dask_run.output
    first = counts(dask_run.stdout)
    assert first == counts(local.stdout)
    assert first["read"] == 284 + 5
    assert first["inserted"] + first["updated"] + first["unchanged"] + first["quarantined"] \
        == first["read"]
    assert first["unchanged"] >= 3 and first["quarantined"] >= 2
    a, b = EmbeddedStore(tmp_path / "local", phila), EmbeddedStore(tmp_path / "dask", phila)
    cols = ["service_request_id", "status", "requested_datetime", "closed_datetime",
            *phila.layer_keys]

    def table(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        return pd.DataFrame(frame[columns]).sort_values(columns).reset_index(drop=True)

    pd.testing.assert_frame_equal(table(a.requests(), cols), table(b.requests(), cols))
    q_cols = ["reason", "source_row"] if "source_row" in a.quarantine() else ["reason"]
    pd.testing.assert_frame_equal(table(a.quarantine(), q_cols), table(b.quarantine(), q_cols))

    # the same files again: nothing changes
    before = b.requests()
    again = CliRunner().invoke(cli, ["--store", str(tmp_path / "dask"), "ingest", *files,
                                     "--engine", "dask", "--scheduler", scheduler],
                               catch_exceptions=False)
    second = counts(again.stdout)
    assert second["read"] == first["read"] and second["inserted"] == second["updated"] == 0
    assert second["unchanged"] + second["quarantined"] == second["read"]
    pd.testing.assert_frame_equal(table(b.requests(), cols), table(before, cols))
    assert len(b.quarantine()) == len(a.quarantine())


@pytest.mark.postgis
def test_ingest_on_dask_into_postgis_by_parallel_copy(
    tmp_path: Path, scheduler: str, postgis_url: str, phila: CityProfile
) -> None:
    files = parks_files(tmp_path / "in")
    local = CliRunner().invoke(cli, ["--store", str(tmp_path / "local"), "ingest", *files],
                               catch_exceptions=False)
    args = ["--store", postgis_url, "ingest", *files, "--engine", "dask", "--scheduler",
            scheduler]
    first = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert counts(first.stdout) == counts(local.stdout)
    assert "dashboard: http://" in first.stderr and "stage" in first.stderr
    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    second = counts(again.stdout)
    assert second["read"] == 284 + 5 and second["inserted"] == second["updated"] == 0
    assert second["unchanged"] + second["quarantined"] == second["read"]


def test_local_cluster_prints_the_dashboard_link() -> None:
    from hotspot311.cli.engine import dask_client

    runner = CliRunner()

    pages: list[int] = []

    @click.command()
    def probe() -> None:
        with dask_client("dask", None) as client:
            assert client is not None
            with urllib.request.urlopen(client.dashboard_link, timeout=30) as page:
                pages.append(page.status)

    result = runner.invoke(probe, catch_exceptions=False)
    assert result.exit_code == 0
    link = result.stderr.split("dashboard: ", 1)[1].split()[0]
    assert link.startswith("http://127.0.0.1:") and link.endswith("/status")
    assert pages == [200]  # the dashboard answered while the command ran


def test_ingest_takes_the_year_month_parts_of_join(
    tmp_path: Path, scheduler: str, requests: pd.DataFrame  # noqa: F811
) -> None:
    requests = requests[requests["requested_datetime"] < "2024-03"]  # two months: 6 parts
    source = write_parts(requests, tmp_path / "in", "geoparquet")
    joined = CliRunner().invoke(cli, ["--store", str(tmp_path / "s1"), "join", "--engine",
                                      "dask", "--scheduler", scheduler, "--input", str(source),
                                      "--output", str(tmp_path / "out")],
                                catch_exceptions=False)
    assert joined.exit_code == 0, joined.output
    for engine in (["--engine", "dask", "--scheduler", scheduler], []):
        store = str(tmp_path / f"s{len(engine)}")
        first = CliRunner().invoke(cli, ["--store", store, "ingest", str(tmp_path / "out"),
                                         *engine], catch_exceptions=False)
        assert first.exit_code == 0, first.output
        total = counts(first.stdout)
        assert total["read"] == len(requests)
        assert total["inserted"] + total["quarantined"] == len(requests)
        assert first.stdout.count("year=") > 1  # one report per part
        again = counts(CliRunner().invoke(cli, ["--store", store, "ingest",
                                                str(tmp_path / "out"), *engine]).stdout)
        assert again["unchanged"] + again["quarantined"] == len(requests)
        assert again["inserted"] == again["updated"] == 0


def hotspots_run(store: Path, *args: str) -> tuple[list[str], str, str]:
    """The ranked lines, stdout and stderr of ``hotspots``."""
    result = CliRunner().invoke(cli, ["--store", str(store), *BASE, *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if " selected; " in ln)
    return lines[start:], result.stdout, result.stderr


@pytest.fixture()
def spilled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The directories the partitioned DBSCAN spilled to (the real run, recorded)."""
    seen: list[str] = []
    real = clustering.partitioned._run_spilled

    def recording(delayed: Any, directory: str, *args: Any) -> Any:
        seen.append(directory)
        assert Path(directory).is_dir()
        return real(delayed, directory, *args)

    monkeypatch.setattr(clustering.partitioned, "_run_spilled", recording)
    return seen


def work_lists_equal(a: Path, b: Path) -> None:
    """The crew lists of two runs: the same requests in the same hotspots and ranks."""
    left, right = (pd.read_csv(p, dtype=str).drop(columns="age_days") for p in (a, b))
    assert len(left) > 50
    pd.testing.assert_frame_equal(left, right)


def test_hotspots_on_a_local_cluster_spill_to_a_temporary_directory_and_leave_nothing(
    dumping_store: Path, tmp_path: Path, spilled: list[str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    local, _, _ = hotspots_run(dumping_store, "--work-list", str(tmp_path / "local.csv"))
    ours, stdout, stderr = hotspots_run(dumping_store, "--engine", "dask", "--work-list",
                                        str(tmp_path / "dask.csv"))
    assert ours[:-1] == local[:-1]  # the last line names the work list written
    work_lists_equal(tmp_path / "local.csv", tmp_path / "dask.csv")
    [run_dir] = spilled
    spill = Path(run_dir).parent
    assert spill.parent == tmp and spill.name.startswith("hotspot311-spill-")
    assert f"spill: {spill} (temporary, removed at the end)" in stderr
    assert not spill.exists() and not list(tmp.glob("hotspot311-spill-*"))
    # progress of both passes on stderr; stdout holds the results only
    assert "DBSCAN tiles, pass 1 (core points):" in stderr
    assert "DBSCAN tiles, pass 2 (labels):" in stderr and "% Completed" in stderr
    assert "Completed" not in stdout and "DBSCAN tiles" not in stdout
    assert "spill" not in stdout


def test_hotspots_on_a_scheduler_spill_only_to_the_directory_given(
    dumping_store: Path, tmp_path: Path, scheduler: str, spilled: list[str]  # noqa: F811
) -> None:
    local, _, _ = hotspots_run(dumping_store)
    on_cluster = ("--engine", "dask", "--scheduler", scheduler)
    ours, _, stderr = hotspots_run(dumping_store, *on_cluster)
    assert ours == local and spilled == []
    assert "spill: none (the workers hold the points in memory; give --spill-dir" in stderr
    shared = tmp_path / "shared" / "spill"
    ours, _, stderr = hotspots_run(dumping_store, *on_cluster, "--spill-dir", str(shared))
    assert ours == local
    [run_dir] = spilled
    assert Path(run_dir).parent == shared and f"spill: {shared}" in stderr
    assert shared.is_dir() and list(shared.iterdir()) == []  # the run's files are gone


def test_spill_dir_needs_engine_dask(dumping_store: Path) -> None:  # noqa: F811
    result = CliRunner().invoke(cli, ["--store", str(dumping_store), *BASE, "--spill-dir",
                                      "/tmp/x"])
    assert result.exit_code == 2
    assert "--spill-dir '/tmp/x' needs --engine dask" in result.stderr
