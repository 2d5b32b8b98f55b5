"""Commands for hotspot history and significance: ``runs list|show|compare``,
``significance``; and the helpers behind ``hotspots --save``, ``--weekly`` and
``--significant``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
import geopandas as gpd
import pandas as pd
import shapely

from clustering.run import HotspotResult
from clustering.selection import HotspotQuery
from geo.ingest.cells import to_csv
from geo.store.base import Store
from hotspot311.cli.base import Context, handle_errors, output_path, pass_ctx
from hotspot311.cli.window import stored_services, window_rows, with_end
from hotspot311.errors import InputError
from layers.profile import CityProfile

_RUN_LIST = ["run_id", "created_at", "services", "days", "status", "eps_m", "min_samples",
             "method", "n_selected", "n_hotspots", "max_updated"]


# --- helpers called by the ``hotspots`` command ------------------------------------
def save_result(store: Store, result: HotspotResult) -> int:
    """Store a run and say so."""
    run_id = store.save_run(result)
    click.echo(f"saved as run {run_id} ({store.describe()})")
    return run_id


def significance_column(result: HotspotResult, requests: pd.DataFrame, *,
                        profile: CityProfile, grid_m: float) -> pd.Series:
    """``significant`` for each hotspot: meets a hot Gi* cell at 95 % after FDR."""
    from clustering.selection import select_requests
    from clustering.significance import flag_significant, hex_hotspots

    chosen = select_requests(requests, result.query)
    cells = hex_hotspots(chosen["x"].to_numpy(), chosen["y"].to_numpy(),
                         size=profile.metres_to_crs(grid_m), crs=profile.crs,
                         within=_city_extent(profile))
    return flag_significant(result.hotspots, cells)


def print_weekly(store: Store, requests: pd.DataFrame, query: HotspotQuery, *, weeks: int,
                 grid_m: float, preset: str, output: str | None) -> None:
    """Run ``query`` over ``weeks`` weekly windows and print the cell patterns."""
    from clustering.history import PATTERNS, weekly_series
    from clustering.priority import preset as get_preset

    cells = weekly_series(requests, query, weeks=weeks, profile=store.profile,
                          weights=get_preset(preset), grid_m=grid_m, now=datetime.now(UTC))
    click.echo(f"{weeks} weekly windows of {query.days} days; {len(cells)} cells of "
               f"{grid_m:g} m were in a hotspot at least once")
    counts = cells["pattern"].value_counts()
    for name in PATTERNS:
        click.echo(f"  {name:<14}{int(counts.get(name, 0)):>7,}")
    if output:
        _write_frame(cells.assign(intensity=cells["intensity"].map(json.dumps)), output)
        click.echo(f"wrote {len(cells)} cells to {output}")


# --- runs ---------------------------------------------------------------------------
@click.group("runs")
def runs_group() -> None:
    """Stored hotspot runs (``hotspots --save``): list, show, compare."""


@runs_group.command("list")
@pass_ctx
@handle_errors
def runs_list_cmd(ctx: Context) -> None:
    """List stored runs, oldest first."""
    runs = ctx.store().runs()
    if runs.empty:
        click.echo("no stored runs (use hotspots … --save)")
        return
    shown = runs[_RUN_LIST].assign(created_at=runs["created_at"].dt.strftime("%Y-%m-%d %H:%M"))
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        click.echo(shown.to_string(index=False))


@runs_group.command("show")
@click.argument("run_id", type=int)
@click.option("--top", type=int, default=20, show_default=True, help="Rows to print.")
@click.option("--output", help="Write the run's hotspots (.geojson or .csv).")
@pass_ctx
@handle_errors
def runs_show_cmd(ctx: Context, run_id: int, top: int, output: str | None) -> None:
    """Show a stored run: parameters, data snapshot and hotspots."""
    from clustering.export import hotspot_table

    store = ctx.store()
    runs = store.runs()
    params, hotspots, members = store.load_run(run_id)
    row = runs[runs["run_id"] == run_id].iloc[0]
    click.echo(f"run {run_id} stored {row['created_at']:%Y-%m-%d %H:%M:%S} UTC")
    click.echo(f"parameters {json.dumps(params, sort_keys=True)}")
    click.echo(f"data       {row['n_requests']:,} requests, {row['n_selected']:,} selected, "
               f"newest update {row['max_updated']}, window end {row['window_end']}")
    click.echo(f"hotspots   {len(hotspots)} holding {len(members):,} requests")
    if len(hotspots):
        table = hotspot_table(hotspots, store.layer_keys())
        cols = [c for c in ("rank", "hotspot_id", "score", "count", "open", "overdue",
                            "top_address") if c in table.columns]
        if "significant" in hotspots.columns:
            table = table.assign(significant=hotspots["significant"].to_numpy())
            cols.insert(-1, "significant")
        with pd.option_context("display.width", 250, "display.max_columns", 30):
            click.echo(table[cols].head(top).to_string(index=False))
    if output:
        _write_frame(hotspots.assign(member_ids=hotspots["member_ids"].map(json.dumps)), output)
        click.echo(f"wrote {len(hotspots)} hotspots to {output}")


@runs_group.command("compare")
@click.argument("first", type=int)
@click.argument("second", type=int, required=False)
@click.option("--output", help="Write the classed hotspots (.geojson or .csv).")
@click.option("--effect", "effect_weeks", type=int, metavar="WEEKS",
              help="Also show, per hotspot of the earlier run, new problems inside it in the "
              "WEEKS before and after its requests were closed, against similar cells "
              "elsewhere (clustering/effect.py has the method and its limits).")
@pass_ctx
@handle_errors
def runs_compare_cmd(ctx: Context, first: int, second: int | None, output: str | None,
                     effect_weeks: int | None) -> None:
    """Compare run FIRST with SECOND (later), or with the previous run of the same parameters.

    Classes: new, growing, persistent, shrinking, merged, split; earlier hotspots gone.
    """
    from clustering.history import CLASSES, compare_hotspots, previous_run

    store = ctx.store()
    if second is None:
        earlier = previous_run(store.runs(), first)
        if earlier is None:
            raise InputError(f"run {first}: no earlier run with the same parameters; "
                             "name two runs: runs compare A B")
        a, b = earlier, first
    else:
        a, b = first, second
    _, hot_a, _ = store.load_run(a)
    _, hot_b, _ = store.load_run(b)
    cmp = compare_hotspots(hot_a, hot_b)
    click.echo(f"run {a} ({len(hot_a)} hotspots) → run {b} ({len(hot_b)} hotspots)")
    counts = cmp["class"].value_counts()
    for name in CLASSES:
        click.echo(f"  {name:<11}{int(counts.get(name, 0)):>6}")
    if len(cmp):
        shown = pd.DataFrame(cmp.drop(columns="geometry")).assign(
            earlier_ids=cmp["earlier_ids"].map(", ".join),
            change=cmp["change"].map(lambda v: "" if pd.isna(v) else f"{v:+.0%}"),
            jaccard=cmp["jaccard"].round(2), hull_overlap=cmp["hull_overlap"].round(2),
        )
        with pd.option_context("display.width", 250, "display.max_columns", 30):
            click.echo(shown.to_string(index=False))
    if output:
        _write_frame(cmp.assign(earlier_ids=cmp["earlier_ids"].map(json.dumps)), output)
        click.echo(f"wrote {len(cmp)} rows to {output}")
    if effect_weeks is not None:
        print_effect(store, a, weeks=effect_weeks)


def print_effect(store: Store, run_id: int, *, weeks: int) -> None:
    """Print the did-it-work table of a stored run's hotspots."""
    from clustering.effect import effect_summary, hotspot_effect

    params, hotspots, members = store.load_run(run_id)
    effect = hotspot_effect(store.requests(), hotspots, members,
                            services=tuple(params.get("services") or ()), weeks=weeks)
    total = effect_summary(effect)
    click.echo(f"did it work? run {run_id}: new problems inside each hotspot {weeks} weeks "
               f"before and after its requests were closed, against similar cells")
    click.echo(f"  {total['measured']} of {total['hotspots']} hotspots measured: "
               f"{total['before']} before, {total['after']} after, expected change "
               f"{total['expected_change']:+.1f}, effect {total['effect']:+.1f}")
    if len(effect):
        shown = effect.assign(done=effect["done"].map(
            lambda v: "" if pd.isna(v) else f"{pd.Timestamp(v):%Y-%m-%d}"),
            ratio=effect["ratio"].round(2))
        with pd.option_context("display.width", 250, "display.max_columns", 30):
            click.echo(shown.to_string(index=False))


