"""The GeoReport v2 reads against a live server on both stores: every endpoint and
filter, JSON and XML, keyset paging while requests are being written, errors, privacy.

Expected answers are worked out here from the store's whole request table with pandas
(the same filters written independently), so a filter pushed down wrongly into either
store shows up as a difference.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyproj
import pytest

from hotspot311.api.reads import MAX_OFFSET, encode_cursor
from layers.privacy import block_address
from layers.profile import load_profile
from layers.service_attributes import load_definitions
from tests.hotspot311.api.conftest import Served

ALL_TIME = {"start_date": "2000-01-01T00:00:00Z", "end_date": "2100-01-01T00:00:00Z"}


def stored(served: Served) -> pd.DataFrame:
    """Every stored request, in Open311 order (newest first, then id descending)."""
    frame = pd.DataFrame(served.store.requests().drop(columns="geometry"))
    frame["requested_datetime"] = pd.to_datetime(frame["requested_datetime"], utc=True)
    return frame.sort_values(["requested_datetime", "service_request_id"],
                             ascending=False, kind="stable").reset_index(drop=True)


def ids_of(body: list[dict]) -> list[str]:
    return [r["service_request_id"] for r in body]


def count_store_reads(served: Served, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """From now on (for this test), each page read from the store is recorded in the
    returned list and answered as before: a call of the store's synchronous
    ``query_rows`` (a page read whole), or of ``page_keys`` that answers (its ids read, to
    join the rows the server keeps)."""
    calls: list[object] = []
    for name in ("query_rows", "page_keys"):
        read = getattr(served.store, name)

        def counted(*args: object, read: Any = read, **kwargs: object) -> object:
            out = read(*args, **kwargs)
            if out is not None:
                calls.append(args)
            return out

        monkeypatch.setattr(served.store, name, counted)
    return calls


def get(served: Served, path: str, **params: object) -> httpx.Response:
    return httpx.get(f"{served.url}/open311/v2/{path}", params=params, timeout=60)


def test_services_json_and_xml_list_the_catalogue(served: Served) -> None:
    defs = load_definitions(load_profile("philadelphia"))
    body = get(served, "services.json").json()
    assert [s["service_code"] for s in body] == [d.code for d in defs]
    light = next(s for s in body if s["service_code"] == "street-light-outage")
    assert light["metadata"] is True and light["type"] == "realtime"
    assert next(s for s in body if s["service_code"] == "street-defect")["metadata"] is False
    root = ET.fromstring(get(served, "services.xml").content)
    assert root.tag == "services"
    assert [e.findtext("service_code") for e in root.findall("service")] == [d.code
                                                                            for d in defs]


def test_service_definition_has_attributes_and_unknown_code_is_404(served: Served) -> None:
    body = get(served, "services/street-light-outage.json").json()
    assert body["service_code"] == "street-light-outage"
    lights = next(a for a in body["attributes"] if a["code"] == "lights_out")
    assert lights["required"] is True and lights["datatype"] == "singlevaluelist"
    assert [v["key"] for v in lights["values"]] == ["one", "several"]
    root = ET.fromstring(get(served, "services/street-light-outage.xml").content)
    assert root.tag == "service_definition"
    assert [a.findtext("code") for a in root.iter("attribute")] == ["pole_number", "lights_out"]
    missing = get(served, "services/no-such-thing.json")
    assert missing.status_code == 404
    assert missing.json()[0]["code"] == 404 and "no-such-thing" in missing.json()[0]["description"]


def _window(frame: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    t = frame["requested_datetime"]
    return frame[(t >= pd.Timestamp(start)) & (t < pd.Timestamp(end))]


def test_default_window_is_the_last_90_days(served: Served) -> None:
    frame = stored(served)
    now = datetime.now(UTC)
    body = get(served, "requests.json").json()
    # the window ends now: the synthetic set has requests later today (its hours are drawn
    # over the whole day), which are not in it
    t = frame["requested_datetime"]
    want = frame[(t >= pd.Timestamp(now - timedelta(days=90))) & (t < pd.Timestamp(now))]
    assert len(want) > 0
    assert ids_of(body) == list(want["service_request_id"][:1000])


def test_updated_filters_alone_reach_past_the_default_window(served: Served) -> None:
    """A client following changes (``updated_after`` only) sees every request changed
    since then, whenever it was requested; one never updated counts from its request
    time."""
    frame = stored(served)
    upd = pd.to_datetime(frame["updated_datetime"], utc=True)
    last = upd.fillna(frame["requested_datetime"])
    since = last.sort_values().iloc[-1500]
    want = frame[last > since]
    old = want["requested_datetime"] < pd.Timestamp(datetime.now(UTC) - timedelta(days=90))
    assert old.any() and frame["updated_datetime"].isna().any()
    body = get(served, "requests.json", updated_after=since.isoformat(),
               page_size=1000).json()
    assert ids_of(body) == list(want["service_request_id"][:1000])


def test_next_link_never_carries_the_api_key(served: Served) -> None:
    """The ``Link`` header is a URL that proxies log and clients pass around: it keeps
    the filters and the cursor, never the caller's ``api_key`` (nor its header)."""
    key = served.keys["partner"]
    r = get(served, "requests.json", **ALL_TIME, page_size=5, status="closed", api_key=key)
    assert r.status_code == 200 and len(r.json()) == 5
    link = r.headers["link"]
    assert key not in link and "api_key" not in link.lower()
    assert all(key not in v for v in r.headers.values())
    nxt = r.links["next"]["url"]
    assert "status=closed" in nxt and "page_size=5" in nxt and "after=" in nxt
    assert nxt.startswith(served.url)
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        r2 = httpx.get(nxt, headers=headers, timeout=60)
        assert r2.status_code == 200 and key not in r2.headers["link"]
        assert not set(ids_of(r2.json())) & set(ids_of(r.json()))
        assert {x["status"] for x in r2.json()} == {"closed"}
    # the full record (no privacy rounding) for a bearer key as for api_key
    one = r.json()[0]["service_request_id"]
    bearer = httpx.get(f"{served.url}/open311/v2/requests/{one}.json", timeout=60,
                       headers={"Authorization": f"Bearer {key}"}).json()[0]
    assert bearer == get(served, f"requests/{one}.json", api_key=key).json()[0]
    wrong = httpx.get(f"{served.url}/open311/v2/requests/{one}.json", timeout=60,
                      headers={"Authorization": "Bearer h311_wrong"})
    assert wrong.status_code == 403
    # a page reached by page number drops page= from the link as before
    paged = get(served, "requests.json", **ALL_TIME, page_size=5, page=2, api_key=key)
    assert "page=" not in paged.links["next"]["url"].replace("page_size", "")


