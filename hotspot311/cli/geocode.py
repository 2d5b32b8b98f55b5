"""The ``hotspot311 geocode`` command: place requests that came without coordinates.

Three uses:

* ``hotspot311 geocode``: geocode the store's quarantined rows whose reason is
  ``needs_geocoding``. Matched rows are validated again with the geocoded coordinates
  (``geocode_match_type``/``geocode_score`` from the geocoder instead of ``source``/100)
  and written in one batch that releases their quarantine rows atomically; unmatched rows
  stay in the quarantine and are listed with the reason. Re-running changes nothing.
* ``hotspot311 geocode --review [--output PATH]``: the review list, i.e. the
  ``needs_geocoding`` rows the geocoder cannot place, with the reason of the attempt.
* ``hotspot311 geocode --input FILE.csv --address-column COL --output OUT.csv``: geocode a
  standalone CSV; every input row is kept, in order, with ``lat``, ``lon``,
  ``match_type``, ``score`` and ``reason`` added.

The street data of a profile is found by :func:`geo.geocode.city.streets_dir`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
import pandas as pd

from clustering.problems import ProblemAssigner
from geo.geocode.city import load_geocoder, streets_dir
from geo.ingest.cells import to_csv
from geo.ingest.model import row_hash
from geo.ingest.readers import ROW_COLUMN
from geo.ingest.validate import normalize_ids, validate
from geo.store.base import Store
from hotspot311.cli.base import Context, handle_errors, output_path, pass_ctx
from hotspot311.errors import InputError
from hotspot311.schema import CANONICAL_FIELDS
from layers.profile import CityProfile

REVIEW_COLUMNS = ["quarantine_id", "service_request_id", "address", "source_file",
                  "source_row", "geocode_reason", "normalized"]
_NEEDS = "needs_geocoding"


def _attempt(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Quarantine rows that need geocoding, and the geocoder's answer for each."""
    q = store.quarantine()
    todo = q[q["reason"] == _NEEDS].reset_index(drop=True)
    if todo.empty:
        return todo, pd.DataFrame()
    res = load_geocoder(store.profile).geocode(todo["address"].astype(object))
    return todo, res


def _review(todo: pd.DataFrame, res: pd.DataFrame) -> pd.DataFrame:
    miss = (res["match_type"] == "unmatched").to_numpy()
    out = todo.loc[miss].assign(geocode_reason=res.loc[miss, "reason"].to_numpy(),
                                normalized=res.loc[miss, "normalized"].to_numpy())
    return out[REVIEW_COLUMNS].reset_index(drop=True)


def _show(review: pd.DataFrame, output: str | None, top: int = 20) -> None:
    for reason, n in review["geocode_reason"].value_counts().items():
        click.echo(f"    {reason:<26}{n:>9,}")
    if len(review):
        with pd.option_context("display.width", 200, "display.max_colwidth", 50):
            click.echo(review[["service_request_id", "address", "geocode_reason"]]
                       .head(top).to_string(index=False))
        if len(review) > top:
            click.echo(f"… {len(review) - top:,} more (write them all with --output)")
    if output:
        to_csv(review, output_path(output))
        click.echo(f"wrote {len(review):,} rows to {output}")


def _rebuild(rows: pd.DataFrame, res: pd.DataFrame) -> pd.DataFrame:
    """A mapped frame (canonical columns, ``src:`` extras, ``_source_row``) from raw JSON."""
    raw = pd.DataFrame([json.loads(r) for r in rows["raw"]], dtype=object)
    keep = [c for c in raw.columns if not c.startswith("_")]
    mapped = raw[keep].rename(columns=lambda c: c if c in CANONICAL_FIELDS else f"src:{c}")
    mapped = mapped.astype(object).where(mapped.notna(), None)
    mapped["lat"] = [repr(float(v)) for v in res["lat"]]
    mapped["lon"] = [repr(float(v)) for v in res["lon"]]
    mapped[ROW_COLUMN] = rows["source_row"].astype("int64").to_numpy()
    return mapped.reset_index(drop=True)


