"""Commands for the requests in the store: ingest, status, join, export, quarantine."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

import click
from tqdm import tqdm

from geo.ingest.cells import to_csv
from geo.ingest.contacts_mapping import ContactMapping
from geo.ingest.export import export_requests
from geo.ingest.mapping import ColumnMapping
from geo.ingest.parts import expand_paths
from geo.ingest.pipeline import IngestReport, ingest, ingest_contacts
from geo.ingest.readers import Format
from geo.ingest.sink import ProblemAssigner
from geo.store.base import Store
from geo.store.reads import RequestFilter
from hotspot311.cli.base import EXIT_STRICT, Context, handle_errors, output_path, pass_ctx
from hotspot311.cli.engine import dask_client, engine_options, progress_bar, task_progress
from hotspot311.cli.sources import source_lines
from hotspot311.errors import InputError

if TYPE_CHECKING:
    from distributed import Client


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice([f.value for f in Format]), default="auto",
              show_default=True, help="Source format.")
@click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN",
              help="Map a canonical field to a source column (repeatable).")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
              help="Give a canonical field one value for every row, e.g. service_name=Graffiti.")
@click.option("--mapping", "mapping_file", type=click.Path(dir_okay=False, exists=True),
              help="TOML file with [columns] and [constants] tables.")
@click.option("--strict", is_flag=True, help="Exit 4 when any row is quarantined.")
@click.option("--kind", type=click.Choice(["requests", "contacts"]), default="requests",
              show_default=True, help="What the files hold: service requests, or a 311 "
              "center's contact log (CSV).")
@click.option("--value-map", "value_maps", multiple=True, metavar="FIELD=CODE:VALUE,…",
              help="contacts: the city's codes for channel or outcome, e.g. "
                   "outcome=INFO:information,XFER:referral (repeatable).")
@click.option("--batch-rows", type=click.IntRange(min=1), default=None, metavar="N",
              help="Read each CSV file N rows at a time, memory bounded by the batch, not "
                   "the file (embedded store; same result as reading it whole). The "
                   "batches are written without the problem rule: run 'hotspot311 "
                   "problems rebuild' after.")
@engine_options
@pass_ctx
@handle_errors
def ingest_cmd(ctx: Context, paths: tuple[str, ...], fmt: str, maps: tuple[str, ...],
               sets: tuple[str, ...], mapping_file: str | None, strict: bool, kind: str,
               value_maps: tuple[str, ...], batch_rows: int | None, engine: str,
               scheduler: str | None) -> None:
    """Ingest request files (CSV, Open311 JSON, GeoJSON, Parquet parts) or contact logs.

    Prints rows read, inserted, updated, unchanged and quarantined by reason; they add
    up to the rows read. Re-running a file changes nothing. A directory stands for its
    Parquet parts in year/month order (the output of ``join --engine dask``). With
    ``--engine dask`` the files are read and validated in parallel on a Dask cluster:
    into PostGIS each worker COPYs its files into staging tables and one transaction
    applies them; into the embedded store the files are written in order.
    """
    run: Callable[[str], IngestReport]
    store = ctx.store()
    paths = tuple(str(p) for p in expand_paths(paths))
    if kind == "contacts":
        if fmt not in ("auto", "csv"):
            raise InputError(f"--format: got {fmt!r}; contact logs are read from csv")
        contact_mapping = ContactMapping.from_options(maps, sets, value_maps)
        if mapping_file:
            contact_mapping = ContactMapping.from_toml(mapping_file).merged(contact_mapping)
        run = partial(ingest_contacts, store=store, mapping=contact_mapping)
    else:
        if value_maps:
            raise InputError("--value-map: only with --kind contacts (channel and outcome "
                             "codes)")
        mapping = ColumnMapping.from_pairs(maps, sets)
        if mapping_file:
            mapping = ColumnMapping.from_toml(mapping_file).merged(mapping)
        run = partial(ingest, store=store, fmt=fmt, mapping=mapping, problems=ctx.problems())
    if batch_rows is not None:
        if kind != "requests":
            raise InputError("--batch-rows: request files only (contact logs are read "
                             "whole)")
        run = _streaming(store, fmt=fmt, engine=engine, batch_rows=batch_rows,
                         mapping=mapping, problems=ctx.problems())
    any_quarantined = False
    streamed = False
    if kind == "contacts" and engine != "local":
        raise InputError(f"--engine: got {engine!r}; contact logs are ingested with --engine "
                         "local")
    with dask_client(engine, scheduler) as client:
        if client is None:
            for path in tqdm(paths, desc="ingest", unit="file", disable=len(paths) < 2,
                             file=sys.stderr):
                report = run(path)
                streamed |= report.streamed
                any_quarantined |= _print_report(report)
        else:
            reports: Iterator[IngestReport] = _ingest_on_dask(
                paths, store, client, fmt=fmt, mapping=mapping, problems=ctx.problems())
            for report in tqdm(reports, desc="ingest", unit="file", total=len(paths),
                               disable=len(paths) < 2, file=sys.stderr):
                any_quarantined |= _print_report(report)
    if streamed:
        click.echo("note: requests read in batches are stored without a problem_id; "
                   "run: hotspot311 problems rebuild")
    if strict and any_quarantined:
        sys.exit(EXIT_STRICT)


def _streaming(store: Store, *, fmt: str, engine: str, batch_rows: int,
               mapping: ColumnMapping, problems: ProblemAssigner
               ) -> Callable[[str], IngestReport]:
    """The ingest of ``--batch-rows``: :func:`ingest_stream` into a store that writes
    many batches as one snapshot; a clear error for what it does not take."""
    if fmt not in ("auto", "csv"):
        raise InputError(f"--batch-rows: got --format {fmt!r}; files are read in batches "
                         "as csv (other formats are read whole: leave out --batch-rows)")
    if engine != "local":
        raise InputError(f"--batch-rows: got --engine {engine!r}; batches are read with "
                         "--engine local (a Dask cluster reads files side by side)")
    if not hasattr(store, "write_stream"):
        raise InputError(f"--batch-rows: {store.describe()} reads a file whole; batches "
                         "go into the embedded store (for PostGIS, split a big file and "
                         "ingest the pieces with --engine dask)")
    from geo.ingest.stream import ingest_stream

    return partial(ingest_stream, store=store, batch_rows=batch_rows, mapping=mapping,
                   problems=problems)


def _ingest_on_dask(paths: tuple[str, ...], store: Store, client: Client, *, fmt: str,
                    mapping: ColumnMapping, problems: ProblemAssigner | None
                    ) -> Iterator[IngestReport]:
    """PostGIS: files staged by the workers by parallel COPY, applied in one transaction.
    Embedded: files prepared by the workers, written in order (one snapshot each)."""
    from geo.store.postgis import PostGISStore

    if isinstance(store, PostGISStore):
        from geo.store.postgis_parallel import ingest_parallel

        return iter(ingest_parallel(paths, store, client=client, fmt=fmt, mapping=mapping,
                                    problems=problems, watch=progress_bar("stage")))
    from geo.ingest.partitioned import ingest_partitioned

    return ingest_partitioned(paths, store, client=client, fmt=fmt, mapping=mapping,
                              problems=problems)


def _print_report(report: IngestReport) -> bool:
    """Print one file's counts; return whether any row was quarantined."""
    path = report.path
    r = report.result
    click.echo(f"{path} ({report.format}, {report.encoding})")
    click.echo(f"  read         {report.rows_read:>9,}")
    click.echo(f"  inserted     {r.inserted:>9,}")
    click.echo(f"  updated      {r.updated:>9,}")
    click.echo(f"  unchanged    {r.unchanged:>9,}")
    total_q = sum(r.quarantined.values())
    click.echo(f"  quarantined  {total_q:>9,}")
    for reason, n in sorted(r.quarantined.items(), key=lambda kv: (-kv[1], kv[0])):
        click.echo(f"    {reason:<26}{n:>9,}")
    for flag, n in sorted(report.flags.items()):
        click.echo(f"  flagged {flag:<24}{n:>9,}  (stored; see quality_flags)")
    if report.hint:
        click.echo(f"  note: {report.hint}")
    if not report.balanced:  # pragma: no cover - an invariant, checked by tests
        raise InputError(f"{path}: counts do not add up to the rows read")
    return total_q > 0


