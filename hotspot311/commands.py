"""Commands of the ``hotspot311`` CLI: ingest, status, join, export, quarantine, layers."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import click
import pandas as pd
from tqdm import tqdm

from geo.export import export_requests
from geo.ingest import ingest
from geo.mapping import ColumnMapping
from geo.readers import Format
from hotspot311.cli import EXIT_STRICT, Context, cli, handle_errors, output_path
from hotspot311.errors import InputError
from layers.profile import LayerSpec, validate_layer_key

pass_ctx = click.make_pass_decorator(Context)


@cli.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice([f.value for f in Format]), default="auto",
              show_default=True, help="Source format.")
@click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN",
              help="Map a canonical field to a source column (repeatable).")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
              help="Give a canonical field one value for every row, e.g. service_name=Graffiti.")
@click.option("--mapping", "mapping_file", type=click.Path(dir_okay=False, exists=True),
              help="TOML file with [columns] and [constants] tables.")
@click.option("--strict", is_flag=True, help="Exit 4 when any row is quarantined.")
@pass_ctx
@handle_errors
def ingest_cmd(ctx: Context, paths: tuple[str, ...], fmt: str, maps: tuple[str, ...],
               sets: tuple[str, ...], mapping_file: str | None, strict: bool) -> None:
    """Ingest request files (CSV, Open311 JSON, GeoJSON) into the store.

    Prints rows read, inserted, updated, unchanged and quarantined by reason; they add
    up to the rows read. Re-running a file changes nothing.
    """
    mapping = ColumnMapping.from_pairs(maps, sets)
    if mapping_file:
        mapping = ColumnMapping.from_toml(mapping_file).merged(mapping)
    store = ctx.store()
    any_quarantined = False
    for path in tqdm(paths, desc="ingest", unit="file", disable=len(paths) < 2, file=sys.stderr):
        report = ingest(path, store, fmt=fmt, mapping=mapping)
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
        if not report.balanced:  # pragma: no cover - an invariant, checked by tests
            raise InputError(f"{path}: counts do not add up to the rows read")
        any_quarantined |= total_q > 0
    if strict and any_quarantined:
        sys.exit(EXIT_STRICT)


@cli.command("status")
@pass_ctx
@handle_errors
def status_cmd(ctx: Context) -> None:
    """Summarize the store: requests, quarantine, layers and batches."""
    store = ctx.store()
    requests = store.requests()
    click.echo(f"{store.describe()} — {store.profile.name}")
    click.echo(f"requests     {len(requests):>9,}")
    if len(requests):
        click.echo(f"  open       {int((requests['status'] == 'open').sum()):>9,}")
        click.echo(f"  synthetic  {int(requests['synthetic'].sum()):>9,}")
        first, last = requests["requested_datetime"].min(), requests["requested_datetime"].max()
        click.echo(f"  requested  {first:%Y-%m-%d} … {last:%Y-%m-%d}")
        top = requests["service_name"].value_counts().head(8)
        for name, n in top.items():
            click.echo(f"    {name:<34}{n:>9,}")
    quarantine = store.quarantine()
    click.echo(f"quarantine   {len(quarantine):>9,}")
    for reason, n in quarantine["reason"].value_counts().items():
        click.echo(f"    {reason:<34}{n:>9,}")
    click.echo("layers (active generation: areas, requests outside every area)")
    for key, gen in store.active().items():
        outside = int(requests[key].isna().sum()) if key in requests else 0
        click.echo(f"    {key:<22} g{gen.generation} {gen.n_areas:>5} areas {outside:>8,} outside")
    click.echo(f"batches      {len(store.batches()):>9,}")


@cli.command("join")
@click.option("--layer", "layers", multiple=True, metavar="KEY", help="Only these layers.")
@pass_ctx
@handle_errors
def join_cmd(ctx: Context, layers: tuple[str, ...]) -> None:
    """Join every stored request to the boundary layers (loading missing profile layers)."""
    store = ctx.store()
    store.ensure_profile_layers()
    known = set(store.layer_keys())
    unknown = [k for k in layers if k not in known]
    if unknown:
        raise InputError(f"--layer: {unknown} not in the store; layers: {sorted(known)}")
    outside = store.rejoin(list(layers) or None)
    total = len(store.requests())
    for key, n in outside.items():
        click.echo(f"{key:<22} joined {total - n:>9,}  outside every area {n:>8,}")


@cli.group("export")
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


@cli.command("quarantine")
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
        rows.to_csv(output_path(output), index=False)
        click.echo(f"wrote {len(rows):,} rows to {output}")


@cli.group("layers")
def layers_group() -> None:
    """Boundary layers: list them, add your own."""


@layers_group.command("list")
@pass_ctx
@handle_errors
def layers_list_cmd(ctx: Context) -> None:
    """List the profile's layers and every stored generation."""
    store = ctx.store()
    gens = store.generations()
    active = store.active()
    rows = [
        {
            "key": g.key, "title": g.title, "generation": g.generation,
            "valid_from": g.valid_from, "active": active[g.key] == g, "areas": g.n_areas,
            "source": Path(g.source).name,
        }
        for g in gens
    ]
    stored = {g.key for g in gens}
    for spec in store.profile.layers:
        if spec.key not in stored:
            rows.append({"key": spec.key, "title": spec.title, "generation": None,
                         "valid_from": spec.valid_from, "active": False, "areas": None,
                         "source": f"{spec.source.name} (not loaded yet)"})
    if not rows:
        click.echo(f"no layers: profile {store.profile.name!r} declares none")
        return
    click.echo(pd.DataFrame(rows).to_string(index=False))


