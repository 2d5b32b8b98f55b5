"""A validated batch makes its points when asked, and a write makes them for written rows only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

from geo.ingest import validate as validate_module
from geo.ingest.pipeline import ingest, prepare
from geo.ingest.validate import ValidatedBatch
from geo.store.embedded import EmbeddedStore
from tests.conftest import REQUESTS

PARKS = REQUESTS / "parks-maintenance.csv"


def _batch(store: EmbeddedStore, path: Path = PARKS) -> ValidatedBatch:
    batch, _ = prepare(path, store)
    return batch


def test_points_are_the_rows_coordinates(embedded: EmbeddedStore) -> None:
    batch = _batch(embedded)
    assert "requests" not in batch.__dict__  # nothing made by validation
    rows = batch.rows
    made = batch.requests
    assert made.crs == "EPSG:4326" and made.index.equals(rows.index)
    expected = shapely.points(rows["lon"].to_numpy(), rows["lat"].to_numpy())
    assert shapely.equals(made.geometry.to_numpy(), expected).all()
    pd.testing.assert_frame_equal(pd.DataFrame(made.drop(columns="geometry")), rows)
    assert batch.requests is made  # made once


def test_some_rows_get_points_without_the_rest(embedded: EmbeddedStore) -> None:
    batch = _batch(embedded)
    keep = np.zeros(len(batch.rows), dtype=bool)
    keep[[3, 10, 200]] = True
    some = batch.requests_where(keep)
    assert "requests" not in batch.__dict__
    assert list(some.index) == [3, 10, 200]
    whole = batch.requests[keep]
    assert shapely.equals(some.geometry.to_numpy(), whole.geometry.to_numpy()).all()
    pd.testing.assert_frame_equal(pd.DataFrame(some.drop(columns="geometry")),
                                  pd.DataFrame(whole.drop(columns="geometry")))


def test_an_edit_of_the_made_requests_is_what_is_read(embedded: EmbeddedStore) -> None:
    """The geocoder and the Open311 intake edit ``batch.requests``; the store must see it."""
    batch = _batch(embedded)
    batch.requests["geocode_match_type"] = "intersection"
    assert (batch.current()["geocode_match_type"] == "intersection").all()
    keep = np.ones(len(batch.rows), dtype=bool)
    assert (batch.requests_where(keep)["geocode_match_type"] == "intersection").all()


@pytest.mark.parametrize("changed", [0, 1])
def test_a_write_makes_points_for_the_written_rows_only(
        changed: int, embedded: EmbeddedStore, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ingest(PARKS, embedded)
    before = embedded.requests()
    source = pd.read_csv(PARKS, dtype=str, keep_default_na=False)
    if changed:
        source.loc[5, "status"] = "Open" if source.loc[5, "status"] != "Open" else "Closed"
        source.loc[5, "close_time"] = ""
    path = tmp_path / "parks-again.csv"
    source.to_csv(path, index=False)
    made: list[int] = []
    real = validate_module.with_points

    def counted(rows: pd.DataFrame) -> object:
        made.append(len(rows))
        return real(rows)

    monkeypatch.setattr(validate_module, "with_points", counted)
    report = ingest(path, embedded)
    assert (report.result.updated, report.result.unchanged) == (changed, len(before) - changed)
    assert sum(made) == changed  # no point made for an unchanged row
    after = embedded.requests()
    assert len(after) == len(before)
    if changed:
        row = after[after["service_request_id"] == source.loc[5, "request_id"]]
        assert row.geometry.iloc[0].equals(
            shapely.Point(float(source.loc[5, "lon"]), float(source.loc[5, "lat"])))
