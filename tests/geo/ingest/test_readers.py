"""Readers, column mappings and time parsing, on the real Philadelphia files and on
Open311 / GeoJSON / generic CSV sources written here.

Pinned values were read off the raw files (the first graffiti record, the first parks
row), not off hotspot311's own output.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from geo.ingest.mapping import ColumnMapping, apply_mapping
from geo.ingest.pipeline import prepare
from geo.ingest.readers import ROW_COLUMN, Format, decode, read_requests
from geo.ingest.times import parse_times
from geo.ingest.validate import parse_extra, validate
from geo.store.embedded import EmbeddedStore
from hotspot311.errors import InputError, MappingError
from tests.conftest import REQUESTS, write_json

NY = ZoneInfo("America/New_York")
GRAFFITI = REQUESTS / "graffiti-sample.json"
PARKS = REQUESTS / "parks-maintenance.csv"
CITY_HALL = (39.9526, -75.1652)  # lat, lon


def utc(*args: int) -> pd.Timestamp:
    return pd.Timestamp(datetime(*args, tzinfo=UTC))


def ny(*args: int) -> pd.Timestamp:
    """A New York wall time as a UTC timestamp (computed by zoneinfo, not by us)."""
    return pd.Timestamp(datetime(*args, tzinfo=NY).astimezone(UTC))


def by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("service_request_id", drop=False)


# --- Philadelphia: graffiti-sample.json --------------------------------------------------


@pytest.fixture(scope="module")
def graffiti_raw() -> list[dict[str, object]]:
    return json.loads(GRAFFITI.read_text(encoding="utf-8"))


def test_graffiti_is_detected_as_phila_json_and_every_row_is_accounted(
    embedded: EmbeddedStore, graffiti_raw: list[dict[str, object]]
) -> None:
    raw = read_requests(GRAFFITI)
    assert raw.format is Format.PHILA
    assert len(raw.frame) == len(graffiti_raw) == 528
    assert raw.frame[ROW_COLUMN].tolist() == list(range(1, 529))
    batch, info = prepare(GRAFFITI, embedded)
    assert info["format"] == "phila"
    assert batch.rows_read == 528
    assert len(batch.requests) + len(batch.quarantine) == batch.rows_read
    # every record has an id, epoch-ms time and in-city coordinates: nothing to quarantine
    assert len(batch.quarantine) == 0
    assert batch.requests["service_request_id"].is_unique


def test_graffiti_first_record_times_and_fields(embedded: EmbeddedStore) -> None:
    batch, _ = prepare(GRAFFITI, embedded)
    r = by_id(batch.requests).loc["8992784"]
    # requested_datetime 1422517500000 ms; closed 1423482420000 ms
    assert r["requested_datetime"] == utc(2015, 1, 29, 7, 45)
    assert r["requested_datetime"] == pd.Timestamp(1422517500000, unit="ms", tz="UTC")
    assert r["closed_datetime"] == pd.Timestamp(1423482420000, unit="ms", tz="UTC")
    assert r["closed_datetime"] == utc(2015, 2, 9, 11, 47)
    # "2/15/2023 21:56" New York (EST, -5) and "2/8/2015 19:00" (EST)
    assert r["updated_datetime"] == utc(2023, 2, 16, 2, 56)
    assert r["expected_datetime"] == ny(2015, 2, 8, 19, 0) == utc(2015, 2, 9, 0, 0)
    assert str(r["requested_datetime"].tz) == "UTC"
    assert r["status"] == "closed"
    assert r["status_notes"] == "Repair Completed"
    assert r["address"] == "2537 FRANKFORD AVE"
    assert r["zipcode"] == "19125"
    assert r["lat"] == pytest.approx(39.98403922)
    assert r["lon"] == pytest.approx(-75.12506249)
    assert r["geometry"].x == pytest.approx(-75.12506249)
    assert r["geometry"].y == pytest.approx(39.98403922)
    # unknown columns are kept in extra and round-trip
    extra = parse_extra(r["extra"])
    assert extra["area"] == "Kensington"
    assert extra["time_to_close"] == "11"
    assert extra["cartodb_id"] == "1099830"
    assert extra["objectid"] == "18909300"


def test_graffiti_summer_wall_time_read_as_daylight_time(embedded: EmbeddedStore) -> None:
    """A wall time in summer is EDT (-4), not EST: checks the zone is applied per value."""
    text = GRAFFITI.read_text(encoding="utf-8")
    doc = json.loads(text)
    summer = next(r for r in doc if str(r["updated_datetime"]).startswith(("7/", "8/")))
    batch, _ = prepare(GRAFFITI, embedded)
    got = by_id(batch.requests).loc[str(summer["service_request_id"]), "updated_datetime"]
    wall = datetime.strptime(str(summer["updated_datetime"]), "%m/%d/%Y %H:%M")  # noqa: DTZ007
    assert got == pd.Timestamp(wall.replace(tzinfo=NY).astimezone(UTC))
    assert got - pd.Timestamp(wall, tz="UTC") == pd.Timedelta(hours=4)


def test_graffiti_four_digit_zips_flagged_and_nulled(
    embedded: EmbeddedStore, graffiti_raw: list[dict[str, object]]
) -> None:
    bad = {str(r["service_request_id"]): r["zipcode"] for r in graffiti_raw
           if len(str(r["zipcode"])) != 5}
    assert len(bad) == 20
    assert bad["11242427"] == "1912"
    batch, _ = prepare(GRAFFITI, embedded)
    assert batch.flags.get("zipcode_malformed") == 20
    req = by_id(batch.requests)
    for sid in bad:
        assert pd.isna(req.loc[sid, "zipcode"])
        assert "zipcode_malformed" in req.loc[sid, "quality_flags"]
    good = req.drop(index=list(bad))
    assert good["zipcode"].str.fullmatch(r"\d{5}").all()
    assert good["quality_flags"].isna().all()


def test_graffiti_null_close_times(
    embedded: EmbeddedStore, graffiti_raw: list[dict[str, object]]
) -> None:
    null_closed = {str(r["service_request_id"]) for r in graffiti_raw
                   if r["closed_datetime"] is None}
    assert len(null_closed) == 199
    batch, _ = prepare(GRAFFITI, embedded)
    req = by_id(batch.requests)
    assert req.loc[sorted(null_closed), "closed_datetime"].isna().all()
    assert req.drop(index=sorted(null_closed))["closed_datetime"].notna().all()
    # status comes from the status word, not from the close time: 11934476 says Closed
    assert req.loc["11934476", "status"] == "closed"
    assert (req["status"] == "open").sum() == sum(r["status"] == "Open" for r in graffiti_raw)


# --- Philadelphia: parks-maintenance.csv (renamed export) --------------------------------


def test_parks_csv_detected_as_phila_and_mapped(embedded: EmbeddedStore) -> None:
    raw = read_requests(PARKS)
    assert raw.format is Format.PHILA
    assert len(raw.frame) == 284
    batch, _ = prepare(PARKS, embedded)
    assert batch.rows_read == 284
    assert len(batch.requests) + len(batch.quarantine) == 284
    req = by_id(batch.requests)
    first = req.loc["13854433"]
    # 13854433,2021/01/06 12:22,2023/03/02 03:27,Janitorial Maintenance,Parks & Recreation,
    # Closed,200 E OLNEY AVE,19120.0,40.0349087,-75.1186812
    assert first["requested_datetime"] == ny(2021, 1, 6, 12, 22) == utc(2021, 1, 6, 17, 22)
    assert first["closed_datetime"] == utc(2023, 3, 2, 8, 27)
    assert first["service_name"] == "Janitorial Maintenance"
    assert first["agency_responsible"] == "Parks & Recreation"
    assert first["zipcode"] == "19120"
    assert first["status"] == "closed"
    assert first["address"] == "200 E OLNEY AVE"
    assert first["lat"] == pytest.approx(40.0349087)
    # 13909313: In-Progress, no close time, empty ZIP
    third = req.loc["13909313"]
    assert third["status"] == "open"
    assert pd.isna(third["closed_datetime"])
    assert pd.isna(third["zipcode"])
    # "New" is a known open word: no status flag anywhere
    assert "status_unknown" not in batch.flags
    assert set(req["status"]) == {"open", "closed"}
    assert (req["status"] == "closed").sum() == 159
    # every "19122.0"-style ZIP was repaired to five digits, none flagged
    assert "zipcode_malformed" not in batch.flags
    assert req["zipcode"].dropna().str.fullmatch(r"\d{5}").all()
    assert req["zipcode"].notna().sum() == 284 - 57


def test_parks_zip_with_decimal_suffix(tmp_path: Path, embedded: EmbeddedStore) -> None:
    src = PARKS.read_text(encoding="utf-8").splitlines()
    f = tmp_path / "parks.csv"
    f.write_text(src[0] + "\n" + "1,2021/01/06 12:22,,type,dept,In-Progress,A ST,19122.0,"
                 f"{CITY_HALL[0]},{CITY_HALL[1]}\n", encoding="utf-8")
    batch, _ = prepare(f, embedded)
    assert batch.requests.loc[0, "zipcode"] == "19122"
    assert batch.requests.loc[0, "status"] == "open"


# --- Open311 GeoReport v2 ----------------------------------------------------------------


def open311_records() -> list[dict[str, object]]:
    return [
        {
            "service_request_id": "638344",
            "status": "closed",
            "status_notes": "Duplicate request.",
            "service_name": "Graffiti Removal",
            "service_code": "GR-1",
            "description": "Tag on wall",
            "agency_responsible": "Community Life Improvement Program",
            "requested_datetime": "2024-07-01T09:30:00-04:00",
            "updated_datetime": "2024-07-02T10:00:00-04:00",
            "expected_datetime": "2024-07-08T09:30:00-04:00",
            "address": "1400 JFK BLVD",
            "zipcode": 19102,
            "lat": CITY_HALL[0],
            "long": CITY_HALL[1],
            "media_url": "https://example.org/p.jpg",
            "ward": "5",
            "tags": ["a", "b"],
        },
        {
            "service_request_id": 638345,
            "status": "open",
            "service_name": "Pothole",
            "requested_datetime": "2024-01-15T08:00:00Z",
            "lat": "39.9600",
            "long": "-75.1700",
        },
    ]


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare-list", "service_requests"])
def test_open311(tmp_path: Path, embedded: EmbeddedStore, wrapped: bool) -> None:
    recs = open311_records()
    doc: object = {"service_requests": recs} if wrapped else recs
    f = write_json(tmp_path / "requests.json", doc)
    raw = read_requests(f)
    assert raw.format is Format.OPEN311
    batch, _ = prepare(f, embedded)
    assert batch.rows_read == 2 and len(batch.requests) == 2 and len(batch.quarantine) == 0
    req = by_id(batch.requests)
    a = req.loc["638344"]
    assert a["requested_datetime"] == utc(2024, 7, 1, 13, 30)
    assert a["updated_datetime"] == utc(2024, 7, 2, 14, 0)
    assert a["expected_datetime"] == utc(2024, 7, 8, 13, 30)
    assert a["lon"] == pytest.approx(-75.1652) and a["lat"] == pytest.approx(39.9526)
    assert a["zipcode"] == "19102"
    assert a["service_code"] == "GR-1"
    assert a["agency_responsible"] == "Community Life Improvement Program"
    assert a["status"] == "closed"
    extra = parse_extra(a["extra"])
    assert extra["ward"] == "5"
    assert json.loads(extra["tags"]) == ["a", "b"]  # nested values kept as JSON text
    b = req.loc["638345"]  # numeric id read as text
    assert b["requested_datetime"] == utc(2024, 1, 15, 8, 0)
    assert b["lat"] == pytest.approx(39.96) and b["lon"] == pytest.approx(-75.17)
    assert b["status"] == "open"


def test_open311_explicit_format_rejects_other_json(tmp_path: Path) -> None:
    f = write_json(tmp_path / "x.json", {"items": [1, 2]})
    with pytest.raises(InputError, match=r"x\.json.*'requests', 'service_requests'"):
        read_requests(f, fmt="open311")


def test_unknown_format_name_lists_allowed() -> None:
    with pytest.raises(InputError, match=r"format: got 'xml'; allowed: auto, phila, open311"):
        read_requests(GRAFFITI, fmt="xml")


# --- GeoJSON -----------------------------------------------------------------------------


def feature(geometry: dict[str, object] | None, **props: object) -> dict[str, object]:
    return {"type": "Feature", "geometry": geometry, "properties": props}


def test_geojson_points_and_polygon(tmp_path: Path, embedded: EmbeddedStore) -> None:
    poly = {"type": "Polygon", "coordinates": [[[-75.17, 39.95], [-75.16, 39.95],
                                                 [-75.16, 39.96], [-75.17, 39.95]]]}
    fc = {"type": "FeatureCollection", "features": [
        feature({"type": "Point", "coordinates": [-75.1652, 39.9526]},
                service_request_id="g1", requested_datetime="2024-06-01T12:00:00Z",
                service_name="Graffiti", council="5"),
        feature({"type": "Point", "coordinates": [-75.1800, 39.9700]},
                service_request_id="g2", requested_datetime="6/1/2024 8:00"),
        feature(poly, service_request_id="g3", requested_datetime="2024-06-01T12:00:00Z"),
        feature(poly, service_request_id="g4", requested_datetime="2024-06-01T12:00:00Z",
                address="1 PENN SQ"),
    ]}
    f = write_json(tmp_path / "requests.geojson", fc)
    assert read_requests(f).format is Format.GEOJSON
    batch, _ = prepare(f, embedded)
    assert batch.rows_read == 4
    assert len(batch.requests) + len(batch.quarantine) == 4
    req = by_id(batch.requests)
    assert sorted(req.index) == ["g1", "g2"]
    assert req.loc["g1", "lat"] == pytest.approx(39.9526)
    assert req.loc["g1", "lon"] == pytest.approx(-75.1652)
    assert req.loc["g2", "lat"] == pytest.approx(39.97)
    assert req.loc["g2", "requested_datetime"] == ny(2024, 6, 1, 8, 0) == utc(2024, 6, 1, 12, 0)
    assert parse_extra(req.loc["g1", "extra"])["council"] == "5"
    q = batch.quarantine.set_index("service_request_id")
    assert q.loc["g3", "reason"] == "unsupported_geometry"
    assert "Polygon" in q.loc["g3", "detail"]
    assert q.loc["g3", "source_row"] == 3
    assert q.loc["g4", "reason"] == "needs_geocoding"
    assert "1 PENN SQ" in q.loc["g4", "detail"]


def test_geojson_must_be_feature_collection(tmp_path: Path) -> None:
    f = write_json(tmp_path / "one.geojson", feature({"type": "Point", "coordinates": [0, 0]}))
    with pytest.raises(InputError, match=r"one\.geojson: expected a GeoJSON FeatureCollection"):
        read_requests(f, fmt="geojson")


def test_empty_json_list_and_feature_collection_are_zero_rows(
    tmp_path: Path, embedded: EmbeddedStore
) -> None:
    """A feed poll that returns no requests is not an error (like a header-only CSV)."""
    for name, doc in [("none.json", []), ("none.geojson",
                                           {"type": "FeatureCollection", "features": []})]:
        batch, _ = prepare(write_json(tmp_path / name, doc), embedded)
        assert batch.rows_read == 0
        assert len(batch.requests) == 0 and len(batch.quarantine) == 0


# --- generic CSV with a column mapping ---------------------------------------------------

GENERIC = (
    "Ticket,Opened,Y,X,Problem,Ward,Note\n"
    "T-1,2024-04-02 08:15,39.9526,-75.1652,Pothole,5,caf\u00e9 \u2013 \"quoted\"\n"
    "T-2,4/3/2024 17:05,39.9600,-75.1700,Streetlight,8,\n"
)
PAIRS = ["service_request_id=Ticket", "requested_datetime=Opened", "lat=Y", "lon=X",
         "service_name=Problem"]


def test_generic_csv_with_pairs(tmp_path: Path, embedded: EmbeddedStore) -> None:
    f = tmp_path / "city.csv"
    f.write_text(GENERIC, encoding="utf-8")
    assert read_requests(f).format is Format.CSV
    mapping = ColumnMapping.from_pairs(PAIRS, ["agency_responsible=Streets"])
    batch, _ = prepare(f, embedded, mapping=mapping)
    assert len(batch.requests) == 2 and len(batch.quarantine) == 0
    req = by_id(batch.requests)
    assert req.loc["T-1", "requested_datetime"] == ny(2024, 4, 2, 8, 15) == utc(2024, 4, 2, 12, 15)
    assert req.loc["T-2", "requested_datetime"] == utc(2024, 4, 3, 21, 5)
    assert req.loc["T-1", "service_name"] == "Pothole"
    assert (req["agency_responsible"] == "Streets").all()
    assert req.loc["T-2", "lon"] == pytest.approx(-75.17)
    extra = parse_extra(req.loc["T-1", "extra"])
    assert extra == {"Ward": "5", "Note": "caf\u00e9 \u2013 \"quoted\""}
    assert parse_extra(req.loc["T-2", "extra"])["Note"] is None


def test_generic_csv_with_toml_mapping(tmp_path: Path, embedded: EmbeddedStore) -> None:
    f = tmp_path / "city.csv"
    f.write_text(GENERIC, encoding="utf-8")
    toml = tmp_path / "city.toml"
    toml.write_text(
        '[columns]\nservice_request_id = "Ticket"\nrequested_datetime = "Opened"\n'
        'lat = "Y"\nlon = "X"\n\n[constants]\nservice_name = "Roads"\n', encoding="utf-8")
    mapping = ColumnMapping.from_toml(toml)
    assert mapping.columns["lat"] == "Y"
    assert mapping.constants == {"service_name": "Roads"}
    batch, _ = prepare(f, embedded, mapping=mapping)
    assert set(batch.requests["service_name"]) == {"Roads"}
    # Problem is unmapped now, so it is kept in extra
    assert parse_extra(batch.requests.loc[0, "extra"])["Problem"] == "Pothole"


def test_toml_mapping_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[columns\n", encoding="utf-8")
    with pytest.raises(MappingError, match=r"bad\.toml: cannot be read as TOML"):
        ColumnMapping.from_toml(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[columns]\nticket_no = "Ticket"\n', encoding="utf-8")
    with pytest.raises(MappingError, match=r"field 'ticket_no' is not a canonical field; "
                                           r"allowed: service_request_id"):
        ColumnMapping.from_toml(unknown)


def test_from_pairs_lists_every_problem() -> None:
    with pytest.raises(MappingError) as info:
        ColumnMapping.from_pairs(["nope=X", "lat", "lon="])
    assert len(info.value.problems) == 3
    assert "'nope' is not a canonical field" in str(info.value)
    assert "got 'lat'; expected FIELD=VALUE" in str(info.value)


def test_unmapped_required_fields_listed_with_file_columns(
    tmp_path: Path, embedded: EmbeddedStore
) -> None:
    f = tmp_path / "city.csv"
    f.write_text(GENERIC, encoding="utf-8")
    with pytest.raises(
        MappingError,
        match=r"required fields not mapped: service_request_id, requested_datetime, lat and "
              r"lon, or address\. The file's columns are: 'Ticket', 'Opened', 'Y', 'X', "
              r"'Problem', 'Ward', 'Note'",
    ):
        prepare(f, embedded)
    # a partial mapping: only the still-missing field is named
    with pytest.raises(MappingError, match=r"not mapped: requested_datetime\. The file"):
        prepare(f, embedded, mapping=ColumnMapping.from_pairs(
            ["service_request_id=Ticket", "lat=Y", "lon=X"]))


def test_mapping_to_absent_column(tmp_path: Path) -> None:
    f = tmp_path / "city.csv"
    f.write_text(GENERIC, encoding="utf-8")
    raw = read_requests(f)
    with pytest.raises(MappingError) as info:
        apply_mapping(raw.frame, ColumnMapping.from_pairs(
            [*PAIRS, "address=Street"]), fmt=raw.format)
    assert "--map address=Street: column 'Street' is not in the file" in str(info.value)


def test_generic_csv_does_not_guess_generic_names(tmp_path: Path) -> None:
    """'id' and 'type' are too generic to guess for a plain CSV."""
    f = tmp_path / "x.csv"
    f.write_text(f"id,type,created_date,lat,lon\n1,a,2024-01-01,{CITY_HALL[0]},{CITY_HALL[1]}\n",
                 encoding="utf-8")
    raw = read_requests(f)
    assert raw.format is Format.CSV
    with pytest.raises(MappingError, match="not mapped: service_request_id\\."):
        apply_mapping(raw.frame, ColumnMapping(), fmt=raw.format)


# --- times -------------------------------------------------------------------------------


def test_naive_times_read_in_profile_zone_including_dst_edges(
    tmp_path: Path, embedded: EmbeddedStore
) -> None:
    rows = [
        ("w", "1/15/2024 9:00", utc(2024, 1, 15, 14, 0)),  # EST
        ("s", "7/15/2024 9:00", utc(2024, 7, 15, 13, 0)),  # EDT
        # 2024-03-10 02:30 does not exist in New York: moved forward to 03:00 EDT
        ("gap", "3/10/2024 2:30", utc(2024, 3, 10, 7, 0)),
        # 2024-11-03 01:30 happens twice: read as the first (EDT) occurrence
        ("fold", "2024-11-03 01:30", utc(2024, 11, 3, 5, 30)),
        ("offset", "2024-11-03T01:30:00-05:00", utc(2024, 11, 3, 6, 30)),
        ("ymd", "2024/11/03 01:30:00", utc(2024, 11, 3, 5, 30)),
        ("ampm", "07/04/2024 05:30:00 PM", utc(2024, 7, 4, 21, 30)),
        ("secs", "1720000000", pd.Timestamp(1720000000, unit="s", tz="UTC")),
    ]
    f = tmp_path / "t.csv"
    f.write_text("service_request_id,requested_datetime,lat,lon\n" + "".join(
        f"{sid},{t},{CITY_HALL[0]},{CITY_HALL[1]}\n" for sid, t, _ in rows), encoding="utf-8")
    batch, _ = prepare(f, embedded)
    got = by_id(batch.requests)["requested_datetime"]
    for sid, text, want in rows:
        assert got[sid] == want, (sid, text, got[sid])
    # the zone-aware result agrees with zoneinfo's fold=0 reading of the ambiguous time
    assert got["fold"] == pd.Timestamp(datetime(2024, 11, 3, 1, 30, tzinfo=NY).astimezone(UTC))


def test_parse_times_uses_given_zone() -> None:
    s = pd.Series(["7/1/2024 12:00", None, "", "soon", 1422517500000])
    la = parse_times(s, tz="America/Los_Angeles")
    assert la[0] == utc(2024, 7, 1, 19, 0)
    assert la[1:4].isna().all()
    assert la[4] == utc(2015, 1, 29, 7, 45)
    assert str(la.dtype) == "datetime64[ns, UTC]"


def test_validate_directly_balances(tmp_path: Path, phila: object) -> None:
    f = write_json(tmp_path / "r.json", [*open311_records(), {"service_request_id": "x"}])
    raw = read_requests(f)
    mapped = apply_mapping(raw.frame, ColumnMapping(), fmt=raw.format)
    batch = validate(mapped, profile=phila, batch_id="b", source_file=f.name)  # type: ignore[arg-type]
    assert batch.rows_read == 3
    assert len(batch.requests) == 2
    assert batch.quarantine["reason"].tolist() == ["missing_time"]


def test_decode_falls_back() -> None:
    assert decode("caf\u00e9".encode()) == ("caf\u00e9", "utf-8-sig")
    assert decode(b"\xef\xbb\xbfid") == ("id", "utf-8-sig")
    assert decode("caf\u00e9 \u2013".encode("cp1252")) == ("caf\u00e9 \u2013", "cp1252")
    assert decode(b"\x81") == ("\x81", "latin-1")
