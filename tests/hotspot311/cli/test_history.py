"""Stored runs, comparison, weekly patterns and significance through the CLI, on the real
Philadelphia illegal-dumping sample; the same answers as the library."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from click.testing import CliRunner

from clustering.history import compare_hotspots
from clustering.priority import PRESETS
from clustering.run import run_hotspots
from clustering.selection import HotspotQuery
from geo.store.embedded import EmbeddedStore
from hotspot311.cli.main import cli
from layers.profile import CityProfile


@pytest.fixture(scope="module")
def dumping_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded Philadelphia store holding the illegal-dumping sample."""
    from geo.ingest.mapping import ColumnMapping, apply_mapping
    from geo.ingest.readers import ROW_COLUMN
    from geo.ingest.validate import validate
    from hotspot311.cli.demo import dumping_requests
    from layers.profile import load_profile

    phila = load_profile("philadelphia")
    raw = dumping_requests().astype(str)
    raw.insert(0, ROW_COLUMN, range(1, len(raw) + 1))
    batch = validate(apply_mapping(raw, ColumnMapping(), fmt="phila"), profile=phila,
                     batch_id="t", source_file="dumping")
    root = tmp_path_factory.mktemp("history-cli") / "store"
    EmbeddedStore(root, phila).write_batch(batch, info={"batch_id": "t"})
    return root


def invoke(store: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


BASE = ("hotspots", "--days", "31", "--min-samples", "8", "--eps", "100")


def test_save_list_show_compare(dumping_store: Path, phila: CityProfile) -> None:
    out = invoke(dumping_store, *BASE, "--end", "2024-08-01", "--save", "--significant")
    assert "saved as run 1" in out and "significant" in out
    invoke(dumping_store, *BASE, "--end", "2024-08-01", "--save", "--significant")
    invoke(dumping_store, *BASE, "--end", "2024-09-01", "--save")
    listing = invoke(dumping_store, "runs", "list")
    assert [ln.split()[0] for ln in listing.splitlines()[1:]] == ["1", "2", "3"]
    show = invoke(dumping_store, "runs", "show", "1")
    assert '"min_samples": 8' in show and "significant" in show

    # the stored run equals the library run with the stored parameters
    store = EmbeddedStore(dumping_store, phila)
    params, hotspots, _ = store.load_run(1)
    again = run_hotspots(store.requests(), HotspotQuery.from_params(params), profile=phila,
                         weights=PRESETS["balanced"])
    assert again.hotspots["hotspot_id"].tolist() == hotspots["hotspot_id"].tolist()
    assert hotspots["significant"].any()

    # same data, same parameters: every hotspot persistent
    same = invoke(dumping_store, "runs", "compare", "2")
    assert "run 1 (" in same and "run 2 (" in same
    counts = {ln.split()[0]: int(ln.split()[1]) for ln in same.splitlines()[1:8]}
    assert counts["persistent"] == len(hotspots)
    assert sum(v for k, v in counts.items() if k != "persistent") == 0

    # a month later: the CLI's classes are the library's
    later = invoke(dumping_store, "runs", "compare", "1", "3")
    cmp = compare_hotspots(hotspots, store.load_run(3)[1])
    for name, n in cmp["class"].value_counts().items():
        assert f"{name:<11}{n:>6}" in later

    bad = CliRunner().invoke(cli, ["--store", str(dumping_store), "runs", "compare", "3"])
    assert bad.exit_code == 2 and "no earlier run with the same parameters" in bad.output
    bad = CliRunner().invoke(cli, ["--store", str(dumping_store), "runs", "show", "9"])
    assert bad.exit_code == 2 and "run: got 9; stored runs: [1, 2, 3]" in bad.output


def test_weekly_and_significance(dumping_store: Path, tmp_path: Path) -> None:
    cells_path = tmp_path / "weekly.geojson"
    out = invoke(dumping_store, "hotspots", "--days", "7", "--min-samples", "5",
                 "--end", "2024-09-01", "--weekly", "4", "--output", str(cells_path))
    assert "4 weekly windows of 7 days" in out
    cells = gpd.read_file(cells_path)
    assert len(cells) > 0 and cells["series"].str.len().eq(4).all()
    assert set(cells["pattern"]) <= {"new", "consecutive", "intensifying", "persistent",
                                     "diminishing", "sporadic", "historical", "no pattern"}
    assert (cells.loc[cells["series"] == "...#", "pattern"] == "new").all()

    sig_path = tmp_path / "cells.geojson"
    out = invoke(dumping_store, "significance", "--days", "31", "--end", "2024-08-01",
                 "--grid", "250", "--output", str(sig_path))
    sig = gpd.read_file(sig_path)
    assert {"cell_id", "count", "z", "p", "p_fdr", "bin"} <= set(sig.columns)
    assert int((sig["bin"] == 3).sum()) > 0
    assert f"hot 99%{int((sig['bin'] == 3).sum()):>16,}" in out
    assert sig.crs.to_epsg() == 4326


def test_significance_input_errors(dumping_store: Path) -> None:
    bad = CliRunner().invoke(cli, ["--store", str(dumping_store), "significance",
                                   "--denominator", "ALAND10/1e6"])
    assert bad.exit_code == 2 and "--denominator: needs --layer" in bad.output




def test_hdbscan_method_saved(dumping_store: Path) -> None:
    out = invoke(dumping_store, "hotspots", "--days", "31", "--end", "2024-08-01",
                 "--method", "hdbscan", "--min-cluster-size", "15", "--min-samples", "8",
                 "--save")
    n = int(out.split(" hotspots holding")[0].split()[-1])
    assert n > 0
    last = invoke(dumping_store, "runs", "list").splitlines()[-1].split()
    assert "hdbscan" in last and last[-2] == str(n)
