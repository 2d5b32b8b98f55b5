"""Areas as drawn today or on the request date: a test city whose districts were redrawn.

District map 1 (in force from 2016-01-01) splits the city at x(EDGE) into A (west) and B
(east); map 2 (from 2024-01-01) makes A the whole city and moves B far east, where no
request is. Four requests, two on each side of the 2024 change:

=====  ========  ==========  ==========================  ======================
id     where     requested   request-date (map in force)  today (map 2)
=====  ========  ==========  ==========================  ======================
W23    west      2023-06-01  A (map 1)                    A
E23    east      2023-06-01  B (map 1)                    A
W24    west      2024-06-01  A (map 2)                    A
E24    east      2024-06-01  A (map 2)                    A
=====  ========  ==========  ==========================  ======================
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from geo.ingest.pipeline import ingest
from geo.store.base import Store
from hotspot311.errors import InputError
from reports.asdrawn import as_drawn
from reports.filters import ReportFilter
from reports.meeting import meeting_sheets, prepared_requests, run_report
from tests.geo.store.stores import NOW, TESTVILLE, spec, squares, to_xy, write_csv

WEST, EAST = (-75.153, 39.95), (-75.147, 39.95)
EDGE_X = to_xy(-75.15, 39.95)[0]
Y = to_xy(-75.15, 39.95)[1]
MAP1 = [("A", (EDGE_X - 5000, Y - 5000, EDGE_X, Y + 5000)),
        ("B", (EDGE_X, Y - 5000, EDGE_X + 5000, Y + 5000))]
MAP2 = [("A", (EDGE_X - 5000, Y - 5000, EDGE_X + 5000, Y + 5000)),
        ("B", (EDGE_X + 20000, Y - 5000, EDGE_X + 25000, Y + 5000))]
WHEN = datetime(2024, 7, 1, tzinfo=UTC)
ALL = ReportFilter(start=date(2023, 1, 1), end=date(2024, 6, 30))


def _rows() -> list[dict[str, object]]:
    out = []
    for rid, (lon, lat), req in (("W23", WEST, "2023-06-01 10:00"),
                                 ("E23", EAST, "2023-06-01 10:00"),
                                 ("W24", WEST, "2024-06-01 10:00"),
                                 ("E24", EAST, "2024-06-01 10:00")):
        out.append({"service_request_id": rid, "requested_datetime": req,
                    "updated_datetime": req, "status": "open", "lon": lon, "lat": lat})
    return out


@pytest.fixture
def redrawn(store: Store, tmp_path: Path) -> Store:
    store.add_generation(spec("district", date(2016, 1, 1)), squares(MAP1))
    store.add_generation(spec("district", date(2024, 1, 1)), squares(MAP2))
    ingest(write_csv(tmp_path / "r.csv", _rows()), store, now=NOW)
    return store


def test_request_date_and_today_give_different_hand_checked_tables(redrawn: Store) -> None:
    today = prepared_requests(redrawn, now=WHEN)
    drawn = prepared_requests(redrawn, now=WHEN, as_drawn="request-date")
    by_id = drawn.set_index("service_request_id")["district"].to_dict()
    assert by_id == {"W23": "A", "E23": "B", "W24": "A", "E24": "A"}
    assert set(today["district"]) == {"A"}
    tz = TESTVILLE.timezone
    t_today = run_report("top10", today, ALL, timezone=tz, by="district")
    t_drawn = run_report("top10", drawn, ALL, timezone=tz, by="district")
    assert t_today[["district", "count"]].values.tolist() == [["A", 4]]
    assert t_drawn[["district", "count"]].values.tolist() == [["A", 3], ["B", 1]]
    sla_drawn = run_report("sla", drawn, ALL, timezone=tz, per="district")
    assert sla_drawn[["district", "requests"]].values.tolist() == [["A", 3], ["B", 1],
                                                                    ["(all)", 4]]
    assert "on each request's date" in drawn.attrs["as_drawn"]
    assert "generation 1 from 2016-01-01, generation 2 from 2024-01-01" in drawn.attrs["as_drawn"]
    assert today.attrs["as_drawn"].startswith("areas as drawn today (district: generation 2")


def test_the_meeting_workbook_says_which_maps(redrawn: Store, tmp_path: Path) -> None:
    drawn = prepared_requests(redrawn, now=WHEN, as_drawn="request-date")
    sheets = meeting_sheets(drawn, ALL, timezone=TESTVILLE.timezone, now=WHEN, layer="district")
    assert all("areas as drawn on each request's date" in s.lines[0] for s in sheets)
    by_area = next(s for s in sheets if s.name == "SLA by district")
    assert by_area.table["requests"].tolist() == [3, 1, 4]


def test_bad_mode_names_the_choices(redrawn: Store) -> None:
    with pytest.raises(InputError, match=r"as_drawn: got 'yesterday'; allowed: today, "
                                         r"request-date"):
        as_drawn(redrawn.requests(), redrawn, mode="yesterday", timezone="UTC")


def test_cli_as_drawn_on_a_two_generation_city(tmp_path: Path) -> None:
    from hotspot311.cli.main import cli

    profile = tmp_path / "testville.toml"
    profile.write_text('name = "Testville"\ncrs = "EPSG:2272"\ntimezone = "America/New_York"\n'
                       "bbox = [-75.30, 39.85, -74.95, 40.15]\n", encoding="utf-8")
    for n, boxes in ((1, MAP1), (2, MAP2)):
        squares(boxes).to_crs("EPSG:4326").to_file(tmp_path / f"d{n}.geojson", driver="GeoJSON")
    base = ["--store", str(tmp_path / "s"), "--city", str(profile)]
    runner = CliRunner()
    for n, valid in ((1, "2016-01-01"), (2, "2024-01-01")):
        res = runner.invoke(cli, [*base, "layers", "add", "district",
                                  str(tmp_path / f"d{n}.geojson"), "--id-field", "code",
                                  "--valid-from", valid])
        assert res.exit_code == 0, res.output
    res = runner.invoke(cli, [*base, "ingest", str(write_csv(tmp_path / "r.csv", _rows()))])
    assert res.exit_code == 0, res.output
    common = ["report", "top10", "--by", "district", "--now", "2024-07-01", "--format", "csv"]
    tables = {}
    for mode in ("today", "request-date"):
        out = tmp_path / f"{mode}.csv"
        res = runner.invoke(cli, [*base, *common, "--as-drawn", mode, "--output", str(out)])
        assert res.exit_code == 0, res.output
        tables[mode] = pd.read_csv(out)[["district", "count"]].values.tolist()
    assert tables == {"today": [["A", 4]], "request-date": [["A", 3], ["B", 1]]}
    book = tmp_path / "m.xlsx"
    res = runner.invoke(cli, [*base, "report", "meeting", "--now", "2024-07-01", "--as-drawn",
                              "request-date", "--layer", "district", "--output", str(book)])
    assert res.exit_code == 0, res.output
    assert "areas as drawn on each request's date" in res.output
    sheet = load_workbook(book)["SLA by district"]
    assert "areas as drawn on each request's date" in sheet["A2"].value