def geocode_store(store: Store, *, now: datetime | None = None,
                  problems: ProblemAssigner | None = None) -> tuple[int, pd.DataFrame]:
    """Geocode the ``needs_geocoding`` quarantine and write the matched rows.

    Returns
    -------
    tuple
        Rows that left the quarantine, and the review list of those that stay.
    """
    todo, res = _attempt(store)
    if todo.empty:
        return 0, pd.DataFrame(columns=REVIEW_COLUMNS)
    hit = (res["match_type"] != "unmatched").to_numpy()
    review = _review(todo, res)
    if not hit.any():
        return 0, review
    rows, found = todo.loc[hit].reset_index(drop=True), res.loc[hit].reset_index(drop=True)
    started = now or datetime.now(UTC)
    digest = pd.util.hash_pandas_object(rows["quarantine_id"], index=False).sum()
    batch_id = f"{started:%Y%m%dT%H%M%SZ}-geocode-{int(digest) % 16**10:010x}"
    batch = validate(_rebuild(rows, found), profile=store.profile, batch_id=batch_id,
                     source_file="hotspot311 geocode", now=started)
    req = batch.requests
    if len(req):
        ids = normalize_ids(rows["service_request_id"].astype(object)).to_numpy()
        by_id = pd.DataFrame({"id": ids, "m": found["match_type"].to_numpy(),
                              "s": found["score"].to_numpy(float)}).drop_duplicates(
            "id", keep="last").set_index("id")
        req["geocode_match_type"] = by_id["m"].reindex(req["service_request_id"]).to_numpy()
        req["geocode_score"] = by_id["s"].reindex(req["service_request_id"]).to_numpy(float)
        req["row_hash"] = row_hash(req)
    info: dict[str, object] = {"batch_id": batch_id, "source_file": "hotspot311 geocode",
                               "format": "geocode", "encoding": "utf-8"}
    store.ensure_profile_layers()
    result = store.write_batch(batch, info=info, release=list(rows["quarantine_id"]),
                               problems=problems)
    return int(result.released), review


def geocode_file(path: str, column: str, output: str, geocoder_for: CityProfile) -> int:
    """Geocode a CSV's address column into ``output``; return the number of rows."""
    src = Path(path)
    if not src.is_file():
        raise InputError(f"--input: {path} is not a file")
    frame = pd.read_csv(src, dtype=str, keep_default_na=False)
    if column not in frame.columns:
        raise InputError(f"--address-column: {column!r} is not a column of {src.name}; "
                         f"columns: {list(frame.columns)[:20]}")
    target = output_path(output)
    res = load_geocoder(geocoder_for).geocode(frame[column].astype(object))
    added = ["lat", "lon", "match_type", "score", "reason"]
    clash = [c for c in added if c in frame.columns]
    if clash:
        click.echo(f"note: columns {clash} of the input are replaced by the geocoder's")
    for c in added:
        frame[c] = res[c].to_numpy()
    to_csv(frame, target)
    counts = res["match_type"].value_counts()
    click.echo(f"geocoded {len(frame):,} rows of {src.name}: " + ", ".join(
        f"{k} {v:,}" for k, v in counts.items()))
    click.echo(f"wrote {len(frame):,} rows to {output}")
    return len(frame)


@click.command("geocode")
@click.option("--input", "input_path", metavar="FILE.csv",
              help="Geocode this CSV instead of the store's quarantine.")
@click.option("--address-column", metavar="COL", help="Address column of --input.")
@click.option("--output", metavar="PATH", help="With --input: the geocoded CSV (required). "
              "Otherwise: write the review list of unmatched rows as CSV.")
@click.option("--review", is_flag=True,
              help="Only list the quarantined rows the geocoder cannot place (writes nothing "
              "to the store).")
@pass_ctx
@handle_errors
def geocode_cmd(ctx: Context, input_path: str | None, address_column: str | None,
                output: str | None, review: bool) -> None:
    """Geocode requests that lack coordinates (quarantine reason needs_geocoding).

    Matched rows move from the quarantine to the requests with the geocoder's match type
    and score; unmatched ones stay and are listed with the reason.
    """
    if input_path is not None:
        problems = []
        if review:
            problems.append("--review cannot be combined with --input")
        if not address_column:
            problems.append("--input needs --address-column COL")
        if not output:
            problems.append("--input needs --output OUT.csv")
        if problems:
            raise InputError(problems)
        from layers.profile import load_profile

        geocode_file(input_path, str(address_column), str(output), load_profile(ctx.city))
        return
    if address_column:
        raise InputError("--address-column only applies with --input FILE.csv")
    store = ctx.store()
    if review:
        todo, res = _attempt(store)
        rows = _review(todo, res) if len(todo) else pd.DataFrame(columns=REVIEW_COLUMNS)
        click.echo(f"needs_geocoding  {len(todo):>9,} in the quarantine; "
                   f"{len(rows):,} cannot be placed:")
        _show(rows, output)
        return
    released, rows = geocode_store(store, problems=ctx.problems())
    click.echo(f"geocoded and moved to requests {released:>9,}")
    click.echo(f"left in quarantine (unmatched) {len(rows):>9,}")
    _show(rows, output)


__all__ = ["geocode_cmd", "geocode_file", "geocode_store", "load_geocoder", "streets_dir"]