@pytest.mark.parametrize("case", ["service_code", "status", "dates", "updated", "bbox",
                                  "radius", "ids", "combined"])
def test_each_filter_matches_the_same_filter_in_pandas(served: Served, case: str) -> None:
    frame = stored(served)
    profile = load_profile("philadelphia")
    codes = {d.name: d.code for d in load_definitions(profile)}
    params: dict[str, object] = dict(ALL_TIME, page_size=1000)
    want = frame
    if case in ("service_code", "combined"):
        params["service_code"] = "illegal-dumping,graffiti-removal"
        want = want[want["service_name"].isin(["Illegal Dumping", "Graffiti Removal"])]
    if case in ("status", "combined"):
        params["status"] = "closed"
        want = want[want["status"] == "closed"]
    if case == "dates":
        params.update(start_date="2024-03-01", end_date="2024-06-15T12:00:00-04:00")
        want = _window(want, "2024-03-01T05:00:00Z", "2024-06-15T16:00:00Z")
    if case == "updated":  # the last change: updated_datetime, else requested_datetime
        upd = pd.to_datetime(want["updated_datetime"], utc=True)
        mid = upd.dropna().sort_values().iloc[len(upd.dropna()) // 2]
        lo, hi = mid - pd.Timedelta(days=30), mid
        params.update(updated_after=lo.isoformat(), updated_before=hi.isoformat())
        last = upd.fillna(want["requested_datetime"])
        want = want[(last > lo) & (last < hi)]
    if case in ("bbox", "combined"):
        params["bbox"] = "-75.20,39.93,-75.12,39.98"
        want = want[want["lon"].between(-75.20, -75.12) & want["lat"].between(39.93, 39.98)]
    if case == "radius":
        params.update(lat=39.9526, long=-75.1652, radius=800,
                      api_key=served.keys["partner"])  # exact circles need a key
        t = pyproj.Transformer.from_crs("EPSG:4326", profile.crs, always_xy=True)
        x0, y0 = t.transform(-75.1652, 39.9526)
        d = np.hypot(want["x"] - x0, want["y"] - y0) * profile.crs_unit_m
        want = want[d <= 800]
    if case == "ids":
        chosen = list(frame["service_request_id"].sample(25, random_state=1))
        params = {"service_request_id": ",".join(chosen)}
        want = frame[frame["service_request_id"].isin(chosen)]
    assert len(want) > 0, case
    body = get(served, "requests.json", **params).json()
    assert ids_of(body) == list(want["service_request_id"][:1000]), case
    first = want.iloc[0]
    rec = body[0]
    assert rec["service_name"] == first["service_name"]
    code = first["service_code"]  # posted requests carry one; files mostly do not (NaN)
    assert rec["service_code"] == (code if isinstance(code, str) else
                                   codes.get(first["service_name"]))
    assert rec["status"] == first["status"]


def test_xml_holds_the_same_records_as_json(served: Served) -> None:
    params = dict(ALL_TIME, service_code="illegal-dumping", page_size=50)
    body = get(served, "requests.json", **params).json()
    root = ET.fromstring(get(served, "requests.xml", **params).content)
    assert root.tag == "service_requests"
    rows = root.findall("request")
    assert [r.findtext("service_request_id") for r in rows] == ids_of(body)
    for r, j in zip(rows, body, strict=True):
        assert r.findtext("requested_datetime") == j["requested_datetime"]
        assert float(r.findtext("lat")) == j["lat"]


def test_one_request_by_id_json_xml_and_404(served: Served) -> None:
    rid = stored(served)["service_request_id"].iloc[10]
    body = get(served, f"requests/{rid}.json").json()
    assert ids_of(body) == [rid]
    root = ET.fromstring(get(served, f"requests/{rid}.xml").content)
    assert root.find("request").findtext("service_request_id") == rid
    gone = get(served, "requests/NOPE-0.xml")
    assert gone.status_code == 404
    err = ET.fromstring(gone.content)
    assert err.tag == "errors" and err.find("error").findtext("code") == "404"


def test_a_look_up_reads_without_the_thread_pool_where_the_store_can(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostGIS answers ``requests/{id}`` from its asyncio reads, never through the
    synchronous ``query_rows`` (which the embedded store's look-up uses); both answer the
    same record as before, keyed or not, and 404 for an unknown id."""
    rid = stored(served)["service_request_id"].iloc[12]
    before = (get(served, f"requests/{rid}.json").json(),
              get(served, f"requests/{rid}.json", api_key=served.keys["partner"]).json())
    calls = count_store_reads(served, monkeypatch)
    after = (get(served, f"requests/{rid}.json").json(),
             get(served, f"requests/{rid}.json", api_key=served.keys["partner"]).json())
    assert after == before and ids_of(after[0]) == [rid]
    assert after[0] != after[1]  # the public view is not the keyed one
    assert get(served, "requests/NOPE-1.json").status_code == 404
    assert len(calls) == (0 if served.kind == "postgis" else 3)


def test_expected_datetime_comes_from_the_sla_table_when_the_source_has_none(
        served: Served) -> None:
    """Illegal Dumping: 9 working days (weekends and holidays skipped), same time of day."""
    frame = stored(served)
    row = frame[(frame["service_name"] == "Illegal Dumping") & frame["expected_datetime"].isna()
                ].iloc[0]
    rec = get(served, f"requests/{row['service_request_id']}.json").json()[0]
    due = pd.Timestamp(rec["expected_datetime"])
    start = row["requested_datetime"].tz_convert(due.tz)
    assert due.time() == start.time()
    working = int(np.busday_count(start.date(), due.date()))
    assert 9 <= working <= 9 + 3 and due.weekday() < 5  # numpy counts holidays as workdays
    assert (due - start) >= pd.Timedelta(days=9)


def test_a_nul_character_in_an_id_or_cursor_is_answered_not_a_store_fault(
        served: Served) -> None:
    # PostgreSQL text cannot hold U+0000 (PostGIS answered 503): on both stores alike, an
    # id with one that nobody stored is not found, and a cursor with one keeps its order
    frame = stored(served)
    rid = frame["service_request_id"].iloc[3]
    one = httpx.get(f"{served.url}/open311/v2/requests/{rid}%00.json")
    assert one.status_code == 404
    assert "is not a stored request" in one.json()[0]["description"]
    listed = get(served, "requests.json", service_request_id=f"{rid},{rid}\x00x")
    assert listed.status_code == 200 and ids_of(listed.json()) == [rid]
    alone = get(served, "requests.json", service_request_id="x\x00")
    assert alone.status_code == 200 and alone.json() == []
    # the request itself sorts before its id followed by a NUL: the page after that
    # cursor starts with it; the page after its own cursor starts with the next one
    row = frame.iloc[40]
    when = pd.Timestamp(row["requested_datetime"])
    after_nul = get(served, "requests.json", page_size=3,
                    after=encode_cursor(when, f"{row['service_request_id']}\x00z"))
    after_own = get(served, "requests.json", page_size=2,
                    after=encode_cursor(when, str(row["service_request_id"])))
    assert after_nul.status_code == 200 and after_own.status_code == 200
    assert ids_of(after_nul.json()) == [row["service_request_id"], *ids_of(after_own.json())]
    assert ids_of(after_own.json()) == list(frame["service_request_id"].iloc[41:43])
    page = httpx.get(f"{served.url}/track", params={"id": f"{rid}\x00"})
    assert page.status_code == 404 and "\x00" not in page.text


def test_errors_name_the_parameter_value_and_what_is_allowed(served: Served) -> None:
    r = get(served, "requests.json", status="pending", bbox="1,2,3", page_size=5000,
            start_date="yesterday")
    assert r.status_code == 400
    text = " | ".join(e["description"] for e in r.json())
    assert all(e["code"] == 400 for e in r.json())
    for needle in ("status: 'pending'", "open, closed", "bbox: '1,2,3'", "page_size: '5000'",
                   "start_date: 'yesterday'"):
        assert needle in text
    r = get(served, "requests.xml", service_code="nope")
    assert r.status_code == 400 and ET.fromstring(r.content).tag == "errors"
    deep = get(served, "requests.json", page=MAX_OFFSET // 100 + 2, page_size=100)
    assert deep.status_code == 400 and "Link header" in deep.json()[0]["description"]
    bad = get(served, "requests.json", after="not-a-cursor")
    assert bad.status_code == 400 and "after" in bad.json()[0]["description"]
    assert httpx.get(f"{served.url}/open311/v2/nothing.json").status_code == 404


def test_shallow_page_numbers_follow_the_same_order(served: Served) -> None:
    frame = stored(served)
    p2 = get(served, "requests.json", **ALL_TIME, page=2, page_size=100).json()
    assert ids_of(p2) == list(frame["service_request_id"][100:200])


def test_public_reads_follow_the_privacy_rules_and_keys_see_everything(served: Served) -> None:
    frame = stored(served)
    kinds = frame[frame["service_name"] == "Dangerous Building Complaint"]
    open_kinds = ~frame["service_name"].isin(["Dangerous Building Complaint",
                                              "Maintenance Residential or Commercial",
                                              "Vacant House or Commercial"])
    numbered = frame[frame["address"].str.match(r"^\d{3,}\s").fillna(False).astype(bool)]
    described = frame[open_kinds & frame["description"].notna()]
    assert len(kinds) and len(numbered) and len(described)
    withheld, shown, told = kinds.iloc[0], numbered.iloc[0], described.iloc[0]
    pub = get(served, f"requests/{withheld['service_request_id']}.json").json()[0]
    assert pub["description"] is None and pub["media_url"] is None
    pub2 = get(served, f"requests/{shown['service_request_id']}.json").json()[0]
    assert pub2["address"] == block_address(shown["address"]) != shown["address"]
    assert " block of " in pub2["address"]
    assert pub2["lat"] == round(shown["lat"], 3) and pub2["long"] == round(shown["lon"], 3)
    pub3 = get(served, f"requests/{told['service_request_id']}.json").json()[0]
    assert pub3["description"] == told["description"]
    full = get(served, f"requests/{shown['service_request_id']}.json",
               api_key=served.keys["partner"]).json()[0]
    assert full["address"] == shown["address"] and full["lat"] == shown["lat"]
    full2 = get(served, f"requests/{withheld['service_request_id']}.json",
                api_key=served.keys["ann"]).json()[0]
    assert full2["description"] == withheld["description"]
    wrong = get(served, f"requests/{shown['service_request_id']}.json", api_key="h311_wrong")
    assert wrong.status_code == 403


def test_public_position_filters_are_no_finer_than_the_rounded_coordinates(
        served: Served) -> None:
    """A tiny box or circle around one request answers, without a key, as the grid cell
    box of the rounded coordinates: exact positions cannot be found by probing."""
    frame = stored(served)
    # a request whose tiny box lies inside one grid cell (one within 1e-6 of a cell's
    # edge spans two, and which row is 6th depends on what other tests posted first)
    edge = np.minimum(np.abs(frame["lat"] * 1000 - np.round(frame["lat"] * 1000)),
                      np.abs(frame["lon"] * 1000 - np.round(frame["lon"] * 1000)))
    row = frame[(edge > 0.01) & (frame.index >= 5)].iloc[0]
    lat, lon = float(row["lat"]), float(row["lon"])
    tiny = f"{lon - 1e-6},{lat - 1e-6},{lon + 1e-6},{lat + 1e-6}"
    cell = (np.floor(lon * 1000 + 1e-6) / 1000, np.floor(lat * 1000 + 1e-6) / 1000)
    box = (cell[0], cell[1], cell[0] + 0.001, cell[1] + 0.001)
    want = frame[frame["lon"].between(box[0], box[2]) & frame["lat"].between(box[1], box[3])]
    public = get(served, "requests.json", **ALL_TIME, bbox=tiny).json()
    assert ids_of(public) == list(want["service_request_id"][:1000])
    exact = get(served, "requests.json", **ALL_TIME, bbox=tiny,
                api_key=served.keys["partner"]).json()
    assert row["service_request_id"] in ids_of(exact)
    assert set(ids_of(exact)) <= set(ids_of(public))
    circle = get(served, "requests.json", **ALL_TIME, lat=lat, long=lon, radius=1).json()
    assert row["service_request_id"] in ids_of(circle)
    assert len(circle) >= len(exact)


def test_keyset_pages_skip_and_repeat_nothing_while_requests_are_written(
        served: Served) -> None:
    """Walk every page (1,000 rows each) of everything stored; between pages, post new
    requests and ingest a batch whose requests fall in the middle of the range: every
    request stored at the start is seen exactly once."""
    from geo.ingest.readers import ROW_COLUMN
    from geo.ingest.validate import validate

    before = stored(served)
    assert len(before) >= 10_000
    seen: list[str] = []
    url = f"{served.url}/open311/v2/requests.json"
    params: dict[str, object] | None = dict(ALL_TIME, page_size=1000)
    mid = before["requested_datetime"].iloc[len(before) // 2]
    pages = 0
    with httpx.Client(timeout=120) as client:
        while url:
            r = client.get(url, params=params)
            assert r.status_code == 200, r.text
            seen += ids_of(r.json())
            pages += 1
            if pages <= 3:  # writes while the walk goes on
                post = client.post(f"{served.url}/open311/v2/requests.json", data={
                    "api_key": served.keys["fred"], "service_code": "street-defect",
                    "lat": "39.9526", "long": "-75.1652", "description": f"page {pages}"})
                assert post.status_code == 201, post.text
                rows = pd.DataFrame({
                    "service_request_id": [f"MID-{pages}-{i}" for i in range(5)],
                    "requested_datetime": [(mid + pd.Timedelta(seconds=i)).isoformat()
                                           for i in range(5)],
                    "status": "open", "service_name": "Street Defect",
                    "lat": "39.95", "lon": "-75.16", ROW_COLUMN: range(1, 6)}, dtype=object)
                rows[ROW_COLUMN] = rows[ROW_COLUMN].astype("int64")
                batch = validate(rows, profile=served.store.profile,
                                 batch_id=f"mid-{pages}-{served.kind}", source_file="mid.csv")
                served.store.write_batch(batch, info={"batch_id": f"mid-{pages}",
                                                      "source_file": "mid.csv"})
            link = r.headers.get("link")
            url = link[1:link.index(">")] if link else ""
            params = None
    assert len(seen) == len(set(seen)), "a request was repeated"
    assert set(before["service_request_id"]) <= set(seen), "a request was skipped"
    assert pages >= 10


def test_a_page_is_answered_again_only_while_the_requests_are_unchanged(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same page asked again is served without reading the store, per view (public
    or keyed) and per format, until a write changes the requests: then the next answer
    has the new request. A page of the default window (which moves with the clock) is
    always read."""
    window = {"start_date": "2000-01-01T00:00:00Z",
              "end_date": (datetime.now(UTC) + timedelta(days=2)).isoformat()}
    first = get(served, "requests.json", **window, page_size=20)
    assert first.status_code == 200 and len(first.json()) == 20
    reads = count_store_reads(served, monkeypatch)
    again = get(served, "requests.json", **window, page_size=20)
    assert (again.content, again.headers["link"]) == (first.content, first.headers["link"])
    assert again.headers["x-content-type-options"] == "nosniff"
    assert reads == []  # served as it was
    keyed = get(served, "requests.json", **window, page_size=20,
                api_key=served.keys["partner"])
    assert len(reads) == 1 and keyed.json() != first.json()  # another view, read
    as_xml = get(served, "requests.xml", **window, page_size=20)
    assert len(reads) == 2 and as_xml.content.startswith(b"<?xml")
    get(served, "requests.json", page_size=20)
    get(served, "requests.json", page_size=20)
    assert len(reads) == 4  # the default window: read each time
    posted = httpx.post(f"{served.url}/open311/v2/requests.json", timeout=60, data={
        "api_key": served.keys["fred"], "service_code": "street-defect", "lat": "39.9526",
        "long": "-75.1652", "description": "cache test"})
    assert posted.status_code == 201, posted.text
    new_id = posted.json()[0]["service_request_id"]
    after = get(served, "requests.json", **window, page_size=20)
    assert len(reads) == 5 and ids_of(after.json())[0] == new_id
    assert ids_of(after.json())[1:] == ids_of(first.json())[:19]
