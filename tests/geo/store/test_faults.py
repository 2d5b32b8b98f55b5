"""Faults on both stores (issue 20, part 5): each gives a clear error and leaves the
previous state readable and intact.

* a full disk: the store on a small tmpfs (``mount -t tmpfs -o size=…``, as root) filled
  with a file until the kernel answers ENOSPC; for PostGIS, the tables moved to a
  tablespace on such a tmpfs;
* a read-only store: the tmpfs remounted read-only; for PostGIS, a database whose
  sessions are read-only (``default_transaction_read_only``);
* a truncated or corrupt Parquet file in the embedded store's current snapshot;
* the PostGIS server stopped (``pg_ctl stop -m immediate``, as a crash) while a batch is
  half written: the batch waits on a table lock held by the test, so it is stopped at a
  known point, after its requests and quarantine rows went in and before it finished.

Mounting needs root; elsewhere these tests are skipped with the reason (and fail under
``CI=true``, like the other tests that need the machine's help).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from geo.ingest.pipeline import ingest
from geo.store.embedded import EmbeddedStore
from hotspot311.cli.main import cli
from hotspot311.errors import StoreConnectionError, StoreError
from layers.profile import CityProfile, load_profile
from tests.conftest import utm_to_lonlat, write_squares
from tests.geo.store.stores import NOW
from tests.postgis_server import (
    PostgresServer,
    ServerUnavailable,
    _owner,
    start_server,
)


def need(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (CI=true: required)", pytrace=False)
    pytest.skip(reason)


@contextmanager
def small_filesystem(size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on a new directory (unmounted afterwards)."""
    mount = Path(tempfile.mkdtemp(prefix="hotspot311-tmpfs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           str(mount)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        mount.rmdir()
        need(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], capture_output=True,
                       check=False)
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)
        shutil.rmtree(mount, ignore_errors=True)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` with one file until it has no space left."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1):
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as err:
                    assert err.errno == errno.ENOSPC, err
                    break
    finally:
        os.close(fd)
    return filler


def requests_csv(path: Path, ids: range) -> Path:
    """Requests inside square A of the test city (one extra column)."""
    rows = []
    for i in ids:
        lon, lat = utm_to_lonlat(500100 + (i % 30) * 25, 4400100 + (i // 30 % 30) * 25)
        rows.append({"service_request_id": f"R{i}", "requested_datetime": "2024-05-01T10:00:00",
                     "updated_datetime": f"2024-05-02T10:{i % 60:02d}:00", "lat": lat,
                     "lon": lon, "address": f"{i} MAIN ST", "description": "x" * 40,
                     "ward_note": f"n{i}"})
    rows.append({"service_request_id": f"Q{ids.start}", "requested_datetime": "soon"})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def city(tmp_path: Path) -> tuple[CityProfile, Path]:
    path = write_squares(tmp_path)
    return load_profile(path), path


def snapshot_state(root: Path) -> tuple[str, list[str]]:
    return ((root / "CURRENT").read_text(), sorted(p.name for p in (root / "snapshots").iterdir()))


def same_frames(a: pd.DataFrame, b: pd.DataFrame) -> None:
    key = "service_request_id" if "service_request_id" in a else "quarantine_id"
    pd.testing.assert_frame_equal(
        pd.DataFrame(a).drop(columns="geometry", errors="ignore").sort_values(key)
        .reset_index(drop=True),
        pd.DataFrame(b).drop(columns="geometry", errors="ignore").sort_values(key)
        .reset_index(drop=True))


def cli_ingest(store: Path | str, profile: Path, src: Path) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["--store", str(store), "--city", str(profile), "ingest",
                                   str(src)], catch_exceptions=False)
    return res.exit_code, res.output


# --- the embedded store ------------------------------------------------------------------
def test_embedded_full_disk(tmp_path: Path, city: tuple[CityProfile, Path]) -> None:
    profile, profile_file = city
    first = requests_csv(tmp_path / "first.csv", range(0, 50))
    second = requests_csv(tmp_path / "second.csv", range(50, 2000))
    with small_filesystem("4m") as mnt:
        root = mnt / "store"
        store = EmbeddedStore(root, profile)
        ingest(first, store, now=NOW)
        before, before_q, state = store.requests(), store.quarantine(), snapshot_state(root)
        filler = fill(mnt)
        with pytest.raises(StoreError, match="No space left on device") as info:
            ingest(second, store, now=NOW)
        assert "previous state is current" in str(info.value)
        assert snapshot_state(root) == state  # nothing half-written left behind
        same_frames(store.requests(), before)
        same_frames(store.quarantine(), before_q)
        code, out = cli_ingest(root, profile_file, second)
        assert code == 3 and "store error:" in out and "No space left on device" in out
        assert "Traceback" not in out
        assert snapshot_state(root) == state
        filler.unlink()  # space again: the same batch goes in
        report = ingest(second, store, now=NOW)
        assert report.result.inserted == 1950 and len(store.requests()) == 2000


def test_embedded_read_only(tmp_path: Path, city: tuple[CityProfile, Path]) -> None:
    profile, profile_file = city
    first = requests_csv(tmp_path / "first.csv", range(0, 50))
    second = requests_csv(tmp_path / "second.csv", range(50, 80))
    with small_filesystem("16m") as mnt:
        root = mnt / "store"
        store = EmbeddedStore(root, profile)
        ingest(first, store, now=NOW)
        before, state = store.requests(), snapshot_state(root)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        with pytest.raises(StoreError, match="Read-only file system"):
            ingest(second, store, now=NOW)
        code, out = cli_ingest(root, profile_file, second)
        assert code == 3 and "Read-only file system" in out and "Traceback" not in out
        reader = EmbeddedStore(root, profile)  # still readable, as it was
        same_frames(reader.requests(), before)
        assert snapshot_state(root) == state and reader.count() == 50


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_embedded_corrupt_parquet_in_the_current_snapshot(
        tmp_path: Path, city: tuple[CityProfile, Path], damage: str) -> None:
    profile, profile_file = city
    root = tmp_path / "store"
    store = EmbeddedStore(root, profile)
    ingest(requests_csv(tmp_path / "first.csv", range(0, 50)), store, now=NOW)
    previous, before = (root / "CURRENT").read_text().strip(), store.requests()
    ingest(requests_csv(tmp_path / "second.csv", range(50, 80)), store, now=NOW)
    current = (root / "CURRENT").read_text().strip()
    manifest = json.loads((root / "snapshots" / current / "manifest.json").read_text())
    part = manifest["request_parts"][-1]["file"]  # the part the second ingest wrote
    target = root / "snapshots" / current / part
    data = target.read_bytes()
    target.unlink()  # a new file: the earlier snapshots keep their own (hard-linked) copy
    target.write_bytes({"truncated": data[: len(data) // 2], "garbage": os.urandom(len(data)),
                        "empty": b""}[damage])
    state = snapshot_state(root)
    with pytest.raises(StoreError) as info:
        store.requests()
    message = str(info.value)
    assert f"snapshots/{current}/{part} cannot be read" in message
    assert f"earlier snapshots: {previous}" in message and "CURRENT" in message
    with pytest.raises(StoreError, match="cannot be read"):
        ingest(requests_csv(tmp_path / "third.csv", range(80, 90)), store, now=NOW)
    assert snapshot_state(root) == state  # the failed write added nothing
    res = CliRunner().invoke(cli, ["--store", str(root), "--city", str(profile_file),
                                   "status"], catch_exceptions=False)
    assert res.exit_code == 3 and "cannot be read" in res.output
    assert "Traceback" not in res.output
    # the previous state is intact: going back to it, as the message says, reads it whole
    (root / "CURRENT").write_text(previous + "\n")
    same_frames(EmbeddedStore(root, profile).requests(), before)


# --- the PostGIS store -------------------------------------------------------------------
@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A PostGIS server of this test's own (it is stopped and started again)."""
    try:
        server = start_server()
    except ServerUnavailable as err:
        need(f"PostGIS tests cannot run: {err}")
    try:
        yield server
    finally:
        server.stop()


def open_postgis(url: str, profile: CityProfile) -> object:
    from geo.store.postgis import PostGISStore

    return PostGISStore.open(url, profile)


def state_of(store: object) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    return (store.requests(), store.quarantine(), len(store.batches()))  # type: ignore[attr-defined]


@pytest.mark.postgis
def test_postgis_server_stopped_mid_batch(tmp_path: Path, city: tuple[CityProfile, Path],
                                          own_server: PostgresServer) -> None:
    profile, _ = city
    url = own_server.clone()
    store = open_postgis(url, profile)
    ingest(requests_csv(tmp_path / "first.csv", range(0, 50)), store,  # type: ignore[arg-type]
           now=NOW)
    before, before_q, n_batches = state_of(store)
    outcome: dict[str, BaseException] = {}

    def write() -> None:
        try:
            ingest(requests_csv(tmp_path / "second.csv", range(50, 3000)), store,  # type: ignore[arg-type]
                   now=NOW)
        except BaseException as err:  # recorded for the test thread
            outcome["error"] = err

    # the batch ends by recording itself in `batches` (checked again at commit): hold that
    # table, so the batch stops there, its rows written and not committed
    blocker = psycopg.connect(url, autocommit=True)
    blocker.execute("BEGIN")
    blocker.execute("LOCK TABLE batches IN ACCESS EXCLUSIVE MODE")
    writer = threading.Thread(target=write)
    writer.start()
    deadline = time.monotonic() + 120
    while True:
        row = blocker.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND pid <> pg_backend_pid()").fetchone()
        if row and row[0]:
            break
        assert writer.is_alive(), outcome
        assert time.monotonic() < deadline, "the batch never reached the batches table"
        time.sleep(0.05)  # polling the server, not waiting for a fixed time
    own_server.kill()
    with contextlib.suppress(psycopg.Error):
        blocker.close()
    writer.join(timeout=120)
    assert not writer.is_alive()
    error = outcome.get("error")
    assert isinstance(error, StoreConnectionError), repr(error)
    assert "connection to the server was lost" in str(error)
    assert "rolled back" in str(error)
    own_server.start()
    again = open_postgis(url, profile)
    after, after_q, after_batches = state_of(again)
    same_frames(after, before)
    same_frames(after_q, before_q)
    assert after_batches == n_batches
    # and the store works: the same batch goes in whole
    report = ingest(tmp_path / "second.csv", again, now=NOW)  # type: ignore[arg-type]
    assert report.result.inserted == 2950
    again.close()  # type: ignore[attr-defined]
    store.close()  # type: ignore[attr-defined]


@pytest.mark.postgis
def test_postgis_read_only_database(tmp_path: Path, city: tuple[CityProfile, Path],
                                    postgis_server: PostgresServer) -> None:
    profile, _ = city
    url = postgis_server.clone()
    try:
        store = open_postgis(url, profile)
        ingest(requests_csv(tmp_path / "first.csv", range(0, 50)), store,  # type: ignore[arg-type]
               now=NOW)
        before = state_of(store)
        store.close()  # type: ignore[attr-defined]
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(postgis_server.url(), autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on")
                          .format(sql.Identifier(name)))
        store = open_postgis(url, profile)  # opening a current store only reads
        with pytest.raises(StoreError, match="read-only transaction") as info:
            ingest(requests_csv(tmp_path / "second.csv", range(50, 80)), store,  # type: ignore[arg-type]
                   now=NOW)
        assert "rolled back" in str(info.value)
        after = state_of(store)
        same_frames(after[0], before[0])
        same_frames(after[1], before[1])
        assert after[2] == before[2]
        store.close()  # type: ignore[attr-defined]
    finally:
        postgis_server.drop(url)


@pytest.mark.postgis
def test_postgis_full_disk(tmp_path: Path, city: tuple[CityProfile, Path],
                           postgis_server: PostgresServer) -> None:
    profile, _ = city
    owner = _owner()
    url = postgis_server.clone()
    name = url.rsplit("/", 1)[1]
    with small_filesystem("24m") as mnt:
        space = mnt / "pg"
        space.mkdir()
        if owner is not None:
            os.chown(space, owner.pw_uid, owner.pw_gid)
        tablespace = f"small_{name}"
        admin = psycopg.connect(postgis_server.url(), autocommit=True)
        try:
            admin.execute(sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(
                sql.Identifier(tablespace), sql.Literal(str(space))))
            with psycopg.connect(url, autocommit=True) as conn:
                # the request and quarantine tables and their indexes live on the tmpfs
                for table in ("requests", "quarantine"):
                    conn.execute(sql.SQL("ALTER TABLE {} SET TABLESPACE {}").format(
                        sql.Identifier(table), sql.Identifier(tablespace)))
                    for (index,) in conn.execute(
                            "SELECT indexname FROM pg_indexes WHERE tablename = %s",
                            [table]).fetchall():
                        conn.execute(sql.SQL("ALTER INDEX {} SET TABLESPACE {}").format(
                            sql.Identifier(index), sql.Identifier(tablespace)))
            store = open_postgis(url, profile)
            ingest(requests_csv(tmp_path / "first.csv", range(0, 50)), store,  # type: ignore[arg-type]
                   now=NOW)
            before = state_of(store)
            filler = fill(mnt)
            with pytest.raises(StoreError, match="No space left on device") as info:
                ingest(requests_csv(tmp_path / "second.csv", range(50, 5000)),  # type: ignore[arg-type]
                       store, now=NOW)
            assert "rolled back" in str(info.value)
            after = state_of(store)
            same_frames(after[0], before[0])
            same_frames(after[1], before[1])
            assert after[2] == before[2]
            filler.unlink()
            report = ingest(tmp_path / "second.csv", store, now=NOW)  # type: ignore[arg-type]
            assert report.result.inserted == 4950
            store.close()  # type: ignore[attr-defined]
        finally:
            postgis_server.drop(url)
            admin.execute(sql.SQL("DROP TABLESPACE IF EXISTS {}").format(
                sql.Identifier(tablespace)))
            admin.close()
