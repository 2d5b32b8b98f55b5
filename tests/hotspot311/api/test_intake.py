"""Intake: POST requests.json against a live server on both stores.

Good posts land and are visible at once through ``requests/{id}.json`` and the tracking
page; bad ones get the spec's error (and, when the location is the trouble, a
quarantine row with the file ingest's reason); one Idempotency-Key stores one request;
photos lose their metadata; hostile text stays text.
"""

from __future__ import annotations

import io
import json
import uuid

import httpx
import pandas as pd
import pytest
from PIL import Image

from tests.hotspot311.api.conftest import Served

HOSTILE = '<script>alert("x")</script> =HYPERLINK("http://evil.example","click") & \u00e9'


def post(served: Served, key: str | None = None, *, headers: dict | None = None,
         files: dict | None = None, **fields: object) -> httpx.Response:
    data = {k: str(v) for k, v in fields.items()}
    if key is not None:
        data["api_key"] = key
    return httpx.post(f"{served.url}/open311/v2/requests.json", data=data, files=files,
                      headers=headers or {}, timeout=60)


def count(served: Served) -> int:
    return len(served.store.request_columns(["service_request_id"]))


def quarantined(served: Served, rid: str) -> pd.DataFrame:
    q = served.store.quarantine()
    return q[q["service_request_id"] == rid]


def test_good_post_lands_with_sla_due_time_and_is_visible_at_once(served: Served) -> None:
    before = count(served)
    r = post(served, served.keys["ann"], service_code="street-defect", lat=39.9526,
             long=-75.1652, description="pothole at the corner")
    assert r.status_code == 201, r.text
    body = r.json()[0]
    rid = body["service_request_id"]
    assert rid.startswith("H311-") and len(rid) == 15
    assert "Streets Department agreed to finish within 30 days" in body["service_notice"]
    assert count(served) == before + 1
    got = httpx.get(f"{served.url}/open311/v2/requests/{rid}.json",
                    params={"api_key": served.keys["ann"]}).json()[0]
    assert got["status"] == "open" and got["service_code"] == "street-defect"
    assert got["description"] == "pothole at the corner"
    assert got["expected_datetime"] == body["expected_datetime"]
    due = pd.Timestamp(body["expected_datetime"]) - pd.Timestamp(got["requested_datetime"])
    assert due == pd.Timedelta(days=30)
    page = httpx.get(f"{served.url}/track", params={"id": rid})
    assert page.status_code == 200 and "Street Defect" in page.text and rid in page.text
    row = served.store.query_requests(
        __import__("geo.store.query", fromlist=["RequestQuery"]).RequestQuery(ids=(rid,)),
        columns=["service_request_id", "source", "lat"])
    assert row["source"].iloc[0] == "open311:liaison" and row["lat"].iloc[0] == 39.9526


def test_address_string_is_geocoded_offline_on_the_spot(served: Served) -> None:
    r = post(served, served.keys["fred"], service_code="graffiti-removal",
             address_string="1500 Market St")
    assert r.status_code == 201, r.text
    rid = r.json()[0]["service_request_id"]
    got = httpx.get(f"{served.url}/open311/v2/requests/{rid}.json",
                    params={"api_key": served.keys["fred"]}).json()[0]
    assert abs(got["lat"] - 39.9524) < 0.003 and abs(got["long"] + 75.1660) < 0.003
    assert got["address"] == "1500 Market St"
    from geo.store.query import RequestQuery

    row = served.store.query_requests(RequestQuery(ids=(rid,)), columns=["service_request_id"])
    assert len(row) == 1


def test_unknown_service_wrong_and_revoked_keys_are_refused(served: Served) -> None:
    before = count(served)
    r = post(served, served.keys["ann"], service_code="unicorns", lat=39.95, long=-75.16)
    assert r.status_code == 400
    err = r.json()[0]
    assert err["code"] == 400 and "service_code: 'unicorns'" in err["description"]
    assert "street-defect" in err["description"]
    r = post(served, "h311_not-a-key", service_code="street-defect", lat=39.95, long=-75.16)
    assert r.status_code == 403 and "not a valid key" in r.json()[0]["description"]
    r = post(served, served.keys["old"], service_code="street-defect", lat=39.95, long=-75.16)
    assert r.status_code == 403 and "revoked" in r.json()[0]["description"]
    r = post(served, None, service_code="street-defect", lat=39.95, long=-75.16)
    assert r.status_code == 403 and "api_key: required" in r.json()[0]["description"]
    assert count(served) == before


def test_missing_location_is_quarantined_with_the_file_reason(served: Served) -> None:
    before = count(served)
    key = f"nowhere-{uuid.uuid4()}"
    r = post(served, served.keys["ann"], service_code="street-defect", description="no place",
             headers={"Idempotency-Key": key})
    assert r.status_code == 400
    text = r.json()[0]["description"]
    assert "missing_coordinates" in text and "quarantine" in text
    from hotspot311.api.intake import tracking_number

    rid = tracking_number("H311", "ann", key)
    q = quarantined(served, rid)
    assert list(q["reason"]) == ["missing_coordinates"]
    assert "no place" in q["raw"].iloc[0]
    again = post(served, served.keys["ann"], service_code="street-defect",
                 description="no place", headers={"Idempotency-Key": key})
    assert again.status_code == 400 and len(quarantined(served, rid)) == 1
    outside = post(served, served.keys["ann"], service_code="street-defect", lat=40.7128,
                   long=-74.0060)
    assert outside.status_code == 400 and "outside_city" in outside.json()[0]["description"]
    assert count(served) == before


