"""The embedded store's request parts: small writes, deletion files, compaction, the layout
before parts, and a real kill of a write that supersedes rows of several parts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clustering.problems import ProblemAssigner, ProblemRules, assign_problems
from geo.ingest.pipeline import ingest
from geo.store.embedded import EmbeddedStore
from geo.store.embedded_parts import (
    MAX_SMALL_PARTS,
    Part,
    RequestParts,
    _points_to_arrow,
    compaction_plan,
    part_table,
)
from geo.store.query import RequestQuery
from geo.store.reads import RequestFilter
from hotspot311.cli.demo import generate
from tests.geo.store.stores import NOW, TESTVILLE, write_csv

ROOT = Path(__file__).resolve().parents[3]
ASSIGNER = ProblemAssigner(ProblemRules.for_city(TESTVILLE))


def _rows(n: int, seed: int) -> pd.DataFrame:
    frame = generate(n, seed=seed)
    frame["updated_datetime"] = "2024-05-20T10:00:00Z"
    frame["requested_datetime"] = pd.to_datetime(frame["requested_datetime"], utc=True).clip(
        upper=pd.Timestamp("2024-05-19", tz="UTC")).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return frame


def _manifest(root: Path) -> dict[str, object]:
    current = (root / "CURRENT").read_text().strip()
    return dict(json.loads((root / "snapshots" / current / "manifest.json").read_text()))


def _parts(root: Path) -> list[Part]:
    return [Part.from_dict(e) for e in _manifest(root)["request_parts"]]  # type: ignore[union-attr]


def _content(store: EmbeddedStore) -> pd.DataFrame:
    """Every stored request in id order, without what depends on the batch."""
    frame = store.requests()
    wkb = frame.geometry.to_wkb()
    frame = pd.DataFrame(frame.drop(columns=["batch_id", "geometry"]))
    frame["geometry"] = wkb.to_numpy()
    frame = frame.sort_values("service_request_id").reset_index(drop=True)
    frame["problem_id"] = frame["problem_id"].astype(object).where(frame["problem_id"].notna())
    return frame


def _same(a: EmbeddedStore, b: EmbeddedStore) -> None:
    left, right = _content(a), _content(b)
    assert list(left.columns) == list(right.columns)
    pd.testing.assert_frame_equal(left, right, check_dtype=False)


def test_small_batches_read_as_one_big_ingest(tmp_path: Path) -> None:
    rows = _rows(3000, seed=11)
    one = EmbeddedStore(tmp_path / "one", TESTVILLE)
    ingest(write_csv(tmp_path / "all.csv", rows.to_dict("records")), one, now=NOW,
           problems=ASSIGNER)
    many = EmbeddedStore(tmp_path / "many", TESTVILLE)
    n_batches = MAX_SMALL_PARTS + 4
    counts = []
    for i, chunk in enumerate(np.array_split(np.arange(len(rows)), n_batches)):
        path = write_csv(tmp_path / f"b{i}.csv", rows.iloc[chunk].to_dict("records"))
        report = ingest(path, many, now=NOW, problems=ASSIGNER)
        assert report.balanced
        counts.append(len(_parts(many.root)))
    # the second write changes half the store: the problem rule recomputes the city and
    # the store is written again as one part; then one part a write, until there are too
    # many small ones: then they are merged into one
    assert counts[:MAX_SMALL_PARTS + 1] == [1, *range(1, MAX_SMALL_PARTS + 1)]
    assert max(counts) == MAX_SMALL_PARTS and counts[MAX_SMALL_PARTS + 1] == 1
    _same(many, one)
    assert many.count() == one.count() == len(many.requests())
    # every read goes through the parts: the same answers as the one-part store
    filt = RequestFilter(status="open")
    pd.testing.assert_frame_equal(
        many.select_requests(filt, ["service_request_id", "status"]).sort_values(
            "service_request_id").reset_index(drop=True),
        one.select_requests(filt, ["service_request_id", "status"]).sort_values(
            "service_request_id").reset_index(drop=True))
    pd.testing.assert_frame_equal(many.group_counts(RequestFilter(), "service_name"),
                                  one.group_counts(RequestFilter(), "service_name"))
    query = RequestQuery(limit=50)
    pd.testing.assert_frame_equal(many.query_requests(query).drop(columns=[], errors="ignore"),
                                  one.query_requests(query))
    reader = many.request_reader()
    got = reader.read(["service_request_id", "service_name"], categories=["service_name"])
    assert len(got) == one.count() and str(got["service_name"].dtype) == "category"
    # the same file again changes nothing and writes no part
    parts = _parts(many.root)
    again = ingest(tmp_path / "all.csv", many, now=NOW, problems=ASSIGNER)
    assert again.result.unchanged == one.count() and _parts(many.root) == parts


def test_updates_and_problem_changes_across_parts(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store", TESTVILLE)
    lon, lat, step = -75.15, 39.95, 0.0002  # about 17 m; the rule links within 30 m

    def row(rid: str, steps: float, day: int, upd: str = "2024-05-20 10:00") -> dict[str, object]:
        return {"service_request_id": rid, "requested_datetime": f"2024-05-{day:02d} 10:00",
                "updated_datetime": upd, "status": "open", "description": "Street Light Outage",
                "lon": lon + steps * step, "lat": lat}

    background = _rows(400, seed=3).to_dict("records")
    batches = [
        [row("A1", 0, 1), row("A2", 1, 2), *background[:300]],       # part 1
        [row("B1", 3, 2), row("B2", 4, 3), *background[300:]],       # part 2: apart from A
        [row("C1", 2, 3)],                                           # bridges A and B
        [row("C1", 200, 3, upd="2024-05-21 10:00")],                 # moves away: split
        [row("A2", 1, 2, upd="2024-05-22 10:00"), row("B2", 40, 3, upd="2024-05-22 10:00")],
    ]
    expected_b = ["B1", "A1", "B1", "B1"]
    for i, rows in enumerate(batches):
        ingest(write_csv(tmp_path / f"s{i}.csv", rows), store, now=NOW, problems=ASSIGNER)
        frame = store.requests()
        ids = dict(zip(frame["service_request_id"], frame["problem_id"], strict=True))
        scratch = dict(zip(frame["service_request_id"],
                           assign_problems(frame, ASSIGNER.rules), strict=True))
        assert ids == scratch, f"after batch {i}"
        assert frame["service_request_id"].is_unique
        if i >= 1:
            assert ids["B1"] == expected_b[i - 1], f"after batch {i}"
        if i == 2:
            # B1 and B2 were stored in part 2 and changed problem: written again in the
            # new part, their old rows marked superseded in part 2's deletion file
            parts = _parts(store.root)
            assert parts[1].deleted == 2 and parts[0].deleted == 0
            current = store.root / "snapshots" / (store.root / "CURRENT").read_text().strip()
            gone = np.load(current / str(parts[1].deletion_file))
            view = RequestParts(current, [Part(parts[1].file, parts[1].rows)])
            ids_in_part = view.table(["service_request_id"]).column(0).to_numpy(
                zero_copy_only=False)
            assert sorted(ids_in_part[gone]) == ["B1", "B2"]
            last = RequestParts(current, [parts[-1]]).table(["service_request_id"])
            assert sorted(last.column(0).to_pylist()) == ["B1", "B2", "C1"]
    assert len(store.requests()) == store.count() == 405


def test_compaction_keeps_content(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store", TESTVILLE)
    rows = _rows(1200, seed=5)
    ingest(write_csv(tmp_path / "base.csv", rows.to_dict("records")), store, now=NOW)
    assert len(_parts(store.root)) == 1
    # update 61% of the rows: the part is rewritten without its deleted rows
    changed = rows.sample(frac=0.61, random_state=1).copy()
    changed["status"] = "closed"
    changed["closed_datetime"] = "2024-05-19T12:00:00Z"
    changed["updated_datetime"] = "2024-05-21T10:00:00Z"
    before_counts = store.count()
    ingest(write_csv(tmp_path / "upd.csv", changed.to_dict("records")), store, now=NOW)
    parts = _parts(store.root)
    assert all(p.deleted == 0 for p in parts), parts
    assert sum(p.rows for p in parts) == store.count() == before_counts
    frame = store.requests().set_index("service_request_id")
    assert (frame.loc[changed["service_request_id"].astype(str), "status"] == "closed").all()
    assert frame.index.is_unique
    # a smaller update leaves a deletion file; reads drop the superseded rows
    few = rows[~rows["service_request_id"].isin(changed["service_request_id"])].head(30).copy()
    few["updated_datetime"] = "2024-05-22T10:00:00Z"
    few["description"] = "moved on"
    ingest(write_csv(tmp_path / "few.csv", few.to_dict("records")), store, now=NOW)
    parts = _parts(store.root)
    assert sum(p.deleted for p in parts) == 30 and store.count() == before_counts
    frame = store.requests()
    assert frame["service_request_id"].is_unique and len(frame) == before_counts
    assert (frame.set_index("service_request_id").loc[
        few["service_request_id"].astype(str), "description"] == "moved on").all()


def test_compaction_plan() -> None:
    big = Part("big", 500_000, 1000)
    small = [Part(f"s{i}", 1000) for i in range(MAX_SMALL_PARTS)]
    assert compaction_plan([big, *small]) == []
    assert compaction_plan([big, *small, Part("x", 10)]) == [list(range(1, MAX_SMALL_PARTS + 2))]
    assert compaction_plan([Part("half", 100, 50), Part("b", 10)]) == [[0]]


def _as_old_layout(root: Path) -> pd.DataFrame:
    """Turn the current snapshot of a store into the layout before parts (one
    ``requests.parquet``, as the earlier code wrote it) and return its requests."""
    store = EmbeddedStore(root, TESTVILLE)
    frame = store.requests()
    current = root / "snapshots" / (root / "CURRENT").read_text().strip()
    manifest = json.loads((current / "manifest.json").read_text())
    for entry in manifest.pop("request_parts"):
        (current / entry["file"]).unlink()
        (current / entry["file"].replace(".parquet", ".deleted.npy")).unlink(missing_ok=True)
    manifest.pop("request_part_next", None)
    (current / "manifest.json").write_text(json.dumps(manifest))
    frame.to_parquet(current / "requests.parquet", index=False)
    return frame


def test_a_store_of_the_old_layout_opens_and_is_migrated(tmp_path: Path) -> None:
    root = tmp_path / "store"
    rows = _rows(500, seed=8)
    store = EmbeddedStore(root, TESTVILLE)
    ingest(write_csv(tmp_path / "a.csv", rows.iloc[:300].to_dict("records")), store, now=NOW,
           problems=ASSIGNER)
    ingest(write_csv(tmp_path / "b.csv", rows.iloc[300:].to_dict("records")), store, now=NOW,
           problems=ASSIGNER)
    reference = _content(store)
    before = _as_old_layout(root)
    old = EmbeddedStore(root, TESTVILLE)
    pd.testing.assert_frame_equal(old.requests(), before)
    assert old.count() == 500
    assert len(old.select_requests(RequestFilter(), ["service_request_id"])) == 500
    assert len(old.query_requests(RequestQuery(limit=20))) == 20
    # the next write moves it to parts: the old file is gone from the new snapshot
    upd = rows.iloc[:5].copy()
    upd["updated_datetime"] = "2024-05-23T10:00:00Z"
    upd["description"] = "updated"
    report = ingest(write_csv(tmp_path / "u.csv", upd.to_dict("records")), old, now=NOW,
                    problems=ASSIGNER)
    assert report.result.updated == 5
    current = root / "snapshots" / (root / "CURRENT").read_text().strip()
    assert not (current / "requests.parquet").exists()
    assert [p.live for p in _parts(root)] == [500]
    after = _content(EmbeddedStore(root, TESTVILLE))
    changed = after["service_request_id"].isin(upd["service_request_id"].astype(str))
    assert (after.loc[changed, "description"] == "updated").all()
    pd.testing.assert_frame_equal(
        after.loc[~changed].drop(columns=["row_hash"]).reset_index(drop=True),
        reference.loc[~reference["service_request_id"].isin(
            upd["service_request_id"].astype(str))].drop(columns=["row_hash"]).reset_index(
            drop=True), check_dtype=False)


_KILL_SCRIPT = """
import sys
from geo.ingest.pipeline import ingest
from geo.store.embedded import EmbeddedStore
from clustering.problems import ProblemAssigner, ProblemRules
from tests.geo.store.stores import NOW, TESTVILLE
store = EmbeddedStore(sys.argv[1], TESTVILLE)
ingest(sys.argv[2], store, now=NOW, problems=ProblemAssigner(ProblemRules.for_city(TESTVILLE)))
"""


@pytest.mark.slow
@pytest.mark.parametrize("new_rows", [60_000, 3_000], ids=["whole-city", "one-part"])
def test_killed_update_over_parts_leaves_previous_state(tmp_path: Path, new_rows: int) -> None:
    """A write that changes most of the store rewrites it whole (the problem rule
    recomputes the city); a smaller one adds a part and deletion files. Either way a
    SIGKILL at any moment leaves the previous snapshot."""
    root = tmp_path / "store"
    store = EmbeddedStore(root, TESTVILLE)
    rows = _rows(9000, seed=21)
    for i, chunk in enumerate(np.split(np.arange(len(rows)), [6000, 7500])):
        ingest(write_csv(tmp_path / f"p{i}.csv", rows.iloc[chunk].to_dict("records")), store,
               now=NOW, problems=ASSIGNER)
    assert len(_parts(root)) == 3
    before, manifest = store.requests(), _manifest(root)
    # an update of rows in every part plus many new rows: deletion files and a new part
    big = _rows(new_rows, seed=22)
    big["service_request_id"] = [f"N{i}" for i in range(len(big))]
    upd = rows.iloc[::50].copy()
    upd["updated_datetime"] = "2024-05-24T10:00:00Z"
    upd["description"] = "killed?"
    path = write_csv(tmp_path / "big.csv", pd.concat([upd, big]).to_dict("records"))
    snaps = root / "snapshots"
    killed_mid_write = 0
    for delay in (None, 0.5, 1.5, 3.0):
        proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(root), str(path)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        if delay is None:  # wait until the new snapshot is being written, then kill
            while not any(p.name.startswith(".tmp-") for p in snaps.iterdir()):
                assert proc.poll() is None, "ingest finished before it could be killed"
                assert time.monotonic() < deadline
                time.sleep(0.002)
            killed_mid_write += 1
        else:
            time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        reopened = EmbeddedStore(root, TESTVILLE)
        if delay is not None and _manifest(root) != manifest:
            # the commit landed before the kill (or the process finished): the whole new
            # snapshot, never part of it; later rounds would kill nothing
            assert len(reopened.batches()) == 4
            assert len(reopened.requests()) == len(before) + new_rows
            assert (reopened.requests().set_index("service_request_id").loc[
                upd["service_request_id"].astype(str), "description"] == "killed?").all()
            break
        assert proc.returncode == -signal.SIGKILL
        pd.testing.assert_frame_equal(reopened.requests(), before)
        assert _manifest(root) == manifest and len(reopened.batches()) == 3
    assert killed_mid_write == 1
    # the next writer cleans up and does the whole write
    report = ingest(path, EmbeddedStore(root, TESTVILLE), now=NOW, problems=ASSIGNER)
    assert report.result.updated + report.result.inserted in (0, len(upd) + len(big))
    frame = EmbeddedStore(root, TESTVILLE).requests()
    assert len(frame) == len(rows) + len(big) and frame["service_request_id"].is_unique
    assert (frame["description"] == "killed?").sum() == len(upd)
    assert not any(p.name.startswith(".tmp-") for p in snaps.iterdir())
    deleted = sum(p.deleted for p in _parts(root))
    assert deleted == 0 if new_rows > len(rows) else deleted >= len(upd)


def test_a_part_whose_rows_are_all_superseded_goes(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store", TESTVILLE)
    rows = _rows(120, seed=4)
    ingest(write_csv(tmp_path / "a.csv", rows.iloc[:100].to_dict("records")), store, now=NOW)
    ingest(write_csv(tmp_path / "b.csv", rows.iloc[100:].to_dict("records")), store, now=NOW)
    first, second = _parts(store.root)
    upd = rows.iloc[100:].copy()
    upd["updated_datetime"] = "2024-05-25T10:00:00Z"
    upd["description"] = "again"
    ingest(write_csv(tmp_path / "c.csv", upd.to_dict("records")), store, now=NOW)
    parts = _parts(store.root)
    assert parts[0].file == first.file and second.file not in [p.file for p in parts]
    assert [p.rows for p in parts] == [100, 20] and store.count() == 120
    frame = store.requests()
    assert (frame["description"] == "again").sum() == 20 and frame["service_request_id"].is_unique


def test_part_table_of_points_equals_geopandas_conversion() -> None:
    """The points' WKB built in NumPy gives the table geopandas' GeoParquet conversion
    gives (columns, types, bytes and metadata), and anything but plain points (a
    missing, empty, 3-D or other geometry) goes through geopandas."""
    import geopandas as gpd
    import shapely
    from geopandas.io.arrow import _geopandas_to_arrow

    rng = np.random.default_rng(3)
    n = 5_000
    frame = gpd.GeoDataFrame(
        {"service_request_id": pd.array([f"R{i}" for i in range(n)], dtype="str"),
         "x": rng.normal(size=n), "when": pd.Timestamp("2026-01-01", tz="UTC")},
        geometry=gpd.points_from_xy(rng.uniform(-75.3, -74.9, n), rng.uniform(39.8, 40.1, n)),
        crs="EPSG:4326")
    frame = frame[["service_request_id", "geometry", "x", "when"]]  # geometry not last
    table = part_table(frame)
    expected = _geopandas_to_arrow(frame, index=False)
    assert table.drop_columns(["_row"]).equals(expected, check_metadata=True)
    assert table.column("geometry").to_pylist() == list(shapely.to_wkb(frame.geometry.array))
    assert _points_to_arrow(frame) is not None
    for odd in (None, shapely.Point(), shapely.Point(1, 2, 3), shapely.box(0, 0, 1, 1)):
        other = frame.copy()
        other.loc[7, "geometry"] = odd
        assert _points_to_arrow(other) is None
        assert part_table(other).drop_columns(["_row"]).equals(
            _geopandas_to_arrow(other, index=False), check_metadata=True)
