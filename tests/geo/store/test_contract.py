"""One contract, two stores: the embedded GeoParquet store and the PostGIS store.

Every test here runs against both (fixture ``store``); the last ones run one scenario
through both and compare what they hold.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from geo.ingest.mapping import ColumnMapping
from geo.ingest.pipeline import ingest, prepare
from geo.ingest.validate import QUARANTINE_COLUMNS
from geo.store.base import BATCH_COLUMNS, Store
from tests.geo.store.stores import (
    NOW,
    TESTVILLE,
    normalized,
    open_test_store,
    spec,
    squares,
    write_csv,
)

PHILLY = Path(__file__).resolve().parents[3] / "data" / "philadelphia" / "requests"

# Points around (-75.15, 39.95): left, on the edge, right of x(edge), and far east.
LEFT, EDGE, RIGHT, OUT = (-75.153, 39.95), (-75.15, 39.95), (-75.147, 39.95), (-75.10, 39.95)


def _row(
    rid: str,
    lonlat: tuple[float, float] = LEFT,
    *,
    req: str = "2023-05-01 10:00",
    upd: str | None = "2023-05-02 10:00",
    desc: str = "pothole",
    **more: object,
) -> dict[str, object]:
    return {
        "service_request_id": rid,
        "requested_datetime": req,
        "updated_datetime": upd,
        "status": "open",
        "description": desc,
        "lon": lonlat[0],
        "lat": lonlat[1],
        **more,
    }


def _ingest(store: Store, path: Path):
    return ingest(path, store, now=NOW)


def _by_id(store: Store) -> pd.DataFrame:
    return store.requests().set_index("service_request_id")


def _codes(store: Store, key: str) -> dict[str, object]:
    """Request id → area code of layer ``key`` (None when outside every area)."""
    column = _by_id(store)[key]
    return {k: (v if isinstance(v, str) else None) for k, v in column.items()}


# --- ingest, upsert, batches ---------------------------------------------------------
def test_ingest_then_reingest_is_unchanged(store: Store, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "a.csv", [_row("1"), _row("2", RIGHT), _row("3", OUT, ward_note="x")]
    )
    first = _ingest(store, path)
    assert (first.result.inserted, first.result.updated, first.result.unchanged) == (3, 0, 0)
    again = _ingest(store, path)
    assert (again.result.inserted, again.result.updated, again.result.unchanged) == (0, 0, 3)
    frame = _by_id(store)
    assert sorted(frame.index) == ["1", "2", "3"]
    assert frame.loc["1", "description"] == "pothole"
    assert json.loads(frame.loc["3", "extra"]) == {"ward_note": "x"}
    assert frame.loc["1", "requested_datetime"] == pd.Timestamp("2023-05-01 14:00", tz="UTC")
    assert str(frame["requested_datetime"].dtype) == "datetime64[ns, UTC]"
    assert frame["row_hash"].dtype == "uint64"


def test_upsert_newer_wins_older_ignored_tie_changed_updates(store: Store, tmp_path: Path) -> None:
    _ingest(
        store,
        write_csv(
            tmp_path / "v1.csv",
            [
                _row("new", desc="v1"),
                _row("old", desc="v1"),
                _row("tie", desc="v1"),
                _row("same", desc="v1"),
                _row("nulls", upd=None, desc="v1"),
            ],
        ),
    )
    hashes = _by_id(store)["row_hash"]
    report = _ingest(
        store,
        write_csv(
            tmp_path / "v2.csv",
            [
                _row("new", upd="2023-06-01 10:00", desc="v2"),  # newer → update
                _row("old", upd="2023-04-01 10:00", desc="v2"),  # older → ignored
                _row("tie", desc="v2"),  # same time, changed → update
                _row("same", desc="v1"),  # identical → unchanged
                _row("nulls", upd=None, desc="v2"),  # both missing, changed → update
                _row("fresh", desc="v2"),  # unknown id → insert
            ],
        ),
    )
    r = report.result
    assert (r.inserted, r.updated, r.unchanged) == (1, 3, 2)
    frame = _by_id(store)
    assert frame["description"].to_dict() == {
        "new": "v2",
        "old": "v1",
        "tie": "v2",
        "same": "v1",
        "nulls": "v2",
        "fresh": "v2",
    }
    assert frame.loc["new", "updated_datetime"] == pd.Timestamp("2023-06-01 14:00", tz="UTC")
    assert frame.loc["same", "row_hash"] == hashes["same"]
    assert frame.loc["tie", "row_hash"] != hashes["tie"]


def test_batches_log_every_ingest(store: Store, tmp_path: Path) -> None:
    _ingest(store, write_csv(tmp_path / "a.csv", [_row("1"), _row("2")]))
    _ingest(
        store,
        write_csv(
            tmp_path / "b.csv",
            [_row("2", upd="2023-07-01 00:00"), _row("3"), {"service_request_id": "q"}],
        ),
    )
    log = store.batches()
    assert list(log.columns) == list(BATCH_COLUMNS)
    assert log[
        ["rows_read", "inserted", "updated", "unchanged", "quarantined"]
    ].to_numpy().tolist() == [[2, 2, 0, 0, 0], [3, 1, 1, 0, 1]]
    assert log["source_file"].str.endswith(("a.csv", "b.csv")).all()
    assert pd.Timestamp(log["ingested_at"].iloc[0]).tzinfo is not None


# --- quarantine ----------------------------------------------------------------------
def test_quarantine_round_trip_and_release(store: Store, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "q.csv",
        [
            _row("ok"),
            _row(None, desc="no id"),  # type: ignore[arg-type]
            _row("badtime", req="not a time"),
            _row("far", (-70.0, 41.0)),
            {
                "service_request_id": "geo",
                "requested_datetime": "2023-05-01 10:00",
                "address": "1 MAIN ST",
            },
        ],
    )
    first = _ingest(store, path)
    expected = {"missing_id": 1, "unparseable_time": 1, "outside_city": 1, "needs_geocoding": 1}
    assert first.result.quarantined == expected
    assert first.balanced
    q = store.quarantine()
    assert list(q.columns) == list(QUARANTINE_COLUMNS)
    assert q["reason"].value_counts().to_dict() == expected
    geo_row = q[q["reason"] == "needs_geocoding"].iloc[0]
    assert geo_row["address"] == "1 MAIN ST" and geo_row["service_request_id"] == "geo"
    assert json.loads(geo_row["raw"])["address"] == "1 MAIN ST"
    assert q["source_row"].dtype == "int64" and sorted(q["source_row"]) == [2, 3, 4, 5]

    again = _ingest(store, path)  # same rows: quarantine ids already there
    assert again.result.quarantined == expected
    assert len(store.quarantine()) == 4

    batch, info = prepare(write_csv(tmp_path / "r.csv", [_row("geo")]), store, now=NOW)
    result = store.write_batch(batch, info=info, release=[geo_row["quarantine_id"], "unknown-id"])
    assert result.released == 1 and result.inserted == 1
    assert sorted(store.quarantine()["reason"]) == [
        "missing_id",
        "outside_city",
        "unparseable_time",
    ]


# --- joins and generations -----------------------------------------------------------
def _edge_x(store: Store) -> tuple[float, float]:
    frame = _by_id(store)
    return float(frame.loc["E", "x"]), float(frame.loc["E", "y"])


def _two_squares(xe: float, ye: float, left: str = "a", right: str = "B"):
    return squares(
        [
            (left, (xe - 2000, ye - 2000, xe, ye + 2000)),
            (right, (xe, ye - 2000, xe + 2000, ye + 2000)),
        ]
    )


def test_join_inside_shared_edge_outside(store: Store, tmp_path: Path) -> None:
    _ingest(
        store,
        write_csv(
            tmp_path / "p.csv", [_row("L", LEFT), _row("E", EDGE), _row("R", RIGHT), _row("O", OUT)]
        ),
    )
    xe, ye = _edge_x(store)
    gen = store.add_generation(spec("district"), _two_squares(xe, ye))
    assert (gen.key, gen.generation, gen.n_areas) == ("district", 1, 2)
    # the edge point is covered by both squares: "B" < "a" in code-point order
    assert _codes(store, "district") == {"L": "a", "E": "B", "R": "B", "O": None}
    assert store.rejoin() == {"district": 1}
    # requests written after the layer exists are joined on write
    _ingest(store, write_csv(tmp_path / "p2.csv", [_row("L2", (-75.152, 39.951)), _row("O2", OUT)]))
    codes = _codes(store, "district")
    assert codes["L2"] == "a" and codes["O2"] is None
    assert set(store.areas("district")["code"]) == {"a", "B"}
    assert store.areas("district").crs == TESTVILLE.crs


def test_generations_active_one_joins_and_rejoin_is_per_layer(store: Store, tmp_path: Path) -> None:
    _ingest(
        store,
        write_csv(
            tmp_path / "p.csv", [_row("L", LEFT), _row("E", EDGE), _row("R", RIGHT), _row("O", OUT)]
        ),
    )
    xe, ye = _edge_x(store)
    store.add_generation(spec("district", date(2010, 1, 1)), _two_squares(xe, ye))
    store.add_generation(
        spec("ward"), squares([("W1", (xe - 3000, ye - 3000, xe + 3000, ye + 3000))])
    )
    g2 = store.add_generation(
        spec("district", date(2020, 1, 1)), squares([("Z", (xe - 2000, ye - 2000, xe, ye + 2000))])
    )
    assert g2.generation == 2
    assert _codes(store, "district") == {"L": "Z", "E": "Z", "R": None, "O": None}
    assert _codes(store, "ward") == {"L": "W1", "E": "W1", "R": "W1", "O": None}
    assert list(store.layer_keys()) == ["district", "ward"]
    gens = {(g.key, g.generation): g for g in store.generations()}
    assert gens[("district", 1)].valid_from == date(2010, 1, 1)
    assert gens[("district", 2)].valid_from == date(2020, 1, 1)
    assert store.active()["district"].generation == 2
    assert set(store.areas("district", 1)["code"]) == {"a", "B"}
    assert set(store.areas("district")["code"]) == {"Z"}

    # a generation not yet in force is stored but not used
    future = date.today() + timedelta(days=365)  # noqa: DTZ011 - a calendar date
    store.add_generation(
        spec("district", future), squares([("F", (xe - 9000, ye - 9000, xe + 9000, ye + 9000))])
    )
    assert store.active()["district"].generation == 2
    assert _codes(store, "district") == {"L": "Z", "E": "Z", "R": None, "O": None}
    assert store.rejoin(["ward"]) == {"ward": 1}


# --- both stores, one scenario ---------------------------------------------------------
def _scenario(s: Store, tmp_path: Path) -> None:
    _ingest(
        s,
        write_csv(
            tmp_path / "a.csv",
            [
                _row("L", LEFT, ward_note="n1"),
                _row("E", EDGE),
                _row("R", RIGHT, upd=None),
                _row("O", OUT, address="9 ELM ST"),
                _row("bad", req="yesterday-ish"),
            ],
        ),
    )
    xe, ye = _edge_x(s)
    s.add_generation(spec("district"), _two_squares(xe, ye))
    _ingest(
        s,
        write_csv(
            tmp_path / "b.csv",
            [
                _row("E", EDGE, upd="2023-09-09 09:09", desc="later"),
                _row("N", (-75.148, 39.949)),
            ],
        ),
    )


def test_requests_frames_equal_between_stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    request.applymarker(pytest.mark.postgis)
    stores = [open_test_store(k, tmp_path / k, request, TESTVILLE) for k in ("embedded", "postgis")]
    try:
        for s, k in zip(stores, ("embedded", "postgis"), strict=True):
            (tmp_path / k).mkdir()
            _scenario(s, tmp_path / k)
        emb, pg = (normalized(s.requests()) for s in stores)
        assert list(emb.columns) == list(pg.columns)
        pd.testing.assert_frame_equal(emb, pg, check_dtype=False)
        assert emb["district"].tolist() == ["B", "a", "B", None, "B"]  # ids E, L, N, O, R
        q_emb, q_pg = (s.quarantine().drop(columns="source_file") for s in stores)
        pd.testing.assert_frame_equal(q_emb, q_pg, check_dtype=False)
        b_emb, b_pg = (s.batches().drop(columns=["ingested_at", "source_file"]) for s in stores)
        pd.testing.assert_frame_equal(b_emb, b_pg, check_dtype=False)
    finally:
        for s in stores:
            s.close()


@pytest.mark.slow
def test_philadelphia_area_codes_and_quarantine_identical(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    philly_profile,
    philly_layers,
) -> None:
    request.applymarker(pytest.mark.postgis)
    graffiti = ColumnMapping(constants={"service_name": "Graffiti Removal"})
    frames, quarantines = [], []
    for kind in ("embedded", "postgis"):
        s = open_test_store(kind, tmp_path / kind, request, philly_profile)
        try:
            for layer in philly_profile.layers:
                s.add_generation(layer, philly_layers[layer.key])
            a = ingest(PHILLY / "graffiti-sample.json", s, mapping=graffiti, now=NOW)
            b = ingest(PHILLY / "parks-maintenance.csv", s, now=NOW)
            assert a.balanced and b.balanced
            frames.append(normalized(s.requests()))
            quarantines.append(s.quarantine()["reason"].value_counts().to_dict())
        finally:
            s.close()
    emb, pg = frames
    assert len(emb) > 600
    keys = list(philly_profile.layer_keys)
    pd.testing.assert_frame_equal(
        emb[["service_request_id", *keys]], pg[["service_request_id", *keys]]
    )
    assert emb["council_district"].notna().mean() > 0.95
    assert quarantines[0] == quarantines[1] and sum(quarantines[0].values()) > 0
    pd.testing.assert_frame_equal(emb, pg, check_dtype=False)