@layers_group.command("add")
@click.argument("key")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--id-field", required=True, help="Field holding each area's code.")
@click.option("--name-field", help="Field holding each area's name (default: the id field).")
@click.option("--title", help="Human title.")
@click.option("--valid-from", help="First day in force, YYYY-MM-DD (a new generation).")
@pass_ctx
@handle_errors
def layers_add_cmd(ctx: Context, key: str, file: str, id_field: str, name_field: str | None,
                   title: str | None, valid_from: str | None) -> None:
    """Add a layer (GeoJSON, Shapefile, GeoPackage), or a new generation of one."""
    validate_layer_key(key)
    try:
        vf = date.fromisoformat(valid_from) if valid_from else None
    except ValueError as err:
        raise InputError(f"--valid-from: got {valid_from!r}; expected YYYY-MM-DD") from err
    spec = LayerSpec(key=key, title=title or key.replace("_", " ").capitalize(),
                     source=Path(file).resolve(), id_field=id_field,
                     name_field=name_field or id_field, valid_from=vf)
    store = ctx.store()
    store.ensure_profile_layers()
    gen = store.add_layer_file(spec)
    active = store.active()[key] == gen
    click.echo(f"layer {key}: generation {gen.generation}, {gen.n_areas} areas"
               f"{', active' if active else ', not active yet'}; requests re-joined")


@cli.command("demo")
@click.option("--synthetic", "n_synthetic", default=60_000, show_default=True,
              help="Number of synthetic requests (labelled synthetic) to add.")
@click.option("--seed", default=311, show_default=True)
@click.option("--end", help="Latest synthetic request date, YYYY-MM-DD (default: now).")
@click.option("--if-empty", is_flag=True, help="Do nothing when the store already has requests.")
@pass_ctx
@handle_errors
def demo_cmd(ctx: Context, n_synthetic: int, seed: int, end: str | None, if_empty: bool) -> None:
    """Fill the store with the bundled Philadelphia data plus synthetic requests."""
    from datetime import UTC, datetime

    from hotspot311.demo import build_demo

    store = ctx.store()
    if if_empty and len(store.requests()):
        click.echo(f"{store.describe()} already holds requests; nothing to do")
        return
    try:
        end_dt = datetime.fromisoformat(end).replace(tzinfo=UTC) if end else None
    except ValueError as err:
        raise InputError(f"--end: got {end!r}; expected YYYY-MM-DD") from err
    workdir = Path(ctx.store_location).with_name(Path(ctx.store_location).name + "-demo-files")
    if ctx.store_location.startswith("postgres"):
        workdir = Path(".hotspot311-demo-files")
    reports = build_demo(store, n_synthetic=n_synthetic, seed=seed, end=end_dt, workdir=workdir)
    for report in reports:
        r = report.result  # type: ignore[attr-defined]
        click.echo(f"{report.path.name:<40} read {report.rows_read:>7,} "  # type: ignore[attr-defined]
                   f"inserted {r.inserted:>7,} updated {r.updated:>6,} "
                   f"unchanged {r.unchanged:>7,} quarantined {sum(r.quarantined.values()):>5,}")


@cli.command("hotspots")
@click.option("--service", "services", multiple=True, metavar="NAME|GROUP",
              help="Service type or group (streets, police, sanitation); repeatable. Default: all.")
@click.option("--days", type=int, default=30, show_default=True,
              help="Window length, ending at the newest request (or --end).")
@click.option("--end", help="Window end, YYYY-MM-DD (default: newest request).")
@click.option("--status", type=click.Choice(["open", "all"]), default="all", show_default=True)
@click.option("--eps", "eps_m", type=float, default=100.0, show_default=True,
              help="Search distance in metres.")
@click.option("--min-samples", type=int, help="Requests within eps that make a core point "
              "(default: suggested from the density).")
@click.option("--preset", default="balanced", show_default=True,
              help="Priority weights: streets, police, neighborhood, balanced.")
@click.option("--area", "areas", multiple=True, metavar="LAYER=CODE",
              help="Only requests in this area (repeatable).")
@click.option("--top", type=int, default=20, show_default=True, help="Rows to print.")
@click.option("--output", help="Write the ranked hotspots (.geojson or .csv).")
@click.option("--work-list", "work_list_path", help="Write the crew work list (.csv or .geojson).")
@click.option("--method", type=click.Choice(["dbscan", "hdbscan"]), default="dbscan",
              show_default=True, help="Clustering method.")
