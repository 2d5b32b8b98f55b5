"""Contact logs in both stores: validation, quarantine reasons, value maps, idempotence."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from geo.ingest.contacts_mapping import ContactMapping
from geo.ingest.pipeline import ingest_contacts
from geo.store.base import Store
from hotspot311.errors import InputError, MappingError
from tests.geo.store.stores import NOW, TESTVILLE, open_test_store

CODES = ["outcome=INFO:information,XFER:referral,SR:service_request,911:transfer_911,OTH:other"]
MAPPING = ContactMapping.from_options(
    ["contact_id=CallID", "received_datetime=Start", "outcome=Disp", "department=Dept",
     "service_request_id=SR", "answered=Ans", "wait_seconds=Wait", "handle_seconds=Handle"],
    ["channel=phone"], CODES)

LOG = """CallID,Start,Disp,Dept,SR,Ans,Wait,Handle,Agent
C1,2024-05-28 09:00,INFO,Streets,,Y,30,120,amy
C2,2024-05-28 10:00,sr,Streets,1001,yes,40,200,bo
C3,garbage,INFO,Streets,,Y,,,cy
,2024-05-28 10:00,INFO,Streets,,Y,,,di
C5,2024-05-28 10:00,BOGUS,Streets,,Y,,,ed
C6,2024-05-28 10:00,911,Police,,maybe,,,fi
C7,2024-05-28 10:00,XFER,Water,,N,-3,,gu
C8,,OTH,Water,,N,,,ha
C9,2030-01-01 10:00,OTH,Water,,N,,,ix
C10,2024-05-28 11:00,information,Water,,0,5,,jo
C10,2024-05-28 11:30,OTH,Water,,1,5,,jo
C11,2024-05-28 12:00,,Water,,1,5,,ka
"""


def _write(tmp_path: Path, text: str = LOG, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_rows_are_quarantined_with_reasons(store: Store, tmp_path: Path) -> None:
    report = ingest_contacts(_write(tmp_path), store, mapping=MAPPING, now=NOW)
    assert report.balanced and report.rows_read == 12
    assert report.result.inserted == 3
    assert report.result.quarantined == {
        "unparseable_time": 1, "missing_id": 1, "unknown_outcome": 1, "invalid_answered": 1,
        "invalid_seconds": 1, "missing_time": 1, "time_in_future": 1, "duplicate_id": 1,
        "missing_outcome": 1}
    q = store.contact_quarantine().set_index("reason")
    assert "'BOGUS'" in q.loc["unknown_outcome", "detail"]
    assert "transfer_911" in q.loc["unknown_outcome", "detail"]  # names what is allowed
    assert "'maybe'" in q.loc["invalid_answered", "detail"]
    assert "'-3'" in q.loc["invalid_seconds", "detail"]
    assert "'garbage'" in q.loc["unparseable_time", "detail"]
    assert q.loc["duplicate_id", "contact_id"] == "C10"
    assert '"Agent":"ed"' in q.loc["unknown_outcome", "raw"]  # the raw row is kept
    contacts = store.contacts().set_index("contact_id")
    assert list(contacts.index) == ["C1", "C10", "C2"]
    assert contacts.loc["C2", "outcome"] == "service_request"  # a code, case-insensitive
    assert contacts.loc["C2", "service_request_id"] == "1001"
    assert contacts.loc["C10", "outcome"] == "other"  # the later duplicate was kept
    assert bool(contacts.loc["C10", "answered"]) is True
    assert contacts.loc["C1", "received_datetime"] == pd.Timestamp("2024-05-28 13:00Z")
    assert '"Agent":"amy"' in contacts.loc["C1", "extra"]


def test_reingest_changes_nothing_and_a_changed_row_updates(store: Store,
                                                            tmp_path: Path) -> None:
    path = _write(tmp_path)
    ingest_contacts(path, store, mapping=MAPPING, now=NOW)
    before = store.contacts()
    again = ingest_contacts(path, store, mapping=MAPPING, now=NOW)
    assert (again.result.inserted, again.result.updated, again.result.unchanged) == (0, 0, 3)
    pd.testing.assert_frame_equal(store.contacts(), before)
    assert len(store.contact_quarantine()) == 9
    changed = _write(tmp_path, LOG.replace("C1,2024-05-28 09:00,INFO", "C1,2024-05-28 09:00,XFER"),
                     "log2.csv")
    third = ingest_contacts(changed, store, mapping=MAPPING, now=NOW)
    assert (third.result.inserted, third.result.updated) == (0, 1)
    assert store.contacts().set_index("contact_id").loc["C1", "outcome"] == "referral"
    assert list(store.batches()["format"]) == ["contacts-csv"] * 3


@pytest.mark.postgis
def test_both_stores_hold_the_same_contacts(tmp_path: Path,
                                            request: pytest.FixtureRequest) -> None:
    path = _write(tmp_path)
    held = []
    for kind in ("embedded", "postgis"):
        s = open_test_store(kind, tmp_path / kind, request, TESTVILLE)
        try:
            ingest_contacts(path, s, mapping=MAPPING, now=NOW)
            held.append((s.contacts(), s.contact_quarantine().drop(columns="quarantined_at")))
        finally:
            s.close()
    pd.testing.assert_frame_equal(held[0][0], held[1][0])
    pd.testing.assert_frame_equal(held[0][1], held[1][1])


def test_mapping_errors_name_field_value_and_allowed() -> None:
    with pytest.raises(MappingError, match=r"code 'X' maps to 'info'.*allowed: information"):
        ContactMapping.from_options(value_maps=["outcome=X:info"])
    with pytest.raises(MappingError, match=r"field 'status' takes no value map"):
        ContactMapping.from_options(value_maps=["status=A:open"])
    with pytest.raises(MappingError, match=r"--set channel: got 'fax'; allowed: phone"):
        ContactMapping.from_options(constants=["channel=fax"])
    with pytest.raises(MappingError, match=r"'colour' is not a contact field"):
        ContactMapping.from_options(["colour=C"])


def test_unmapped_required_fields_list_the_columns(store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path, "A,B\n1,2\n")
    with pytest.raises(MappingError, match=r"contact_id, received_datetime, channel, outcome.*"
                                           r"'A', 'B'"):
        ingest_contacts(path, store, now=NOW)
    assert store.contacts().empty and store.batches().empty


def test_values_table_in_a_mapping_file(store: Store, tmp_path: Path) -> None:
    toml = tmp_path / "m.toml"
    toml.write_text('[columns]\ncontact_id = "CallID"\nreceived_datetime = "Start"\n'
                    'outcome = "Disp"\nchannel = "Via"\n[values.outcome]\nINFO = "information"\n'
                    '[values.channel]\nTEL = "phone"\nWWW = "web"\n', encoding="utf-8")
    path = _write(tmp_path, "CallID,Start,Disp,Via\n1,2024-05-01 10:00,INFO,TEL\n"
                            "2,2024-05-01 10:00,INFO,WWW\n3,2024-05-01 10:00,INFO,FAX\n")
    report = ingest_contacts(path, store, mapping=ContactMapping.from_toml(toml), now=NOW)
    assert report.result.inserted == 2 and report.result.quarantined == {"unknown_channel": 1}
    assert list(store.contacts()["channel"]) == ["phone", "web"]
    assert "'FAX'" in store.contact_quarantine()["detail"].iloc[0]


def test_cli_ingest_kind_contacts(tmp_path: Path) -> None:
    from hotspot311.cli.main import cli

    path = _write(tmp_path)
    args = ["--store", str(tmp_path / "s"), "--city", "philadelphia", "ingest", "--kind",
            "contacts", str(path), "--map", "contact_id=CallID", "--map",
            "received_datetime=Start", "--map", "outcome=Disp", "--map", "answered=Ans",
            "--map", "wait_seconds=Wait", "--set", "channel=phone", "--value-map", CODES[0]]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "inserted             3" in result.stdout
    assert "unknown_outcome" in result.stdout
    bad = CliRunner().invoke(cli, [*args[:5], str(path), "--value-map", CODES[0]])
    assert bad.exit_code == 2 and "--value-map: only with --kind contacts" in bad.stderr


@pytest.mark.parametrize(("data", "message"), [
    (b"", r"the file is empty"),
    (b"  \r\n\n", r"the file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"binary file \(it holds NUL bytes\)"),
    (b"CallID,Start\n1,2024-05-01\n", r"required contact fields not mapped: channel, outcome"),
], ids=["empty", "blank", "binary", "unmapped"])
def test_unusable_files_write_nothing(store: Store, tmp_path: Path, data: bytes,
                                      message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    with pytest.raises(InputError, match=message):
        ingest_contacts(path, store, mapping=ContactMapping.from_options(
            ["contact_id=CallID", "received_datetime=Start"]), now=NOW)
    assert store.contacts().empty and store.contact_quarantine().empty
    assert store.batches().empty


def test_text_is_kept_as_typed(store: Store, tmp_path: Path) -> None:
    """cp1252 text is read; NUL (PostgreSQL cannot hold it) becomes U+FFFD in both stores;
    a formula-looking department is data."""
    path = tmp_path / "log.csv"
    path.write_bytes("contact_id,received_datetime,channel,outcome,department,team\n"
                     "1,2024-05-01 10:00,phone,information,Caf\xe9 Licenses,=HYPERLINK(1)\n"
                     .encode("cp1252"))
    ingest_contacts(path, store, now=NOW)
    row = store.contacts().iloc[0]
    assert row["department"] == "Café Licenses" and row["team"] == "=HYPERLINK(1)"


@pytest.mark.postgis
def test_both_stores_give_identical_contact_reports(tmp_path: Path,
                                                    request: pytest.FixtureRequest) -> None:
    from reports.calendar import CalendarConfig
    from reports.contact_sheets import CONTACT_REPORTS, run_contact_report

    path = _write(tmp_path)
    calendar = CalendarConfig(timezone=TESTVILLE.timezone, country="US", subdiv="PA")
    tables: dict[str, list[pd.DataFrame]] = {}
    for kind in ("embedded", "postgis"):
        s = open_test_store(kind, tmp_path / kind, request, TESTVILLE)
        try:
            ingest_contacts(path, s, mapping=MAPPING, now=NOW)
            for name in CONTACT_REPORTS:
                for freq in ("week", "month", "fytd") if name == "calls" else ("week",):
                    tables.setdefault(f"{name}-{freq}", []).append(run_contact_report(
                        name, s.contacts(), timezone=TESTVILLE.timezone, calendar=calendar,
                        fiscal_year_start=(7, 1), freq=freq))
        finally:
            s.close()
    for key, (embedded, postgis) in tables.items():
        assert len(embedded), key
        pd.testing.assert_frame_equal(embedded, postgis, obj=key)


def test_a_failure_part_way_leaves_the_store_as_it_was(store: Store, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch record is written last; when it fails, neither the contacts nor the
    quarantine rows of the batch are kept (one snapshot / one transaction)."""
    import geo.store.embedded
    import geo.store.postgis

    ingest_contacts(_write(tmp_path), store, mapping=MAPPING, now=NOW)
    before = (store.contacts(), store.contact_quarantine(), store.batches())

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    if isinstance(store, geo.store.postgis.PostGISStore):
        monkeypatch.setattr(geo.store.postgis, "record_batch", boom)
    else:
        monkeypatch.setattr(geo.store.embedded.EmbeddedStore, "_logged", boom)
    changed = LOG.replace("C1,2024-05-28 09:00,INFO", "C1,2024-05-28 09:00,XFER")
    changed += "C99,2024-05-28 12:00,INFO,Water,,1,5,,new\nC98,bad time,INFO,,,,,,\n"
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest_contacts(_write(tmp_path, changed, "b.csv"), store, mapping=MAPPING, now=NOW)
    pd.testing.assert_frame_equal(store.contacts(), before[0])
    pd.testing.assert_frame_equal(store.contact_quarantine(), before[1])
    pd.testing.assert_frame_equal(store.batches(), before[2])


