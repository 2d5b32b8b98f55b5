"""The layering contracts in pyproject.toml hold, and they catch an import that breaks them.

The source packages are copied to a temporary directory that comes first on the path, one
forbidden import is added to a copy, and ``lint-imports`` must then report that contract
broken (and only pass on the untouched copy).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hotspot311", "geo", "clustering", "layers", "reports")
LINT = Path(sys.executable).with_name("lint-imports")
CONTRACTS = {
    c["id"]: c["name"]
    for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
}


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=300)


def add_import(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def test_contracts_kept_on_the_real_tree(tree: Path) -> None:
    out = lint(tree)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # a store reaching up into clustering (the cycle the house issue removed)
        ("geo.store.base", "import clustering.run", "flow"),
        # a boundary layer reaching up into geo
        ("layers.profile", "import geo.ingest.model", "flow"),
        # one front door importing another
        ("hotspot311.cli.requests", "import hotspot311.web.maps", "flow"),
        # ingest importing the store that imports it
        ("geo.ingest.pipeline", "import geo.store.base", "geo-rooms"),
        # streamlit outside hotspot311.web
        ("reports.sla", "import streamlit", "streamlit-only-in-web"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tree: Path, module: str, line: str,
                                                contract: str) -> None:
    add_import(tree, module, line)
    out = lint(tree)
    assert out.returncode == 1, out.stdout + out.stderr
    text = " ".join(out.stdout.split())
    assert f"{CONTRACTS[contract]} BROKEN" in text
    assert "1 broken" in text
    assert module in text