@click.option("--min-cluster-size", type=int, help="HDBSCAN: smallest cluster "
              "(default: min_samples).")
@click.option("--save", is_flag=True, help="Store the run (see: runs list, runs compare).")
@click.option("--significant", is_flag=True, help="Add a 'significant' column: the hotspot "
              "meets a Gi* hot cell (95%, FDR) of the --grid.")
@click.option("--grid", "grid_m", type=float, default=250.0, show_default=True,
              help="Hexagon size in metres for --significant and --weekly.")
@click.option("--weekly", type=int, metavar="N", help="Run N weekly windows and class each "
              "grid cell (new, consecutive, intensifying, persistent, diminishing, "
              "sporadic, historical); --output writes the cells.")
@pass_ctx
@handle_errors
def hotspots_cmd(ctx: Context, services: tuple[str, ...], days: int, end: str | None,
                 status: str, eps_m: float, min_samples: int | None, preset: str,
                 areas: tuple[str, ...], top: int, output: str | None,
                 work_list_path: str | None, method: str, min_cluster_size: int | None,
                 save: bool, significant: bool, grid_m: float, weekly: int | None) -> None:
    """Find hotspots with DBSCAN (or HDBSCAN) and print them ranked for crews."""
    from datetime import UTC, datetime

    from clustering.density import density, suggest_min_samples
    from clustering.export import hotspot_table, work_list, write_hotspots, write_work_list
    from clustering.priority import preset as get_preset
    from clustering.run import run_hotspots
    from clustering.selection import HotspotQuery, resolve_services, select_requests
    from layers.services import load_groups

    store = ctx.store()
    requests = store.requests()
    names = resolve_services(services, load_groups(store.profile),
                             sorted(requests["service_name"].unique()))
    area_map: dict[str, tuple[str, ...]] = {}
    for pair in areas:
        key, sep, code = pair.partition("=")
        if not sep:
            raise InputError(f"--area: got {pair!r}; expected LAYER=CODE")
        area_map[key] = (*area_map.get(key, ()), code)
    try:
        end_dt = datetime.fromisoformat(end).replace(tzinfo=UTC) if end else None
    except ValueError as err:
        raise InputError(f"--end: got {end!r}; expected YYYY-MM-DD") from err
    query = HotspotQuery(services=names, days=days, end=end_dt, status=status, eps_m=eps_m,
                         min_samples=min_samples or 1, areas=area_map, method=method,
                         min_cluster_size=min_cluster_size).validate()
    if min_samples is None:
        n_chosen = len(select_requests(requests, query))
        area = store.profile.area_km2
        dens = density(n_chosen, area, eps_m)
        suggested = suggest_min_samples(n_chosen, area, eps_m)
        query = HotspotQuery(**{**query.__dict__, "min_samples": suggested})
        click.echo(f"density: {n_chosen:,} requests over {area:,.0f} km² = "
                   f"{dens.points_per_km2:,.1f}/km², {dens.expected_per_disc:.2f} expected within "
                   f"{eps_m:g} m of any point; min_samples {suggested} suggested (3x background)")
    if weekly is not None:
        history_cmd.print_weekly(store, requests, query, weeks=weekly, grid_m=grid_m,
                                 preset=preset, output=output)
        return
    result = run_hotspots(requests, query, profile=store.profile,
                          weights=get_preset(preset), layer_keys=store.layer_keys())
    if significant:
        result.hotspots["significant"] = history_cmd.significance_column(
            result, requests, profile=store.profile, grid_m=grid_m).to_numpy()
    n_hot = len(result.hotspots)
    clustered = int(result.members["hotspot_id"].notna().sum())
    click.echo(f"{result.selected:,} requests selected; {n_hot} hotspots holding {clustered:,}"
               f" (eps {eps_m:g} m, min_samples {query.min_samples}, preset {preset})")
    table = hotspot_table(result.hotspots, store.layer_keys())
    if n_hot:
        shown = table.head(top).copy()
        keys = [k for k in ("council_district", "police_district", "neighborhood")
                if k in shown.columns]
        cols = ["rank", "score", *[c for c in shown.columns if c.startswith("score_")],
                "count", "overdue", *keys, "top_address"]
        if significant:
            shown["significant"] = result.hotspots["significant"].head(top).to_numpy()
            cols.insert(-1, "significant")
        with pd.option_context("display.width", 250, "display.max_columns", 30):
            click.echo(shown[cols].to_string(index=False))
    if output:
        write_hotspots(result.hotspots, output_path(output), layer_keys=store.layer_keys())
        click.echo(f"wrote {n_hot} hotspots to {output}")
    if work_list_path:
        work = work_list(result.members, now=datetime.now(UTC))
        write_work_list(work, output_path(work_list_path))
        click.echo(f"wrote {len(work):,} requests to {work_list_path}")
    if save:
        history_cmd.save_result(store, result)


# Imported last, for their side effect of registering their commands on ``cli``.
from hotspot311 import db_cmd, geocode_cmd, history_cmd, report_cmd  # noqa: E402,F401
