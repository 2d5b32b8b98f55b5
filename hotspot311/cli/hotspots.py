"""The ``hotspots`` command: select, cluster, rank, print and export; save, weekly patterns
and significance through :mod:`hotspot311.cli.history`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import pandas as pd

from geo.store.reads import RequestFilter
from hotspot311.cli import history
from hotspot311.cli.base import Context, handle_errors, output_path, pass_ctx
from hotspot311.cli.engine import dask_client, engine_options, spill_directory, task_progress
from hotspot311.cli.window import service_rows, stored_services, window_rows, with_end
from hotspot311.errors import InputError


@click.command("hotspots")
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
@click.option("--count", "count", type=click.Choice(["problems", "tickets"]), default="problems",
              show_default=True, help="What a hotspot counts: problems (repeat calls about "
              "one problem count once, their calls a score part of their own) or tickets.")
@click.option("--problem-distance", "problem_distance_m", type=float, metavar="METRES",
              help="This run's problem distance (default: the catalogue's, per service).")
@click.option("--problem-gap", "problem_gap_days", type=float, metavar="DAYS",
              help="This run's problem time gap (default: the catalogue's, per service).")
@click.option("--save", is_flag=True, help="Store the run (see: runs list, runs compare).")
@click.option("--significant", is_flag=True, help="Add a 'significant' column: the hotspot "
              "meets a Gi* hot cell (95%, FDR) of the --grid.")
@click.option("--grid", "grid_m", type=float, default=250.0, show_default=True,
              help="Hexagon size in metres for --significant and --weekly.")
@click.option("--weekly", type=int, metavar="N", help="Run N weekly windows and class each "
              "grid cell (new, consecutive, intensifying, persistent, diminishing, "
              "sporadic, historical); --output writes the cells.")
@click.option("--spill-dir", "spill_dir", metavar="DIR",
              help="--engine dask: directory (read and written by every worker at this path) "
                   "where the tiled DBSCAN keeps its blocks and tiles, so a worker's memory "
                   "does not grow with the points. Default: a temporary directory on a "
                   "LocalCluster; none (in memory) with --scheduler.")
@engine_options
@pass_ctx
@handle_errors
def hotspots_cmd(ctx: Context, services: tuple[str, ...], days: int, end: str | None,
                 status: str, eps_m: float, min_samples: int | None, preset: str,
                 areas: tuple[str, ...], top: int, output: str | None,
                 work_list_path: str | None, method: str, min_cluster_size: int | None,
                 count: str, problem_distance_m: float | None, problem_gap_days: float | None,
                 save: bool, significant: bool, grid_m: float, weekly: int | None,
                 spill_dir: str | None, engine: str, scheduler: str | None) -> None:
    """Find hotspots with DBSCAN (or HDBSCAN) and print them ranked for crews.

    By default a hotspot counts problems: repeat calls about one problem (the same
    service near in space and time, see ``problems``) count once, and the calls per
    problem are a score part of their own. ``--count tickets`` counts every request.
    With ``--engine dask`` the DBSCAN runs by tiles on a Dask cluster (the same hotspots),
    spilling to ``--spill-dir`` (by default a temporary directory on a LocalCluster);
    its progress goes to stderr.
    """
    from datetime import UTC, datetime

    from clustering.density import density, suggest_min_samples
    from clustering.export import hotspot_table, work_list, write_hotspots, write_work_list
    from clustering.priority import preset as get_preset
    from clustering.problem_hotspots import problem_ids_of
    from clustering.run import run_hotspots
    from clustering.selection import HotspotQuery, resolve_services, select_requests
    from layers.services import load_groups

    if engine == "dask" and (method != "dbscan" or weekly is not None):
        raise InputError(f"--engine dask: runs the DBSCAN only; got --method {method}"
                         + (" with --weekly" if weekly is not None else "")
                         + "; use --engine local")
    if spill_dir and engine != "dask":
        raise InputError(f"--spill-dir {spill_dir!r} needs --engine dask")
    store = ctx.store()
    names = resolve_services(services, load_groups(store.profile), stored_services(store))
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
                         min_cluster_size=min_cluster_size, count=count,
                         problem_distance_m=problem_distance_m,
                         problem_gap_days=problem_gap_days).validate()
    query = with_end(store, query)
    if weekly is not None:  # its hexagon grid spans the requests it is given: all of them
        requests = store.requests()
    elif problem_distance_m is not None or problem_gap_days is not None:
        requests = service_rows(store, query)  # problems recomputed on the services' rows
    else:
        requests = window_rows(store, query)
    if count == "tickets" and (problem_distance_m is not None or problem_gap_days is not None):
        raise InputError("--problem-distance/--problem-gap: only with --count problems "
                         "(got --count tickets)")
    if min_samples is None:
        selection = select_requests(requests, query)
        n_chosen = (len(selection) if count == "tickets"
                    else problem_ids_of(selection).nunique())
        area = store.profile.area_km2
        dens = density(n_chosen, area, eps_m)
        suggested = suggest_min_samples(n_chosen, area, eps_m)
        query = HotspotQuery(**{**query.__dict__, "min_samples": suggested})
        unit = "requests" if count == "tickets" else "problems"
        click.echo(f"density: {n_chosen:,} {unit} over {area:,.0f} km² = "
                   f"{dens.points_per_km2:,.1f}/km², {dens.expected_per_disc:.2f} expected within "
                   f"{eps_m:g} m of any point; min_samples {suggested} suggested (3x background)")
    if weekly is not None:
        history.print_weekly(store, requests, query, weeks=weekly, grid_m=grid_m,
                                 preset=preset, output=output)
        return
    with dask_client(engine, scheduler) as client, spill_directory(client, spill_dir) as spill:
        result = run_hotspots(requests, query, profile=store.profile,
                              weights=get_preset(preset), layer_keys=store.layer_keys(),
                              client=client, spill_dir=spill,
                              watch=_tile_progress() if client is not None else None)
    if significant:
        result.hotspots["significant"] = history.significance_column(
            result, requests, profile=store.profile, grid_m=grid_m).to_numpy()
    n_hot = len(result.hotspots)
    clustered = int(result.members["hotspot_id"].notna().sum())
    if count == "problems":
        n_problems = problem_ids_of(result.members).nunique()
        in_hot = result.members[result.members["hotspot_id"].notna()]
        click.echo(f"{result.selected:,} requests about {n_problems:,} problems selected; "
                   f"{n_hot} hotspots holding {in_hot['problem_id'].nunique():,} problems "
                   f"({clustered:,} calls) (eps {eps_m:g} m, min_samples "
                   f"{query.min_samples} problems, preset {preset})")
    else:
        click.echo(f"{result.selected:,} requests selected; {n_hot} hotspots holding "
                   f"{clustered:,} (eps {eps_m:g} m, min_samples {query.min_samples}, "
                   f"preset {preset})")
    table = hotspot_table(result.hotspots, store.layer_keys())
    if n_hot:
        shown = table.head(top).copy()
        keys = [k for k in ("council_district", "police_district", "neighborhood")
                if k in shown.columns]
        cols = ["rank", "score", *[c for c in shown.columns if c.startswith("score_")],
                "count", *[c for c in ("calls",) if c in shown.columns], "overdue", *keys,
                "top_address"]
        if significant:
            shown["significant"] = result.hotspots["significant"].head(top).to_numpy()
            cols.insert(-1, "significant")
        with pd.option_context("display.width", 250, "display.max_columns", 30):
            click.echo(shown[cols].to_string(index=False))
    if output:
        write_hotspots(result.hotspots, output_path(output), layer_keys=store.layer_keys())
        click.echo(f"wrote {n_hot} hotspots to {output}")
    if work_list_path:
        work = work_list(result.members, now=datetime.now(UTC), count=count)
        write_work_list(work, output_path(work_list_path))
        if count == "problems":
            click.echo(f"wrote {len(work):,} problems ({int(work['calls'].sum()):,} requests) "
                       f"to {work_list_path}")
        else:
            click.echo(f"wrote {len(work):,} requests to {work_list_path}")
    if save:
        # the run was given its window's rows; the stored run says how many the store held
        result.snapshot["n_requests"] = store.request_summary(RequestFilter()).count
        history.save_result(store, result)


def _tile_progress() -> Callable[[list[Any]], None]:
    """Progress of the tiled DBSCAN on stderr: its first pass, then its second."""
    passes = iter(("DBSCAN tiles, pass 1 (core points)", "DBSCAN tiles, pass 2 (labels)"))

    def watch(futures: list[Any]) -> None:
        task_progress(next(passes, "DBSCAN tiles"))(futures)

    return watch