@click.command("status")
@pass_ctx
@handle_errors
def status_cmd(ctx: Context) -> None:
    """Summarize the store: requests, quarantine, layers and batches."""
    store = ctx.store()
    every = RequestFilter()
    counts = store.request_summary(every)  # counted by the store: no request is read
    click.echo(f"{store.describe()} — {store.profile.name}")
    click.echo(f"requests     {counts.count:>9,}")
    if counts.count:
        click.echo(f"  open       {counts.open:>9,}")
        click.echo(f"  synthetic  {counts.synthetic:>9,}")
        if counts.first is not None and counts.last is not None:
            click.echo(f"  requested  {counts.first:%Y-%m-%d} … {counts.last:%Y-%m-%d}")
        top = store.group_counts(every, "service_name")["requests"].head(8)
        for name, n in top.items():
            click.echo(f"    {name!s:<34}{n:>9,}")
    tables = store.table_counts()  # counted by the store: no table is read whole
    click.echo(f"quarantine   {sum(tables.quarantine.values()):>9,}")
    for reason, n in tables.quarantine.items():
        click.echo(f"    {reason:<34}{n:>9,}")
    click.echo("layers (active generation: areas, requests outside every area)")
    for key, gen in store.active().items():
        by_area = store.group_counts(every, key)["requests"] if counts.count else None
        outside = int(by_area.get(None, 0)) if by_area is not None and None in by_area.index \
            else 0
        click.echo(f"    {key:<22} g{gen.generation} {gen.n_areas:>5} areas {outside:>8,} outside")
    click.echo(f"contacts     {tables.contacts:>9,}")
    if tables.contacts:
        click.echo(f"  synthetic  {tables.contacts_synthetic:>9,}")
        if tables.contacts_first is not None and tables.contacts_last is not None:
            click.echo(f"  received   {tables.contacts_first:%Y-%m-%d} … "
                       f"{tables.contacts_last:%Y-%m-%d}")
    click.echo(f"contact quarantine {sum(tables.contact_quarantine.values()):>3,}")
    for reason, n in tables.contact_quarantine.items():
        click.echo(f"    {reason:<34}{n:>9,}")
    click.echo(f"batches      {tables.batches:>9,}")
    for line in source_lines(store.sources()):
        click.echo(line)


