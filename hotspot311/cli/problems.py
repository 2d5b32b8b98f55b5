"""Problem commands: ``problems`` (per service: requests, problems, the rule),
``problems rebuild`` and ``chronic`` (chronic locations)."""

from __future__ import annotations

import click
import pandas as pd

from geo.ingest.cells import to_csv
from hotspot311.cli.base import Context, handle_errors, output_path, pass_ctx
from hotspot311.errors import InputError


@click.group("problems", invoke_without_command=True)
@click.option("--output", help="Write the table (.csv).")
@click.pass_context
@handle_errors
def problems_group(click_ctx: click.Context, output: str | None) -> None:
    """Requests and problems per service type, with each type's problem rule.

    Repeat calls about one problem (the same service, within the rule's distance and
    time gap of an earlier call, while it is open) share a problem_id.
    """
    if click_ctx.invoked_subcommand is not None:
        return
    from clustering.problems import ProblemRules, problem_summary

    ctx: Context = click_ctx.obj
    store = ctx.store()
    rules = ProblemRules.for_city(store.profile)
    frame = store.request_columns(["service_request_id", "service_name", "problem_id"])
    if "problem_id" not in frame.columns:
        frame["problem_id"] = None
    missing = int(frame["problem_id"].isna().sum())
    frame["problem_id"] = frame["problem_id"].where(frame["problem_id"].notna(),
                                                    frame["service_request_id"])
    table = problem_summary(frame)
    keys = table["service_name"].astype(str).map(rules.key_of)
    table["distance_m"] = keys.map(lambda k: rules.rule_of(k).distance_m)
    table["gap_days"] = keys.map(lambda k: rules.rule_of(k).gap_days)
    table["group"] = [k if k != s else "" for k, s in zip(keys, table["service_name"],
                                                          strict=True)]
    total_r, total_p = int(table["requests"].sum()), int(table["problems"].sum())
    click.echo(f"{total_r:,} requests about {total_p:,} problems"
               + (f" ({total_r / total_p:.2f} calls per problem)" if total_p else ""))
    if missing:
        click.echo(f"{missing:,} requests have no problem yet (counted alone); "
                   "run: hotspot311 problems rebuild")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        click.echo(table.to_string(index=False))
    if output:
        to_csv(table, output_path(output))
        click.echo(f"wrote {len(table)} rows to {output}")


@problems_group.command("rebuild")
@pass_ctx
@handle_errors
def rebuild_cmd(ctx: Context) -> None:
    """Recompute every problem_id with the catalogue's rules (after changing them, or
    for requests stored before problems existed)."""
    store = ctx.store()
    changed = store.rebuild_problems(ctx.problems())
    click.echo(f"{changed:,} requests got a new problem_id")


@click.command("chronic")
@click.option("--service", "services", multiple=True, metavar="NAME|GROUP",
              help="Service type or group; repeatable. Default: every type.")
@click.option("--radius", "radius_m", type=float, default=25.0, show_default=True,
              help="Problems within this many metres count as one spot.")
@click.option("--months", type=int, default=12, show_default=True, help="Window length.")
@click.option("--min-problems", type=int, default=3, show_default=True,
              help="Problems within the radius that make a spot chronic.")
@click.option("--end", help="Window end, YYYY-MM-DD (default: newest request).")
@click.option("--top", type=int, default=20, show_default=True, help="Rows to print.")
@click.option("--output", help="Write the locations (.geojson map layer or .csv).")
@pass_ctx
@handle_errors
def chronic_cmd(ctx: Context, services: tuple[str, ...], radius_m: float, months: int,
                min_problems: int, end: str | None, top: int, output: str | None) -> None:
    """Chronic locations: spots with repeated problems of one type over a long window
    (repeat: one point; near_repeat: several points within the radius)."""
    from datetime import UTC, datetime

    from clustering.chronic import ChronicQuery, chronic_locations
    from clustering.selection import resolve_services
    from geo.ingest.times import ISO_UTC, times_as_text
    from layers.services import load_groups

    store = ctx.store()
    requests = store.requests()
    names = resolve_services(services, load_groups(store.profile),
                             sorted(requests["service_name"].dropna().unique()))
    try:
        end_dt = datetime.fromisoformat(end).replace(tzinfo=UTC) if end else None
    except ValueError as err:
        raise InputError(f"--end: got {end!r}; expected YYYY-MM-DD") from err
    query = ChronicQuery(services=names, radius_m=radius_m, months=months,
                         min_problems=min_problems, end=end_dt)
    found = chronic_locations(requests, query, profile=store.profile)
    click.echo(f"{len(found)} chronic locations (>= {min_problems} problems within "
               f"{radius_m:g} m in {months} months)")
    table = pd.DataFrame(found.drop(columns="geometry"))
    if len(table):
        cols = ["location_id", "service_name", "kind", "problems", "calls", "open_problems",
                "problems_per_month", "top_address"]
        with pd.option_context("display.width", 220, "display.max_columns", 20):
            click.echo(table[cols].head(top).to_string(index=False))
    if output:
        path = output_path(output)
        table["problem_ids"] = table["problem_ids"].map("; ".join)
        if path.suffix.lower() == ".csv":
            to_csv(table, path, date_format=ISO_UTC)
        elif path.suffix.lower() in (".geojson", ".json"):
            layer = found.assign(problem_ids=table["problem_ids"].to_numpy())
            times_as_text(layer).to_crs("EPSG:4326").to_file(path, driver="GeoJSON")
        else:
            raise InputError(f"--output: got {path.name!r}; allowed extensions: .geojson, .csv")
        click.echo(f"wrote {len(found)} locations to {output}")
