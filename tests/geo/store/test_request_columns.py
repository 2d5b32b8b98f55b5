"""Reading some request columns, few-valued text as categoricals (embedded store)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from geo.store.base import as_categories, open_store
from geo.store.embedded import EmbeddedStore
from layers.profile import CityProfile, load_profile

TEXT = ["service_name", "status", "council_district"]


@pytest.fixture(scope="module")
def stored(app_store: Path) -> pd.DataFrame:
    return open_store(app_store, load_profile("philadelphia")).requests()


def test_categories_hold_the_same_values_as_plain_text(app_store: Path,
                                                       stored: pd.DataFrame) -> None:
    store = open_store(app_store, load_profile("philadelphia"))
    cols = ["service_request_id", *TEXT, "lat", "not_a_column"]
    out = store.request_columns(cols, categories=[*TEXT, "not_a_column"])
    assert list(out.columns) == ["service_request_id", *TEXT, "lat"]
    for col in TEXT:
        assert isinstance(out[col].dtype, pd.CategoricalDtype), col
        categories = list(out[col].cat.categories)
        assert categories == sorted(categories)
        pd.testing.assert_series_equal(out[col].astype(object), stored[col].astype(object),
                                       check_dtype=False)
    assert not isinstance(out["service_request_id"].dtype, pd.CategoricalDtype)
    assert out["service_request_id"].tolist() == stored["service_request_id"].tolist()


def test_sorting_by_a_category_sorts_by_the_text(app_store: Path) -> None:
    store = open_store(app_store, load_profile("philadelphia"))
    out = store.request_columns(["service_name"], categories=["service_name"])
    by_category = out.sort_values("service_name", kind="stable")["service_name"]
    by_text = out["service_name"].astype(str).sort_values(kind="stable")
    assert by_category.astype(str).tolist() == by_text.tolist()


def test_an_empty_store_gives_empty_categoricals(tmp_path: Path, phila: CityProfile) -> None:
    out = EmbeddedStore(tmp_path / "empty", phila).request_columns(
        ["status", "lat"], categories=["status"])
    assert out.empty and list(out.columns) == ["status", "lat"]
    assert isinstance(out["status"].dtype, pd.CategoricalDtype)


def test_as_categories_sorts_existing_categories_and_leaves_the_input() -> None:
    frame = pd.DataFrame({"s": pd.Categorical(["b", "a"], categories=["b", "a"]), "n": [1, 2]})
    out = as_categories(frame, ["s", "n"])
    assert list(out["s"].cat.categories) == ["a", "b"] and out["s"].tolist() == ["b", "a"]
    assert list(out["n"].cat.categories) == [1, 2]
    assert list(frame["s"].cat.categories) == ["b", "a"]  # the caller's frame untouched
    assert as_categories(frame, []) is frame


def test_a_reader_keeps_reading_its_snapshot_after_later_ingests(tmp_path: Path) -> None:
    from geo.ingest.pipeline import ingest
    from hotspot311.cli.demo import generate
    from tests.appstore import END, build_store

    store_dir = build_store(tmp_path, n=60)
    store = open_store(store_dir, load_profile("philadelphia"))
    snapshot = store_dir / "snapshots" / (store_dir / "CURRENT").read_text().strip()
    reader = store.request_reader()
    first = reader.read(["service_request_id", "status"], categories=["status"])
    for seed in (2, 3, 4, 5):  # enough commits to remove the first snapshot's directory
        csv = tmp_path / f"more-{seed}.csv"
        more = generate(30, seed=seed, end=END)
        more["service_request_id"] = [f"X{seed}-{i}" for i in range(len(more))]
        more.to_csv(csv, index=False)
        ingest(csv, store, now=END)
    assert store.count() > len(first) and not snapshot.exists()
    later = reader.read(["service_request_id", "lat"])
    assert later["service_request_id"].tolist() == first["service_request_id"].tolist()
    assert len(store.request_reader().read(["lat"])) == store.count()