def test_table_counts_equal_the_counts_of_the_whole_tables(store: Store,
                                                           tmp_path: Path) -> None:
    """``table_counts`` (what ``status`` prints) counts on each store what the whole
    tables give: quarantine and contact quarantine by reason, contacts, their synthetic
    ones and date range, batches; an empty store counts nothing. So does the head of the
    ingest log (``batch_log_head``: rows, newest batch, newest ingest time)."""
    from geo.ingest.pipeline import ingest
    from geo.store.reads import BatchLogHead, TableCounts
    from tests.geo.store.stores import write_csv

    assert store.table_counts() == TableCounts()
    assert store.batch_log_head() == BatchLogHead()
    ingest_contacts(_write(tmp_path), store, mapping=MAPPING, now=NOW)
    requests = [{"service_request_id": "1", "requested_datetime": "2023-05-01 10:00",
                 "lat": 39.95, "lon": -75.15},
                {"service_request_id": "2", "requested_datetime": "someday",
                 "lat": 39.95, "lon": -75.15},
                {"service_request_id": "", "requested_datetime": "2023-05-01 10:00"},
                {"service_request_id": "4", "requested_datetime": "2023-05-01 10:00",
                 "lat": 0, "lon": 0}]
    ingest(write_csv(tmp_path / "r.csv", requests), store, now=NOW)
    got = store.table_counts()
    expected = Store.table_counts(store)  # the default: read every table whole
    assert got == expected
    # the rows of one request id (what a keyed Open311 post checks), without the rest
    whole = store.quarantine()
    for rid in [*whole["service_request_id"].dropna().unique(), "no-such-id"]:
        one = store.quarantined(str(rid))
        pd.testing.assert_frame_equal(one, Store.quarantined(store, str(rid)))
        assert len(one) == int((whole["service_request_id"] == rid).sum())
    assert len(store.quarantined("2")) == 1 and store.quarantined("2")["reason"].iloc[0]
    head = store.batch_log_head()  # what the app checks on every rerun
    assert head == Store.batch_log_head(store)
    log = store.batches()
    assert (head.batches, head.last_batch) == (2, str(log["batch_id"].iloc[-1]))
    assert head.last_ingested is not None and head.last_ingested.tz is not None
    assert got.contacts == 3 and got.batches == 2
    assert sum(got.contact_quarantine.values()) == 9 and sum(got.quarantine.values()) == 3
    assert got.contacts_first == pd.Timestamp("2024-05-28 13:00Z")
    assert list(got.quarantine.values()) == sorted(got.quarantine.values(), reverse=True)
