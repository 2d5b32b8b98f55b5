"""``hotspot311 geocode``: quarantine → requests, review list, standalone files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from geo.store.embedded import EmbeddedStore
from hotspot311.cli.main import cli
from layers.profile import CityProfile
from tests.conftest import write_squares

# Real Philadelphia requests (parks-maintenance.csv); four lose their coordinates here.
ROWS = [
    ("13854433", "2021/01/06 12:22", "200 E OLNEY AVE", "40.0349087", "-75.1186812"),
    ("13875884", "2021/01/19 10:38", "721 S 8TH ST", "", ""),
    ("90000001", "2021/02/01 09:00", "1001 Loney Street", "", ""),
    ("90000002", "2021/02/02 09:00", "4th and mkt street", "0", "0"),
    ("90000003", "2021/02/03 09:00", "100 ZZQXV ST", "", ""),
    ("90000004", "2021/02/04 09:00", "1500 Market St", "", ""),
]


def _csv(path: Path) -> Path:
    frame = pd.DataFrame(ROWS, columns=["request_id", "start_time", "address", "lat", "lon"])
    frame["type"] = "Janitorial Maintenance"
    frame["status"] = "Closed"
    frame.to_csv(path, index=False)
    return path


def _invoke(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return res.exit_code, res.output


@pytest.fixture
def store_dir(tmp_path: Path) -> str:
    store = str(tmp_path / "store")
    code, out = _invoke("--store", store, "ingest", str(_csv(tmp_path / "parks.csv")),
                        "--map", "service_request_id=request_id",
                        "--map", "requested_datetime=start_time",
                        "--map", "service_name=type")
    assert code == 0, out
    return store


def test_geocode_moves_matched_rows_out_of_quarantine(store_dir: str, phila: CityProfile,
                                                      tmp_path: Path) -> None:
    store = EmbeddedStore(Path(store_dir), phila)
    q = store.quarantine()
    assert sorted(q.loc[q["reason"] == "needs_geocoding", "service_request_id"]) == [
        "13875884", "90000001", "90000002", "90000003", "90000004"]
    assert len(store.requests()) == 1

    review = tmp_path / "review.csv"
    code, out = _invoke("--store", store_dir, "geocode", "--output", str(review))
    assert code == 0, out
    assert "geocoded and moved to requests         4" in out
    req = EmbeddedStore(Path(store_dir), phila).requests().set_index("service_request_id")
    assert len(req) == 5
    assert req.loc["13854433", "geocode_match_type"] == "source"
    assert req.loc["13875884", "geocode_match_type"] == "range"
    assert req.loc["90000001", "geocode_match_type"] == "range"
    assert req.loc["90000002", "geocode_match_type"] == "intersection"
    assert req.loc["90000004", "geocode_match_type"] == "range"
    assert (req.loc[["13875884", "90000001"], "geocode_score"] > 0).all()
    # the geocoded point lies near 1001 Loney St as the City places it, and is joined
    assert abs(req.loc["90000001", "lat"] - 40.0707) < 0.001
    assert abs(req.loc["90000001", "lon"] - -75.0750) < 0.001
    assert req.loc["90000001", "zip"] == "19111"

    left = EmbeddedStore(Path(store_dir), phila).quarantine()
    assert list(left["service_request_id"]) == ["90000003"]
    listed = pd.read_csv(review, dtype=str)
    assert list(listed["service_request_id"]) == ["90000003"]
    assert list(listed["geocode_reason"]) == ["unknown_street"]

    # re-running changes nothing
    before = EmbeddedStore(Path(store_dir), phila)
    snap = (before.requests().drop(columns="geometry"), before.quarantine(), len(before.batches()))
    code, out = _invoke("--store", store_dir, "geocode")
    assert code == 0, out
    assert "geocoded and moved to requests         0" in out
    after = EmbeddedStore(Path(store_dir), phila)
    pd.testing.assert_frame_equal(after.requests().drop(columns="geometry"), snap[0])
    pd.testing.assert_frame_equal(after.quarantine(), snap[1])
    assert len(after.batches()) == snap[2]


def test_review_lists_unmatched_without_writing(store_dir: str, phila: CityProfile,
                                                tmp_path: Path) -> None:
    out_csv = tmp_path / "review.csv"
    code, out = _invoke("--store", store_dir, "geocode", "--review", "--output", str(out_csv))
    assert code == 0, out
    assert "5 in the quarantine; 1 cannot be placed" in out
    assert "unknown_street" in out
    rows = pd.read_csv(out_csv, dtype=str)
    assert list(rows["address"]) == ["100 ZZQXV ST"]
    assert len(EmbeddedStore(Path(store_dir), phila).requests()) == 1


def test_geocode_a_standalone_file_keeps_every_row(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    pd.DataFrame({"id": [1, 2, 3, 4, 5],
                  "where": ["1001 Loney St", "", "nonsense", "12th and mkt", "1001 LONEY ST"]}
                 ).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    code, text = _invoke("--store", str(tmp_path / "s"), "geocode", "--input", str(src),
                         "--address-column", "where", "--output", str(out))
    assert code == 0, text
    got = pd.read_csv(out, dtype={"id": int}, keep_default_na=False)
    assert list(got["id"]) == [1, 2, 3, 4, 5]
    assert list(got.columns) == ["id", "where", "lat", "lon", "match_type", "score", "reason"]
    assert list(got["match_type"]) == ["range", "unmatched", "unmatched", "intersection",
                                       "range"]
    assert list(got["reason"])[:3] == ["", "unparseable", "unparseable"]
    assert got.loc[0, "lat"] == got.loc[4, "lat"]


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "x.csv"], "--address-column"),
    (["--input", "x.csv", "--address-column", "a", "--output", "o.csv", "--review"],
     "--review"),
    (["--address-column", "a"], "only applies with --input"),
])
def test_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    code, out = _invoke("--store", str(tmp_path / "s"), "geocode", *args)
    assert code == 2
    assert message in out


def test_missing_address_column(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,2\n", encoding="utf-8")
    code, out = _invoke("--store", str(tmp_path / "s"), "geocode", "--input", str(src),
                        "--address-column", "addr", "--output", str(tmp_path / "o.csv"))
    assert code == 2
    assert "'addr' is not a column" in out


def test_profile_without_street_data(tmp_path: Path) -> None:
    profile = write_squares(tmp_path)
    src = tmp_path / "in.csv"
    src.write_text("addr\n1 Main St\n", encoding="utf-8")
    code, out = _invoke("--store", str(tmp_path / "s"), "--city", str(profile), "geocode",
                        "--input", str(src), "--address-column", "addr",
                        "--output", str(tmp_path / "o.csv"))
    assert code == 2
    assert "'Squareville' has no street data" in out
    code, out = _invoke("--store", str(tmp_path / "s"), "--city", str(profile), "geocode")
    assert code == 0  # nothing needs geocoding: the geocoder is not even loaded
    assert "geocoded and moved to requests         0" in out


def test_scores_stay_within_0_and_100(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    pd.DataFrame({"a": ["12th and mkt", "N 4TH ST & MARKET ST", "1001 Loney St"]}).to_csv(
        src, index=False)
    code, text = _invoke("--store", str(tmp_path / "s"), "geocode", "--input", str(src),
                         "--address-column", "a", "--output", str(tmp_path / "o.csv"))
    assert code == 0, text
    got = pd.read_csv(tmp_path / "o.csv")
    assert got["score"].between(0, 100).all()
