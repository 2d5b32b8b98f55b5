"""Problems through the command line: ingest assigns them, ``problems`` counts them,
``hotspots`` ranks them (``--count tickets`` as before), ``request`` and ``export`` show
them, ``chronic`` finds spots that keep coming back."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from hotspot311.cli.main import cli

LAT, LON = 39.9526, -75.1652  # City Hall
DLAT, DLON = 0.000405, 0.00053  # about 45 m


def _rows() -> list[dict[str, object]]:
    rows = []
    for i in range(12):  # one light, twelve calls within a few metres
        rows.append((f"S{i:02d}", f"2024-05-{1 + i:02d} 09:00", "open", LAT + 1e-5 * (i % 3),
                     LON))
    for k, (a, b) in enumerate([(1, 0), (-1, 0), (0, 1), (0, -1)]):
        rows.append((f"P{k}", f"2024-05-0{2 + k} 10:00", "open", LAT + a * DLAT,
                     LON + b * DLON))
    for k, day in enumerate(["2024-01-05", "2024-02-20", "2024-04-05"]):  # a chronic spot
        rows.append((f"Q{k}", f"{day} 08:00", "closed", LAT + 0.01, LON + 0.01))
    return [{"service_request_id": r[0], "requested_datetime": r[1],
             "updated_datetime": r[1], "closed_datetime": r[1] if r[2] == "closed" else "",
             "status": r[2], "service_name": "Street Light Outage",
             "address": f"{r[0][0]}00 MARKET ST", "lat": r[3], "lon": r[4]} for r in rows]


def test_problems_through_the_command_line(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    src = tmp_path / "lights.csv"
    pd.DataFrame(_rows()).to_csv(src, index=False)
    runner = CliRunner()

    def run(*args: str) -> str:
        out = runner.invoke(cli, ["--store", store, *args], catch_exceptions=False)
        assert out.exit_code == 0, out.output
        return out.output

    assert "inserted            19" in run("ingest", str(src))
    summary = run("problems")
    assert "19 requests about 8 problems" in summary
    assert "Street Light Outage" in summary and "30.0" in summary

    record = run("request", "S05")
    assert "S00  12 call(s): S00, S01" in record

    run("export", "requests", "--format", "csv", "--output", str(tmp_path / "r.csv"))
    exported = pd.read_csv(tmp_path / "r.csv").set_index("service_request_id")
    assert exported.loc["S07", "problem_id"] == "S00"
    assert exported.loc["Q2", "problem_id"] == "Q2"

    args = ["hotspots", "--service", "Street Light Outage", "--days", "60", "--eps", "100",
            "--min-samples", "3"]
    out = run(*args, "--work-list", str(tmp_path / "w.csv"), "--output",
              str(tmp_path / "h.csv"))
    assert "holding 5 problems (16 calls)" in out
    work = pd.read_csv(tmp_path / "w.csv")
    assert len(work) == 5 and work["calls"].sum() == 16
    assert work.loc[work["problem_id"] == "S00", "request_ids"].iloc[0].count(";") == 11
    spots = pd.read_csv(tmp_path / "h.csv")
    assert spots.loc[0, ["count", "calls"]].tolist() == [5, 16]

    out = run(*args, "--count", "tickets", "--work-list", str(tmp_path / "t.csv"))
    assert "holding 16 (eps" in out
    assert len(pd.read_csv(tmp_path / "t.csv")) == 16
    # repeat callers alone: 12 calls at one light make no hotspot of 6 problems
    assert "0 hotspots" in run(*args[:-1], "6")

    out = run("chronic", "--output", str(tmp_path / "c.geojson"))
    assert "1 chronic locations" in out and "repeat" in out
    layer = json.loads((tmp_path / "c.geojson").read_text())
    props = layer["features"][0]["properties"]
    assert props["problems"] == 3 and props["kind"] == "repeat"
    assert props["problem_ids"] == "Q0; Q1; Q2"

    assert "0 requests got a new problem_id" in run("problems", "rebuild")

    # did it work? two stored runs of the same parameters, compared with the effect
    run(*args, "--save")
    run(*args, "--save")
    out = run("runs", "compare", "2", "--effect", "2")
    assert "did it work? run 1" in out
    assert "0 of 1 hotspots measured" in out and "not_closed" in out  # the lights are open


def test_bad_values_are_named(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["--store", str(tmp_path / "s"), "chronic", "--radius", "-3"])
    assert out.exit_code == 2 and "radius: got -3.0 m" in out.output
    out = runner.invoke(cli, ["--store", str(tmp_path / "s"), "hotspots", "--count", "tickets",
                              "--problem-gap", "3"])
    assert out.exit_code == 2 and "only with --count problems" in out.output