def test_address_the_geocoder_cannot_place_waits_in_the_review_list(served: Served) -> None:
    key = f"unplaceable-{uuid.uuid4()}"
    r = post(served, served.keys["fred"], service_code="street-defect",
             address_string="99999 Nowhere Blvd", headers={"Idempotency-Key": key})
    assert r.status_code == 400
    assert "cannot be placed" in r.json()[0]["description"]
    from hotspot311.api.intake import tracking_number

    q = quarantined(served, tracking_number("H311", "fred", key))
    assert list(q["reason"]) == ["needs_geocoding"]
    assert q["address"].iloc[0] == "99999 Nowhere Blvd"


def test_same_idempotency_key_twice_stores_one_request(served: Served) -> None:
    before = count(served)
    headers = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    first = post(served, served.keys["partner"], headers=headers, service_code="street-defect",
                 lat=39.96, long=-75.17, description="retry me")
    second = post(served, served.keys["partner"], headers=headers,
                  service_code="street-defect", lat=39.96, long=-75.17,
                  description="retry me")
    assert first.status_code == 201 and second.status_code == 200
    assert second.headers["idempotent-replayed"] == "true"
    assert first.json()[0]["service_request_id"] == second.json()[0]["service_request_id"]
    assert first.json()[0]["expected_datetime"] == second.json()[0]["expected_datetime"]
    assert count(served) == before + 1
    other = post(served, served.keys["ann"], headers=headers, service_code="street-defect",
                 lat=39.96, long=-75.17)
    assert other.json()[0]["service_request_id"] != first.json()[0]["service_request_id"]


def test_same_idempotency_key_with_another_body_is_refused(served: Served) -> None:
    key = f"reuse-{uuid.uuid4()}"
    headers = {"Idempotency-Key": key}
    first = post(served, served.keys["fred"], headers=headers, service_code="street-defect",
                 lat=39.961, long=-75.171, description="first body")
    assert first.status_code == 201
    rid = first.json()[0]["service_request_id"]
    before = count(served)
    for change in ({"description": "second body"}, {"lat": 39.962},
                   {"service_code": "graffiti-removal"}):
        fields = {"service_code": "street-defect", "lat": 39.961, "long": -75.171,
                  "description": "first body", **change}
        r = post(served, served.keys["fred"], headers=headers, **fields)
        assert r.status_code == 422, (change, r.text)
        assert "idempotent-replayed" not in r.headers
        text = r.json()[0]["description"]
        assert r.json()[0]["code"] == 422
        assert f"Idempotency-Key: {key!r}" in text and rid in text and "different" in text
    xml = httpx.post(f"{served.url}/open311/v2/requests.xml", headers=headers, timeout=60,
                     data={"api_key": served.keys["fred"], "service_code": "street-defect",
                           "lat": "39.961", "long": "-75.171", "description": "third"})
    assert xml.status_code == 422 and b"<code>422</code>" in xml.content
    assert count(served) == before
    stored = httpx.get(f"{served.url}/open311/v2/requests/{rid}.json",
                       headers={"X-API-Key": served.keys["fred"]}).json()[0]
    assert stored["description"] == "first body" and stored["lat"] == 39.961
    # the very same body is still a replay
    again = post(served, served.keys["fred"], headers=headers, service_code="street-defect",
                 lat=39.961, long=-75.171, description="first body")
    assert again.status_code == 200 and again.json()[0]["service_request_id"] == rid