@click.command("join")
@click.option("--layer", "layers", multiple=True, metavar="KEY", help="Only these layers.")
@click.option("--input", "source", metavar="DIR|GLOB",
              help="--engine dask: request files (CSV or Parquet with lon/lat, or GeoParquet) "
                   "to join instead of the store's requests.")
@click.option("--output", "output", metavar="DIR",
              help="--engine dask: new directory for the joined requests, GeoParquet "
                   "partitioned by year and month.")
@engine_options
@pass_ctx
@handle_errors
def join_cmd(ctx: Context, layers: tuple[str, ...], source: str | None, output: str | None,
             engine: str, scheduler: str | None) -> None:
    """Join every stored request to the boundary layers (loading missing profile layers).

    With ``--engine dask --input FILES --output DIR`` request files are joined per
    partition on a Dask cluster instead, and written as GeoParquet by year and month.
    """
    if engine == "dask" and not (source and output):
        raise InputError("--engine dask joins request files: give --input DIR|GLOB and "
                         "--output DIR (the store's own re-join runs in the store)")
    if engine == "local" and (source or output):
        raise InputError("--input/--output need --engine dask")
    store = ctx.store()
    store.ensure_profile_layers()
    known = set(store.layer_keys())
    unknown = [k for k in layers if k not in known]
    if unknown:
        raise InputError(f"--layer: {unknown} not in the store; layers: {sorted(known)}")
    if source and output:
        _join_files(store, list(layers) or sorted(known), source, output, engine, scheduler)
        return
    outside = store.rejoin(list(layers) or None)
    total = store.request_summary(RequestFilter()).count
    for key, n in outside.items():
        click.echo(f"{key:<22} joined {total - n:>9,}  outside every area {n:>8,}")


def _join_files(store: Store, keys: list[str], source: str, output: str, engine: str,
                scheduler: str | None) -> None:
    """Join request files to ``keys`` on a Dask cluster; write GeoParquet by year/month."""
    from geo.joins import build_index
    from geo.partitioned import join_partitioned, read_partitioned, write_by_month

    out = output_path(output)
    indexes = {k: build_index(store.areas(k)) for k in keys}
    with dask_client(engine, scheduler) as client:
        frame = read_partitioned(source, crs=store.profile.crs)
        joined = join_partitioned(frame, indexes)
        _, rows, found = write_by_month(joined, out, count=keys, client=client,
                                          watch=task_progress("join and write"))
    click.echo(f"read {rows:,} requests in {frame.npartitions} partitions")
    for key in keys:
        click.echo(f"{key:<22} joined {found[key]:>9,}  outside every area {rows - found[key]:>8,}")
    click.echo(f"wrote {out}/year=YYYY/month=M/ (GeoParquet)")


@click.group("export")
def export_group() -> None:
    """Export data from the store."""


@export_group.command("requests")
@click.option("--format", "fmt", type=click.Choice(["csv", "geojson", "parquet"]), required=True)
@click.option("--output", required=True, metavar="PATH")
@pass_ctx
@handle_errors
def export_requests_cmd(ctx: Context, fmt: str, output: str) -> None:
    """Export every request: canonical columns plus one column per layer."""
    n = export_requests(ctx.store().requests(), output_path(output), fmt=fmt)
    click.echo(f"wrote {n:,} requests to {output}")


@click.command("quarantine")
@click.option("--output", metavar="PATH", help="Write the rows as CSV.")
@click.option("--reason", help="Only rows with this reason.")
@pass_ctx
@handle_errors
def quarantine_cmd(ctx: Context, output: str | None, reason: str | None) -> None:
    """List quarantine counts by reason; write the rows with --output."""
    rows = ctx.store().quarantine()
    if reason:
        known = sorted(rows["reason"].unique())
        if reason not in known:
            raise InputError(f"--reason: {reason!r} is not in the quarantine; reasons: {known}")
        rows = rows[rows["reason"] == reason]
    for name, n in rows["reason"].value_counts().items():
        click.echo(f"{name:<26}{n:>9,}")
    click.echo(f"{'total':<26}{len(rows):>9,}")
    if output:
        to_csv(rows, output_path(output))
        click.echo(f"wrote {len(rows):,} rows to {output}")
