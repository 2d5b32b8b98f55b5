"""Hostile values go in as data and come back as data; the tables stay intact."""

from __future__ import annotations

import json

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from geo.ingest.readers import ROW_COLUMN
from geo.ingest.validate import validate
from geo.store.base import Store
from geo.store.postgis_text import LONG_ID_REASON, NUL_FLAG, NUL_ID_REASON
from hotspot311.errors import LayerError
from hotspot311.schema import TEXT_FIELDS
from layers.profile import validate_layer_key
from tests.geo.store.stores import NOW, TESTVILLE, spec, squares

INJECTION = "'); DROP TABLE requests; --"
HOSTILE = [
    'O\'Brien "quoted" ; semi;colon',
    INJECTION,
    "x" * 1_000_000,
    "caf\xc3\xa9 \xff\xfe".encode("latin-1").decode("latin-1"),  # non-UTF-8 bytes read as latin-1
    "nul\x00inside",
    "$1 %s %(x)s {} \\ \\N",
]
TEXT = [f for f in TEXT_FIELDS if f not in ("service_request_id", "status", "zipcode")]


def _name(value: str) -> str:
    """An extra column name from a hostile value (pandas' JSON writer cuts names at NUL)."""
    return value[:20].replace("\x00", "")


def _mapped() -> pd.DataFrame:
    rows = []
    for i, value in enumerate(HOSTILE):
        row = dict.fromkeys(TEXT, value)
        row.update(
            service_request_id=f"id-{i}-{value[:40]}" if "\x00" not in value else f"id-{i}",
            requested_datetime="2023-05-01 10:00",
            lat="39.95",
            lon="-75.15",
            status=value[:50],
        )
        row["src:" + _name(value)] = value  # a hostile extra column name and value
        rows.append(row)
    rows.append(
        {
            "service_request_id": "nul\x00id",
            "requested_datetime": "2023-05-01 10:00",
            "lat": "39.95",
            "lon": "-75.15",
        }
    )
    rows.append(
        {"service_request_id": INJECTION, "requested_datetime": "never", "address": INJECTION}
    )
    rows.append(
        {
            "service_request_id": "L" * 1_000_000,
            "requested_datetime": "2023-05-01 10:00",
            "lat": "39.95",
            "lon": "-75.15",
        }
    )
    frame = pd.DataFrame(rows)
    frame[ROW_COLUMN] = range(1, len(frame) + 1)
    return frame


def test_hostile_values_come_back_as_data(store: Store) -> None:
    batch = validate(
        _mapped(), profile=TESTVILLE, batch_id=INJECTION, source_file=INJECTION, now=NOW
    )
    info = {"batch_id": INJECTION, "source_file": INJECTION, "format": "csv", "encoding": "x\x00y"}
    result = store.write_batch(batch, info=info)
    store.add_generation(spec("district"), squares([(INJECTION, (2.0e6, 1.0e5, 3.0e6, 4.0e5))]))
    is_pg = type(store).__name__ == "PostGISStore"

    frame = store.requests().set_index("service_request_id")
    assert result.inserted == len(HOSTILE) + (0 if is_pg else 2)
    for i, value in enumerate(HOSTILE):
        rid = f"id-{i}-{value[:40]}" if "\x00" not in value else f"id-{i}"
        row = frame.loc[rid]
        expected = value.replace("\x00", "\ufffd") if is_pg else value
        for field in TEXT:
            assert row[field] == expected, (field, i)
        extra = {k: v for k, v in json.loads(row["extra"]).items() if v is not None}
        assert extra == {_name(value): expected}
        assert row["district"] == INJECTION
        flagged = NUL_FLAG in (row["quality_flags"] or "")
        assert flagged == (is_pg and "\x00" in value)
    q = store.quarantine()
    assert INJECTION in set(q["service_request_id"])
    if is_pg:
        assert result.quarantined.get(NUL_ID_REASON) == 1
        assert result.quarantined.get(LONG_ID_REASON) == 1
        assert q.loc[q["reason"] == NUL_ID_REASON, "service_request_id"].tolist() == ["nul\ufffdid"]
    assert store.batches()["source_file"].tolist() == [INJECTION]
    assert set(store.areas("district")["code"]) == {INJECTION}
    assert len(store.requests()) == len(frame)  # the table is still there


@pytest.mark.postgis
def test_tables_intact_after_hostile_batch(postgis_url: str) -> None:
    from geo.store.postgis import PostGISStore

    s = PostGISStore.open(postgis_url, TESTVILLE)
    try:
        test_hostile_values_come_back_as_data(s)
    finally:
        s.close()
    with psycopg.connect(postgis_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        }
        assert {"requests", "quarantine", "batches", "areas", "request_areas"} <= tables
        assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == len(HOSTILE)


@pytest.mark.parametrize(
    "key", [INJECTION, 'x"; DROP TABLE requests; --', "Zip", "geometry", "a" * 41]
)
def test_hostile_layer_keys_are_rejected(store: Store, key: str) -> None:
    with pytest.raises(LayerError, match="layer key"):
        validate_layer_key(key)
    with pytest.raises(LayerError, match="layer key"):
        store.add_generation(spec(key), squares([("A", (0, 0, 1, 1))]))
    assert store.layer_keys() == ()


@pytest.mark.postgis
def test_identifiers_are_quoted_and_keys_checked_in_the_database(postgis_url: str) -> None:
    hostile = 'x"; DROP TABLE requests; --'
    with psycopg.connect(postgis_url) as conn:
        assert sql.Identifier(hostile).as_string(conn) == '"x""; DROP TABLE requests; --"'
        # the composed statement names a (missing) column; it does not run the DROP
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute(sql.SQL("SELECT {} FROM requests").format(sql.Identifier(hostile)))
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO layers (layer_key) VALUES (%s)", (hostile,))
        conn.rollback()
        assert conn.execute("SELECT to_regclass('requests') IS NOT NULL").fetchone() == (True,)