def test_key_of_a_quarantined_post_with_another_body_is_refused(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"quarantined-reuse-{uuid.uuid4()}"
    headers = {"Idempotency-Key": key}
    first = post(served, served.keys["ann"], headers=headers, service_code="street-defect",
                 description="nowhere yet")
    assert first.status_code == 400
    before = count(served)

    def whole(self: object) -> None:
        raise AssertionError("a keyed post read the whole quarantine")

    # the key's earlier rows are found by the tracking number, not in the whole table
    monkeypatch.setattr(type(served.store), "quarantine", whole)
    r = post(served, served.keys["ann"], headers=headers, service_code="street-defect",
             lat=39.95, long=-75.16, description="now with a place")
    assert r.status_code == 422 and f"Idempotency-Key: {key!r}" in r.json()[0]["description"]
    assert count(served) == before


def test_attributes_are_checked_against_the_service_definition(served: Served) -> None:
    r = post(served, served.keys["ann"], service_code="street-light-outage", lat=39.95,
             long=-75.16)
    assert r.status_code == 400 and "attribute[lights_out]: required" in r.text
    r = post(served, served.keys["ann"], service_code="street-light-outage", lat=39.95,
             long=-75.16, **{"attribute[lights_out]": "all", "attribute[colour]": "red"})
    text = " ".join(e["description"] for e in r.json())
    assert "'all'" in text and "one of ['one', 'several']" in text and "attribute[colour]" in text
    r = post(served, served.keys["ann"], service_code="street-light-outage", lat=39.95,
             long=-75.16, **{"attribute[lights_out]": "several", "attribute[pole_number]": "17"})
    assert r.status_code == 201, r.text
    from geo.store.query import RequestQuery

    rid = r.json()[0]["service_request_id"]
    extra = json.loads(served.store.requests().set_index("service_request_id").loc[rid, "extra"])
    assert extra == {"account": "ann", "attribute_lights_out": "several",
                     "attribute_pole_number": "17"}
    assert len(served.store.query_requests(RequestQuery(ids=(rid,)))) == 1


def _jpeg_with_gps() -> bytes:
    img = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {1: "N", 2: (39.0, 57.0, 9.0)}  # GPS IFD
    out = io.BytesIO()
    img.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_photo_is_stored_without_metadata_and_limits_hold(served: Served) -> None:
    photo = _jpeg_with_gps()
    assert b"SpyCam" in photo
    r = post(served, served.keys["fred"], service_code="street-defect", lat=39.95,
             long=-75.16, files={"media": ("p.jpg", photo, "image/jpeg")})
    assert r.status_code == 201, r.text
    rid = r.json()[0]["service_request_id"]
    rec = httpx.get(f"{served.url}/open311/v2/requests/{rid}.json",
                    params={"api_key": served.keys["fred"]}).json()[0]
    got = httpx.get(rec["media_url"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert b"SpyCam" not in got.content and b"Exif" not in got.content
    with Image.open(io.BytesIO(got.content)) as img:
        assert img.size == (64, 48) and not img.getexif()
    big = Image.effect_noise((400, 400), 100).convert("RGB")
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    assert served.settings.max_photo_bytes < len(buf.getvalue()) < served.settings.max_body_bytes
    r = post(served, served.keys["fred"], service_code="street-defect", lat=39.95,
             long=-75.16, files={"media": ("big.png", buf.getvalue(), "image/png")})
    assert r.status_code == 413 and "media:" in r.json()[0]["description"]
    r = post(served, served.keys["fred"], service_code="street-defect", lat=39.95,
             long=-75.16, files={"media": ("x.jpg", b"<svg onload=alert(1)>", "image/jpeg")})
    assert r.status_code == 400 and "not a readable image" in r.json()[0]["description"]
    huge = post(served, served.keys["fred"], service_code="street-defect", lat=39.95,
                long=-75.16, files={"media": ("h.bin", b"0" * 1_100_000, "image/png")})
    assert huge.status_code == 413 and "request body" in huge.json()[0]["description"]


def test_hostile_text_is_plain_in_json_and_escaped_in_html(served: Served) -> None:
    r = post(served, served.keys["ann"], service_code="street-defect", lat=39.95, long=-75.16,
             description=HOSTILE)
    assert r.status_code == 201
    rid = r.json()[0]["service_request_id"]
    rec = httpx.get(f"{served.url}/open311/v2/requests/{rid}.json").json()[0]
    assert rec["description"] == HOSTILE
    xml = httpx.get(f"{served.url}/open311/v2/requests/{rid}.xml").text
    assert "&lt;script&gt;" in xml and "<script>" not in xml
    # status notes are what the tracking page shows: a stored row with hostile notes
    from geo.ingest.readers import ROW_COLUMN
    from geo.ingest.validate import validate

    row = pd.DataFrame({"service_request_id": [f"HOSTILE-{served.kind}"],
                        "requested_datetime": ["2026-01-05T10:00:00Z"], "status": ["open"],
                        "service_name": ["<b>Street</b> Defect"], "status_notes": [HOSTILE],
                        "lat": ["39.95"], "lon": ["-75.16"], ROW_COLUMN: [1]}, dtype=object)
    row[ROW_COLUMN] = row[ROW_COLUMN].astype("int64")
    served.store.write_batch(validate(row, profile=served.store.profile, batch_id="hostile",
                                      source_file="hostile.csv"), info={"batch_id": "hostile"})
    page = httpx.get(f"{served.url}/track", params={"id": f"HOSTILE-{served.kind}"}).text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "<script>" not in page and "<b>Street</b>" not in page
    assert "=HYPERLINK(&#34;http://evil.example&#34;" in page
    rec = httpx.get(f"{served.url}/open311/v2/requests/HOSTILE-{served.kind}.json").json()[0]
    assert rec["status_notes"] == HOSTILE


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_post_answers_in_the_asked_format(served: Served, fmt: str) -> None:
    r = httpx.post(f"{served.url}/open311/v2/requests.{fmt}",
                   data={"api_key": served.keys["ann"], "service_code": "nope"})
    assert r.status_code == 400
    if fmt == "xml":
        assert r.text.startswith("<?xml") and "<errors><error><code>400</code>" in r.text
    else:
        assert r.json()[0]["code"] == 400
