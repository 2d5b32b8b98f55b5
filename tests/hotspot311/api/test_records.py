"""Page records (:mod:`hotspot311.api.records`) and their rendering, on hand-made rows:
times to the second in both formats, and the public view's rules applied per row
although they are worked out a column at a time."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import orjson
import pytest

from hotspot311.api.catalogue import Catalogue
from hotspot311.api.records import RECORD_FIELDS, records_from_rows
from hotspot311.api.render import respond
from layers.privacy import PrivacyRules, block_address
from layers.profile import load_profile
from reports.calendar import load_calendar

PROFILE = load_profile("philadelphia")
CATALOGUE = Catalogue.for_city(PROFILE)
CALENDAR = load_calendar(PROFILE)


def rows() -> dict[str, list[object]]:
    """Four stored rows: fractions of a second, a missing due time, a missing code,
    two services in different cases, a repeated address, missing coordinates."""
    t = datetime(2026, 7, 1, 16, 4, 5, 999_999, tzinfo=UTC)
    return {
        "service_request_id": ["A", "B", "C", "D"],
        "status": ["open", "closed", "open", "open"],
        "status_notes": [None, "done", None, "=HYPERLINK(\"x\")"],
        "service_code": ["street-light-outage", None, None, "graffiti-removal"],
        "service_name": ["Street Light Outage", "street light outage", "Graffiti Removal",
                         "Graffiti Removal"],
        "agency_responsible": ["Streets", "Streets", "CLIP", "CLIP"],
        "description": ["pole 7 dark", "<script>x</script>", "tag on wall", "tag again"],
        "requested_datetime": [t, t, t, t],
        "updated_datetime": [t, None, t, t],
        "expected_datetime": [t, t, None, t],
        "closed_datetime": [None, t, None, None],
        "address": ["1234 N Broad St Apt 5", "1234 N Broad St Apt 5", "4th and Market St",
                    None],
        "zipcode": ["19122", None, "19106", "19106"],
        "lat": [39.9781234, 39.9781234, None, 39.95],
        "lon": [-75.1581234, -75.1581234, None, -75.15],
        "media_url": ["https://x/a.jpg", None, "https://x/c.jpg", "https://x/d.jpg"],
        "source": ["api", "api", "api", "api"],
    }


def test_times_are_in_the_city_zone_to_the_second_in_json_and_xml() -> None:
    recs = records_from_rows(rows(), catalogue=CATALOGUE, calendar=CALENDAR, privacy=None)
    body = orjson.loads(respond("json", "requests", recs).body)
    assert [list(r) for r in body] == [list(RECORD_FIELDS)] * 4
    assert body[0]["requested_datetime"] == "2026-07-01T12:04:05-04:00"
    assert body[1]["updated_datetime"] is None
    root = ET.fromstring(respond("xml", "requests", recs).body)
    xml_times = [e.findtext("requested_datetime") for e in root.iter("request")]
    assert xml_times == ["2026-07-01T12:04:05-04:00"] * 4
    # the row without a stored due time gets one from the SLA table, also to the second
    assert body[2]["expected_datetime"] is not None
    assert "." not in body[2]["expected_datetime"]
    assert root.findall("request")[2].findtext("expected_datetime") == body[2][
        "expected_datetime"]


def test_a_keyed_reader_sees_each_row_as_stored() -> None:
    given = rows()
    recs = records_from_rows(given, catalogue=CATALOGUE, calendar=CALENDAR, privacy=None)
    assert [r["address"] for r in recs] == given["address"]
    assert [r["description"] for r in recs] == given["description"]
    assert [r["lat"] for r in recs] == [39.9781234, 39.9781234, None, 39.95]
    # a missing code is the catalogue's code of the name, in any case
    assert [r["service_code"] for r in recs] == ["street-light-outage", "street-light-outage",
                                                 "graffiti-removal", "graffiti-removal"]
    assert all(r["service_notice"] is None and r["address_id"] is None for r in recs)


@pytest.mark.parametrize("withheld", ["STREET LIGHT OUTAGE", "graffiti-removal"])
def test_public_rules_apply_to_each_row(withheld: str) -> None:
    given = rows()
    rules = PrivacyRules(address="block", coordinate_decimals=3,
                         withhold_description=frozenset({withheld.casefold()}))
    recs = records_from_rows(given, catalogue=CATALOGUE, calendar=CALENDAR, privacy=rules)
    assert [r["address"] for r in recs] == [block_address(a) for a in given["address"]]
    assert recs[0]["address"] == "1200 block of N Broad St"
    assert [r["lat"] for r in recs] == [39.978, 39.978, None, 39.95]
    assert [r["long"] for r in recs] == [-75.158, -75.158, None, -75.15]
    hidden = [withheld.casefold() in {str(r["service_name"]).casefold(),
                                      str(r["service_code"]).casefold()} for r in recs]
    assert hidden == ([True, True, False, False] if "LIGHT" in withheld
                      else [False, False, True, True])
    for rec, hide, text, photo in zip(recs, hidden, given["description"],
                                      given["media_url"], strict=True):
        assert (rec["description"], rec["media_url"]) == ((None, None) if hide
                                                          else (text, photo))


def test_no_address_and_exact_coordinates() -> None:
    rules = PrivacyRules(address="none", coordinate_decimals=-1)
    recs = records_from_rows(rows(), catalogue=CATALOGUE, calendar=CALENDAR, privacy=rules)
    assert [r["address"] for r in recs] == [None] * 4
    assert recs[0]["lat"] == 39.9781234
    assert recs[1]["description"] == "<script>x</script>"  # data: escaped by the renderer
    assert b"&lt;script&gt;" in respond("xml", "requests", recs).body