# --- significance -------------------------------------------------------------------
@click.command("significance")
@click.option("--service", "services", multiple=True, metavar="NAME|GROUP",
              help="Service type or group; repeatable. Default: all.")
@click.option("--days", type=int, default=30, show_default=True, help="Window length.")
@click.option("--end", help="Window end, YYYY-MM-DD (default: newest request).")
@click.option("--status", type=click.Choice(["open", "all"]), default="all", show_default=True)
@click.option("--grid", "grid_m", type=float, default=250.0, show_default=True,
              help="Hexagon size (centre to centre) in metres.")
@click.option("--layer", help="Test the areas of this layer instead of a hexagon grid.")
@click.option("--denominator", help="With --layer: rates per FIELD[/SCALE] of the layer "
              "source (e.g. ALAND10/1e6 = per km² of land) or area_km2.")
@click.option("--permutations", type=int, default=0, show_default=True,
              help="Permutation draws for pseudo p-values (0: analytic).")
@click.option("--seed", type=int, default=0, show_default=True, help="Permutation seed.")
@click.option("--output", help="Write the cells (.geojson or .csv).")
@pass_ctx
@handle_errors
def significance_cmd(ctx: Context, services: tuple[str, ...], days: int, end: str | None,
                     status: str, grid_m: float, layer: str | None, denominator: str | None,
                     permutations: int, seed: int, output: str | None) -> None:
    """Getis-Ord Gi* hot and cold spots with a false-discovery-rate correction."""
    from clustering.rates import denominators
    from clustering.selection import resolve_services, select_requests
    from clustering.significance import area_hotspots, hex_hotspots
    from layers.services import load_groups

    store = ctx.store()
    names = resolve_services(services, load_groups(store.profile), stored_services(store))
    query = with_end(store, HotspotQuery(services=names, days=days, end=_parse_end(end),
                                         status=status).validate())
    chosen = select_requests(window_rows(store, query), query)
    x, y = chosen["x"].to_numpy(), chosen["y"].to_numpy()
    if denominator and not layer:
        raise InputError("--denominator: needs --layer (rates are per area)")
    if layer:
        areas = store.areas(layer)
        spec = next((s for s in store.profile.layers if s.key == layer), None)
        den = denominators(areas, spec, denominator, profile=store.profile) if denominator \
            else None
        cells = area_hotspots(areas, x, y, denominator=den, permutations=permutations,
                              seed=seed)
        what = f"{len(cells)} areas of {layer}" + (f" per {denominator}" if denominator else "")
    else:
        cells = hex_hotspots(x, y, size=store.profile.metres_to_crs(grid_m),
                             crs=store.profile.crs, within=_city_extent(store.profile),
                             permutations=permutations, seed=seed)
        what = f"{len(cells):,} hexagons of {grid_m:g} m"
    click.echo(f"{len(chosen):,} requests selected; Gi* on {what}, FDR-corrected")
    bins = cells["bin"].value_counts()
    for b, label in ((3, "hot 99%"), (2, "hot 95%"), (1, "hot 90%"), (0, "not significant"),
                     (-1, "cold 90%"), (-2, "cold 95%"), (-3, "cold 99%")):
        click.echo(f"  {label:<16}{int(bins.get(b, 0)):>7,}")
    if output:
        _write_frame(cells, output)
        click.echo(f"wrote {len(cells):,} cells to {output}")


# --- plumbing -----------------------------------------------------------------------
def _parse_end(end: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(end).replace(tzinfo=UTC) if end else None
    except ValueError as err:
        raise InputError(f"--end: got {end!r}; expected YYYY-MM-DD") from err


def _city_extent(profile: CityProfile) -> shapely.Geometry:
    """The city extent polygon in the city CRS."""
    ext = gpd.GeoSeries([profile.extent], crs="EPSG:4326")
    return ext.to_crs(profile.crs).to_numpy()[0]


def _write_frame(frame: gpd.GeoDataFrame, output: str) -> None:
    """GeoJSON (WGS84) or CSV (geometry as WKT) by the file suffix."""
    path = output_path(output)
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        out = frame.to_crs("EPSG:4326") if frame.crs is not None else frame
        for c in out.columns:
            if c != "geometry" and out[c].dtype.kind == "M":
                out[c] = out[c].astype(str)
        out.to_file(path, driver="GeoJSON")
    elif suffix == ".csv":
        plain = pd.DataFrame(frame).assign(geometry=frame.geometry.to_wkt())
        to_csv(plain, path)
    else:
        raise InputError(f"--output: got {output!r}; allowed suffixes: .geojson, .csv")
