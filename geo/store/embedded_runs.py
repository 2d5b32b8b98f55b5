"""Stored hotspot runs in the embedded store: three Parquet files per snapshot.

``runs.parquet`` (one row per run: id, time, parameters and snapshot as JSON text),
``run_hotspots.parquet`` (one row per hotspot: run, id, position, count, attributes as
JSON text, hull as WKB in the city CRS) and ``run_members.parquet`` (run, hotspot,
request id). The store writes them through its snapshot commit, so saving a run is as
atomic as any other write.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import pandas as pd

from geo.store.runs import PackedRun, runs_frame, unpack_hotspots
from hotspot311.errors import InputError

RUNS_FILE: Final = "runs.parquet"
HOTSPOTS_FILE: Final = "run_hotspots.parquet"
MEMBERS_FILE: Final = "run_members.parquet"
FILES: Final = (RUNS_FILE, HOTSPOTS_FILE, MEMBERS_FILE)

_EMPTY: Final[dict[str, dict[str, str]]] = {
    RUNS_FILE: {"run_id": "int64", "created_at": "object", "params": "object",
                "snapshot": "object", "n_hotspots": "int64"},
    HOTSPOTS_FILE: {"run_id": "int64", "hotspot_id": "object", "position": "int64",
                    "count": "int64", "attrs": "object", "wkb": "object"},
    MEMBERS_FILE: {"run_id": "int64", "hotspot_id": "object", "service_request_id": "object"},
}


def read(path: Path | None, name: str) -> pd.DataFrame:
    """One of the run files, or an empty frame of its columns when it does not exist."""
    if path is None:
        return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in _EMPTY[name].items()})
    return pd.read_parquet(path)


def append_run(
    current: dict[str, pd.DataFrame], packed: PackedRun, *, created_at: datetime
) -> tuple[int, dict[str, pd.DataFrame]]:
    """The three run files with ``packed`` added.

    Parameters
    ----------
    current
        File name → its current frame (see :func:`read`).
    packed
        From :func:`geo.store.runs.pack_run`.
    created_at
        Time stored (timezone-aware).

    Returns
    -------
    tuple
        The new run id and file name → new frame.
    """
    runs = current[RUNS_FILE]
    run_id = int(runs["run_id"].max()) + 1 if len(runs) else 1
    run_row = pd.DataFrame([{
        "run_id": run_id,
        "created_at": created_at.isoformat(),
        "params": json.dumps(packed.params, sort_keys=True),
        "snapshot": json.dumps(packed.snapshot),
        "n_hotspots": len(packed.hotspots),
    }])
    hot_rows = pd.DataFrame(
        [{"run_id": run_id, "hotspot_id": h["hotspot_id"], "position": h["position"],
          "count": h["count"], "attrs": json.dumps(h["attrs"]), "wkb": h["wkb"]}
         for h in packed.hotspots],
        columns=list(_EMPTY[HOTSPOTS_FILE]),
    )
    members = packed.members.assign(run_id=run_id)[list(_EMPTY[MEMBERS_FILE])]
    writes = {}
    for name, fresh in ((RUNS_FILE, run_row), (HOTSPOTS_FILE, hot_rows), (MEMBERS_FILE, members)):
        frames = [f for f in (current[name], fresh) if len(f)]
        merged = pd.concat(frames, ignore_index=True) if frames else fresh
        writes[name] = merged.astype(_EMPTY[name])
    return run_id, writes


def list_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The run list (see :func:`geo.store.runs.runs_frame`)."""
    return runs_frame([
        {"run_id": r.run_id, "created_at": r.created_at, "params": json.loads(str(r.params)),
         "snapshot": json.loads(str(r.snapshot)), "n_hotspots": r.n_hotspots}
        for r in runs.itertuples(index=False)
    ])


def load_run(
    current: dict[str, pd.DataFrame], run_id: int, *, crs: object
) -> tuple[dict[str, Any], gpd.GeoDataFrame, pd.DataFrame]:
    """Parameters, hotspots and members of a stored run.

    Raises
    ------
    InputError
        When no run has ``run_id``, listing the stored ids.
    """
    runs = current[RUNS_FILE]
    row = runs[runs["run_id"] == int(run_id)]
    if row.empty:
        raise InputError(
            f"run: got {run_id!r}; stored runs: {sorted(int(r) for r in runs['run_id'])}"
        )
    snapshot = json.loads(str(row["snapshot"].to_numpy()[0]))
    hot = current[HOTSPOTS_FILE]
    hot = hot[hot["run_id"] == int(run_id)].sort_values("position")
    mem = current[MEMBERS_FILE]
    members = pd.DataFrame(
        mem.loc[mem["run_id"] == int(run_id), ["hotspot_id", "service_request_id"]]
    ).reset_index(drop=True)
    rows = [
        {"attrs": json.loads(a), "wkb": w}
        for a, w in zip(hot["attrs"], hot["wkb"], strict=True)
    ]
    hotspots = unpack_hotspots(rows, members, columns=snapshot["columns"], crs=crs)
    return json.loads(str(row["params"].to_numpy()[0])), hotspots, members
