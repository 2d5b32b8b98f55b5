"""No failure shows a traceback (issue 20, part 4).

An unexpected error prints one line naming the command and what failed, writes the
traceback to a log file whose path the line gives, and exits 1; ``--debug`` (or
``HOTSPOT311_DEBUG=1``) shows the traceback inline instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotspot311.cli import requests as requests_cmds
from hotspot311.cli.main import main
from hotspot311.settings import get_settings

ROOT = Path(__file__).resolve().parents[3]
LOG = re.compile(r"the traceback is in (\S+\.log);")


@pytest.fixture(autouse=True)
def log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "logs"
    monkeypatch.setenv("HOTSPOT311_LOG_DIR", str(directory))
    monkeypatch.delenv("HOTSPOT311_DEBUG", raising=False)
    get_settings.cache_clear()
    yield directory
    get_settings.cache_clear()


def boom(*args: object, **kwargs: object) -> None:
    raise ValueError("Length of values (1) does not match length of index (0)")


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_unexpected_error_is_one_line_and_a_log(tmp_path: Path, log_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(requests_cmds, "ingest", boom)
    src = tmp_path / "in.csv"
    src.write_text("service_request_id,requested_datetime,lat,lon\n1,2024-01-01,40,-75\n")
    code, _, err = run_main(["--store", str(tmp_path / "s"), "ingest", str(src)], capsys)
    assert code == 1
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: hotspot311 ingest failed unexpectedly (ValueError: Length "
                          "of values (1) does not match length of index (0)); ")
    assert "--debug" in err
    match = LOG.search(err)
    assert match, err
    log = Path(match.group(1))
    assert log.parent == log_dir
    text = log.read_text(encoding="utf-8")
    assert "command: hotspot311 ingest" in text and "Traceback" in text
    assert "ValueError: Length of values" in text and "in boom" in text


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_shows_the_traceback(tmp_path: Path, log_dir: Path, how: str,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(requests_cmds, "ingest", boom)
    src = tmp_path / "in.csv"
    src.write_text("service_request_id,requested_datetime,lat,lon\n1,2024-01-01,40,-75\n")
    args = ["--store", str(tmp_path / "s"), "ingest", str(src)]
    if how == "flag":
        args = ["--debug", *args]
    else:
        monkeypatch.setenv("HOTSPOT311_DEBUG", "1")
        get_settings.cache_clear()
    code, _, err = run_main(args, capsys)
    assert code == 1
    assert "Traceback (most recent call last)" in err and "in boom" in err
    assert err.strip().splitlines()[-1].startswith("error: hotspot311 ingest failed")
    assert not log_dir.exists()


def test_error_outside_a_command_is_reported_too(tmp_path: Path, log_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from hotspot311.cli import base

    def broken_init(self: object, *args: object, **kwargs: object) -> None:
        raise RuntimeError("settings exploded")

    monkeypatch.setattr(base.Context, "__init__", broken_init)
    code, _, err = run_main(["--store", str(tmp_path / "s"), "export", "requests",
                             "--format", "csv", "--output", "x.csv"], capsys)
    assert code == 1 and "Traceback" not in err
    assert err.startswith("error: hotspot311 export requests failed unexpectedly "
                          "(RuntimeError: settings exploded)")
    assert LOG.search(err) and Path(LOG.search(err).group(1)).exists()  # type: ignore[union-attr]


def test_unwritable_log_directory_falls_back_to_the_temporary_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("HOTSPOT311_LOG_DIR", str(blocker / "logs"))  # under a file
    get_settings.cache_clear()
    monkeypatch.setattr(requests_cmds, "ingest", boom)
    src = tmp_path / "in.csv"
    src.write_text("service_request_id,requested_datetime,lat,lon\n1,2024-01-01,40,-75\n")
    code, _, err = run_main(["--store", str(tmp_path / "s"), "ingest", str(src)], capsys)
    assert code == 1
    match = LOG.search(err)
    assert match and "hotspot311-logs" in match.group(1)
    Path(match.group(1)).unlink()


def test_expected_errors_keep_their_messages_and_codes(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    code, _, err = run_main(["--store", str(tmp_path / "s"), "ingest",
                             str(tmp_path / "missing.csv")], capsys)
    assert code == 2 and err.startswith("error: path:") and "unexpectedly" not in err
    code, _, err = run_main(["ingest", "--no-such-option"], capsys)
    assert code == 2 and "No such option" in err


def test_real_process_prints_no_traceback(tmp_path: Path, log_dir: Path) -> None:
    """The installed entry point, in its own process, on a store that is a file."""
    store = tmp_path / "store"
    store.write_text("not a store")
    src = tmp_path / "in.csv"
    src.write_text("service_request_id,requested_datetime,lat,lon\n1,2024-01-01,40,-75\n")
    code = ("import sys; import hotspot311.cli.requests as r\n"
            "def boom(*a, **k): raise KeyError('missing_column')\n"
            "r.ingest = boom\n"
            "from hotspot311.cli.main import main; main(sys.argv[1:])\n")
    env = {**os.environ, "HOTSPOT311_LOG_DIR": str(log_dir), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, "--store", str(tmp_path / "s"),
                           "ingest", str(src)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "hotspot311 ingest failed unexpectedly (KeyError: 'missing_column')" in proc.stderr
    assert len(list(log_dir.glob("error-*.log"))) == 1
    # a store path that is a file: an expected store error, exit 3, no log
    proc = subprocess.run([sys.executable, "-m", "hotspot311", "--store", str(store),
                           "status"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
