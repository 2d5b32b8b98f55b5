"""One scenario through the library and through the ``hotspot311`` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner

from geo.ingest.mapping import ColumnMapping
from geo.ingest.pipeline import ingest
from geo.store.embedded import EmbeddedStore
from hotspot311.cli.main import cli
from layers.profile import CityProfile
from tests.conftest import REQUESTS


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotspot311", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_ingest_status_export_scenario(tmp_path: Path, phila: CityProfile) -> None:
    store = str(tmp_path / "cli-store")
    path = str(REQUESTS / "graffiti-sample.json")
    out = run("--store", store, "ingest", path, "--set", "service_name=Graffiti Removal")
    assert out.returncode == 0, out.stderr
    lines = {ln.split()[0]: ln.split()[-1] for ln in out.stdout.splitlines()[1:7]}
    assert lines["read"] == "528" and lines["inserted"] == "528"

    # same answer as the library on the same file
    lib = EmbeddedStore(tmp_path / "lib-store", phila)
    report = ingest(
        path,
        lib,
        mapping=ColumnMapping(
            constants={"service_name": "Graffiti Removal"}
        ),
    )
    cli_requests = EmbeddedStore(Path(store), phila).requests()
    cols = ["service_request_id", "status", "requested_datetime", *phila.layer_keys]
    pd.testing.assert_frame_equal(
        pd.DataFrame(cli_requests[cols]).sort_values("service_request_id").reset_index(drop=True),
        pd.DataFrame(lib.requests()[cols]).sort_values("service_request_id").reset_index(drop=True),
    )
    assert report.result.inserted == 528

    again = run("--store", store, "ingest", path, "--set", "service_name=Graffiti Removal")
    assert "unchanged          528" in again.stdout

    for fmt in ("csv", "geojson", "parquet"):
        target = tmp_path / f"requests.{fmt}"
        res = run("--store", store, "export", "requests", "--format", fmt, "--output", str(target))
        assert res.returncode == 0, res.stderr
    csv = pd.read_csv(tmp_path / "requests.csv", dtype=str)
    assert len(csv) == 528
    assert {"service_request_id", "lat", "lon", *phila.layer_keys} <= set(csv.columns)
    gj = gpd.read_file(tmp_path / "requests.geojson")
    assert len(gj) == 528 and gj.crs.to_epsg() == 4326
    assert len(pd.read_parquet(tmp_path / "requests.parquet")) == 528

    status = run("--store", store, "status")
    assert "requests           528" in status.stdout
    assert "police_district" in status.stdout


def test_exit_codes_and_messages(tmp_path: Path) -> None:
    runner = CliRunner()
    store = str(tmp_path / "s")
    bad = tmp_path / "bad.csv"
    bad.write_text("Foo,Bar\n1,2\n")
    res = runner.invoke(cli, ["--store", store, "ingest", str(bad)])
    assert res.exit_code == 2
    assert "required fields not mapped: service_request_id, requested_datetime" in res.output
    assert "Foo" in res.output

    res = runner.invoke(cli, ["--store", store, "ingest", str(bad), "--map", "nonsense=Foo"])
    assert res.exit_code == 2 and "'nonsense' is not a canonical field" in res.output

    res = runner.invoke(cli, ["--store", store, "--city", "atlantis", "status"])
    assert res.exit_code == 2 and "atlantis" in res.output

    good = tmp_path / "good.csv"
    pd.DataFrame(
        [
            {
                "service_request_id": "1",
                "requested_datetime": "2024-01-01 10:00",
                "lat": 0,
                "lon": 0,
            },
            {
                "service_request_id": "2",
                "requested_datetime": "2024-01-01 10:00",
                "lat": 39.9526,
                "lon": -75.1652,
            },
        ]
    ).to_csv(good, index=False)
    res = runner.invoke(cli, ["--store", store, "ingest", "--strict", str(good)])
    assert res.exit_code == 4
    assert "placeholder_coordinates" in res.output


def test_quarantine_and_layers_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    store = str(tmp_path / "s")
    rows = tmp_path / "r.csv"
    pd.DataFrame(
        [{"service_request_id": "1", "requested_datetime": "someday", "lat": 39.95, "lon": -75.16}]
    ).to_csv(rows, index=False)
    assert runner.invoke(cli, ["--store", store, "ingest", str(rows)]).exit_code == 0
    out = tmp_path / "q.csv"
    res = runner.invoke(cli, ["--store", store, "quarantine", "--output", str(out)])
    assert res.exit_code == 0 and "unparseable_time" in res.output
    q = pd.read_csv(out)
    assert q["reason"].tolist() == ["unparseable_time"]
    assert json.loads(q["raw"].iloc[0])["requested_datetime"] == "someday"

    res = runner.invoke(cli, ["--store", store, "layers", "list"])
    assert res.exit_code == 0 and "council_district" in res.output

    res = runner.invoke(
        cli, ["--store", store, "layers", "add", "Bad Key", "x.geojson", "--id-field", "ID"]
    )
    assert res.exit_code == 2 and "layer key" in res.output


@pytest.mark.parametrize(
    "cmd", [["--help"], ["ingest", "--help"], ["export", "requests", "--help"]]
)
def test_help(cmd: list[str]) -> None:
    assert CliRunner().invoke(cli, cmd).exit_code == 0


def test_ingest_in_batches_equals_the_whole_file(tmp_path: Path, phila: CityProfile) -> None:
    """``ingest --batch-rows``: the file read 1,000 rows at a time stores what reading it
    whole stores (requests, quarantine, counts); its requests get their problem_id from
    ``problems rebuild``, the same as the whole file's write gives them."""
    from tests.geo.ingest.quarantine_corpus import INPUTS
    from tests.geo.store.stores import normalized

    path = str(INPUTS / "messy.csv")  # 3,000 rows: three batches
    runner = CliRunner()
    whole, batched = str(tmp_path / "whole"), str(tmp_path / "batched")
    a = runner.invoke(cli, ["--store", whole, "ingest", path])
    b = runner.invoke(cli, ["--store", batched, "ingest", path, "--batch-rows", "1000"])
    assert a.exit_code == 0 and b.exit_code == 0, (a.output, b.output)
    counts = [ln for ln in a.output.splitlines()[1:] if not ln.startswith("note")]
    assert [ln for ln in b.output.splitlines()[1:] if not ln.startswith("note")] == counts
    assert "problems rebuild" in b.output and "problems rebuild" not in a.output
    stores = [EmbeddedStore(Path(p), phila) for p in (whole, batched)]
    frames = [normalized(s.requests()) for s in stores]
    assert frames[1]["problem_id"].isna().all() and frames[0]["problem_id"].notna().all()
    pd.testing.assert_frame_equal(frames[0].drop(columns=["problem_id", "batch_id"]),
                                  frames[1].drop(columns=["problem_id", "batch_id"]))
    quarantines = [s.quarantine().drop(columns=["batch_id", "quarantine_id", "quarantined_at"])
                   .sort_values(["source_row", "reason"]).reset_index(drop=True)
                   for s in stores]
    assert len(quarantines[0]) > 100
    pd.testing.assert_frame_equal(quarantines[0], quarantines[1])

    again = runner.invoke(cli, ["--store", batched, "ingest", path, "--batch-rows", "1000"])
    assert "inserted             0" in again.output and "updated              0" in again.output
    rebuilt = runner.invoke(cli, ["--store", batched, "problems", "rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    after = normalized(EmbeddedStore(Path(batched), phila).requests())
    assert after["problem_id"].notna().all()
    # the same requests grouped into the same problems as the whole file's write
    groups = [sorted(sorted(g) for g in f.groupby("problem_id")["service_request_id"]
                     .apply(list)) for f in (frames[0], after)]
    assert groups[0] == groups[1]


@pytest.mark.parametrize(("extra", "named"), [
    (["--kind", "contacts"], "request files only"),
    (["--format", "open311"], "--format 'open311'"),
    (["--engine", "dask"], "--engine 'dask'"),
])
def test_ingest_in_batches_refuses_what_it_cannot_read(tmp_path: Path, extra: list[str],
                                                       named: str) -> None:
    from tests.geo.ingest.quarantine_corpus import INPUTS

    out = CliRunner().invoke(cli, ["--store", str(tmp_path / "s"), "ingest",
                                   str(INPUTS / "messy.csv"), "--batch-rows", "100", *extra])
    assert out.exit_code != 0
    assert "--batch-rows" in out.output and named in out.output
    assert not (tmp_path / "s" / "CURRENT").exists()  # nothing written


@pytest.mark.postgis
def test_ingest_in_batches_names_the_postgis_store(postgis_url: str) -> None:
    from tests.geo.ingest.quarantine_corpus import INPUTS

    out = CliRunner().invoke(cli, ["--store", postgis_url, "ingest",
                                   str(INPUTS / "messy.csv"), "--batch-rows", "100"])
    assert out.exit_code != 0
    assert "--batch-rows" in out.output and "PostGIS" in out.output
