"""The demo contact log: labelled synthetic, linked to the demo requests, shaped like the
published figures."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo.ingest.pipeline import ingest, ingest_contacts
from geo.store.embedded import EmbeddedStore
from hotspot311.cli.demo import generate
from hotspot311.cli.demo_contacts import generate_contacts
from layers.profile import load_profile
from reports.calendar import load_calendar
from reports.contacts import call_volumes, inquiries_summary

END = datetime(2026, 6, 30, 12, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[3]


def test_demo_contacts_are_shaped_like_the_published_figures(tmp_path: Path) -> None:
    profile = load_profile("philadelphia")
    calendar = load_calendar(profile)
    requests = generate(3000, seed=5, end=END)
    log = generate_contacts(requests, calendar=calendar, end=END, weeks=2, seed=5)
    again = generate_contacts(requests, calendar=calendar, end=END, weeks=2, seed=5)
    pd.testing.assert_frame_equal(log, again)  # seeded
    assert log["synthetic"].all() and log["contact_id"].str.startswith("SYN-C-5-").all()
    assert (log["team"] == "synthetic demo").all()
    linked = log["service_request_id"].dropna()
    assert len(linked) > 1000 and linked.isin(set(requests["service_request_id"])).all()

    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    store = EmbeddedStore(tmp_path / "store", profile)
    report = ingest_contacts(path, store)
    assert report.result.inserted == len(log) and not report.result.quarantined
    stored = store.contacts()
    assert stored["synthetic"].all()
    tz = profile.timezone
    weeks = call_volumes(stored, timezone=tz, calendar=calendar, freq="week")
    full = weeks[weeks["working_days"] == 5]
    assert len(full) >= 1
    average = full["weekday_calls"].sum() / full["working_days"].sum()
    assert 3800 < average < 4200  # about 4,000 calls a working weekday
    answered = full["answered"].sum() / (full["answered"] + full["abandoned"]).sum()
    assert 0.68 < answered < 0.72  # about 70 % answered
    shares = inquiries_summary(stored, timezone=tz)["share"].to_numpy()[:5]
    np.testing.assert_allclose(shares, [0.71, 0.14, 0.12, 0.02, 0.01], atol=0.01)


def test_sheets_and_the_cli_say_the_contacts_are_synthetic(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hotspot311.cli.main import cli
    from reports.contact_sheets import contact_sheets

    profile = load_profile("philadelphia")
    calendar = load_calendar(profile)
    requests = generate(300, seed=6, end=END)
    log = generate_contacts(requests, calendar=calendar, end=END, weeks=1, seed=6)
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    store = EmbeddedStore(tmp_path / "store", profile)
    ingest_contacts(path, store)
    sheets = contact_sheets(store.contacts(), None, timezone=profile.timezone,
                            calendar=calendar, fiscal_year_start=(7, 1),
                            start=END.date().replace(day=1), end=END.date())
    assert sheets and all("100% of the contacts are SYNTHETIC" in " ".join(s.lines)
                          for s in sheets)
    res = CliRunner().invoke(cli, ["--store", str(tmp_path / "store"), "report", "inquiries"])
    assert res.exit_code == 0 and "SYNTHETIC" in res.output


def test_demo_if_empty_leaves_a_filled_store_without_reading_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``demo --if-empty`` (run by ``scripts/app.sh`` on every start) asks the store
    whether it holds a request, without reading the request table."""
    from click.testing import CliRunner

    from hotspot311.cli.main import cli

    store = EmbeddedStore(tmp_path / "store", load_profile("philadelphia"))
    store.ensure_profile_layers()
    ingest(ROOT / "data" / "philadelphia" / "requests" / "parks-maintenance.csv", store)
    before = len(store.batches())

    def refuse(self: EmbeddedStore, *args: object, **kwargs: object) -> None:
        raise AssertionError("demo --if-empty read the whole request table")

    monkeypatch.setattr(EmbeddedStore, "requests", refuse)
    res = CliRunner().invoke(cli, ["--store", str(tmp_path / "store"), "demo", "--if-empty"])
    assert res.exit_code == 0, res.output
    assert "already holds requests; nothing to do" in res.output
    assert len(EmbeddedStore(tmp_path / "store", load_profile("philadelphia")).batches()) \
        == before
