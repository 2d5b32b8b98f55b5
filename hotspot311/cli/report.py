"""Commands ``report`` (the standard reports and the meeting workbook) and ``request``.

::

    hotspot311 report top10 --from 2024-01-01 --to 2024-03-31 --format xlsx --output t.xlsx
    hotspot311 report sla --per department --area council_district=5
    hotspot311 report volumes --freq month --by police_district --format csv --output v.csv
    hotspot311 report meeting --output meeting.xlsx
    hotspot311 request 13854433
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import click
import pandas as pd

from hotspot311.cli.base import Context, handle_errors, output_path, pass_ctx
from hotspot311.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def filter_options(func: F) -> F:
    """The options every report takes: filters, breakdown, output and reference time."""
    options = [
        click.option("--from", "start", metavar="YYYY-MM-DD",
                     help="First local request date (default: the data's first; meeting: "
                          "28 days before --to)."),
        click.option("--to", "end", metavar="YYYY-MM-DD",
                     help="Last local request date (default: the data's last)."),
        click.option("--department", "departments", multiple=True, metavar="NAME",
                     help="Only this department (agency_responsible); repeatable."),
        click.option("--service", "services", multiple=True, metavar="NAME|GROUP",
                     help="Only this service type or group (streets, police, …); repeatable."),
        click.option("--area", "areas", multiple=True, metavar="LAYER=CODE",
                     help="Only requests in this area; repeatable."),
        click.option("--now", "now", metavar="YYYY-MM-DD[THH:MM]",
                     help="Reference time for overdue and due-soon states (default: now, UTC)."),
        click.option("--due-soon-hours", type=float, default=48.0, show_default=True,
                     help="Horizon of the open_due_soon state."),
        click.option("--as-drawn", "as_drawn", type=click.Choice(["today", "request-date"]),
                     default="today", show_default=True,
                     help="Areas as drawn today (the active generation of each layer) or on "
                          "each request's date (the generation then in force)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def parse_filter(ctx: Context, requests: pd.DataFrame, start: str | None, end: str | None,
                 departments: tuple[str, ...], services: tuple[str, ...],
                 areas: tuple[str, ...]) -> Any:
    """Build and check a :class:`reports.filters.ReportFilter` from the options."""
    from clustering.selection import resolve_services
    from layers.services import load_groups
    from reports.filters import ReportFilter

    problems = []
    dates: dict[str, date | None] = {}
    for name, value in (("--from", start), ("--to", end)):
        try:
            dates[name] = date.fromisoformat(value) if value else None
        except ValueError:
            problems.append(f"{name}: got {value!r}; expected a date YYYY-MM-DD")
    area_map: dict[str, tuple[str, ...]] = {}
    for pair in areas:
        key, sep, code = pair.partition("=")
        if not sep or not key or not code:
            problems.append(f"--area: got {pair!r}; expected LAYER=CODE, e.g. zip=19125")
            continue
        area_map[key] = (*area_map.get(key, ()), code)
    if problems:
        raise InputError(problems)
    names: tuple[str, ...] = ()
    if services:
        known = sorted(requests["service_name"].dropna().astype(str).unique())
        names = resolve_services(services, load_groups(ctx.store().profile), known)
    return ReportFilter(start=dates["--from"], end=dates["--to"], departments=departments,
                        services=names, areas=area_map).validate()


def parse_now(value: str | None) -> datetime:
    """``--now`` as a UTC datetime (naive values are UTC)."""
    if not value:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as err:
        raise InputError(f"--now: got {value!r}; expected YYYY-MM-DD or YYYY-MM-DDTHH:MM") from err
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _format_for(fmt: str | None, output: str | None) -> str:
    if fmt:
        return fmt
    if output and output.lower().endswith(".xlsx"):
        return "xlsx"
    return "csv"


@click.group("report")
def report_group() -> None:
    """The standard 311 reports (CSV or Excel) and the performance-meeting workbook."""


def _make_report_command(name: str) -> click.Command:
    from reports.meeting import REPORTS

    spec = REPORTS[name]

    @report_group.command(name, help=f"{spec.title}.")
    @filter_options
    @click.option("--by", metavar="LAYER", help="Break the report down by a layer "
                  "(zip, council_district, police_district, …).")
    @click.option("--per", default="service", show_default=True, metavar="WHAT",
                  help="sla only: one row per service, department or LAYER.")
    @click.option("--freq", type=click.Choice(["day", "week", "month"]), default="week",
                  show_default=True, help="volumes only: period length.")
    @click.option("--top", "n", type=int, default=10, show_default=True,
                  help="top10, status, departments: number of rows (per area with --by).")
    @click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]),
                  help="Output format (default: from the --output suffix, else csv).")
    @click.option("--output", metavar="PATH", help="Write here (default: print a table).")
    @pass_ctx
    @handle_errors
    def command(ctx: Context, start: str | None, end: str | None,
                departments: tuple[str, ...], services: tuple[str, ...],
                areas: tuple[str, ...], now: str | None, due_soon_hours: float,
                as_drawn: str, by: str | None, per: str, freq: str, n: int, fmt: str | None,
                output: str | None) -> None:
        from reports.export import write_table
        from reports.meeting import data_date, prepared_requests, report_sheet, run_report

        store = ctx.store()
        when = parse_now(now)
        requests = prepared_requests(store, now=when, due_soon_hours=due_soon_hours,
                                     as_drawn=as_drawn)
        filt = parse_filter(ctx, requests, start, end, departments, services, areas)
        options: dict[str, Any] = {"by": by}
        if name == "sla":
            options["per"] = per
        elif name == "volumes":
            options["freq"] = freq
        else:
            options["n"] = n
        tz = store.profile.timezone
        table = run_report(name, requests, filt, timezone=tz, **options)
        kind = _format_for(fmt, output)
        if output is None:
            if kind == "xlsx":
                raise InputError("--format xlsx: needs --output PATH")
            with pd.option_context("display.width", 250, "display.max_columns", 30,
                                   "display.max_rows", 500):
                click.echo(table.to_string(index=False))
            click.echo(f"({requests.attrs['as_drawn']})")
            return
        sheet = report_sheet(name, table, filt, sheet_name=name, by=by,
                             data_as_of=data_date(requests), now=when, timezone=tz,
                             areas=requests.attrs["as_drawn"])
        write_table(table, output_path(output), fmt=kind, sheet=sheet)
        click.echo(f"wrote {len(table):,} rows of {name} to {output}")

    return command


for _name in ("top10", "status", "sla", "volumes", "departments"):
    _make_report_command(_name)


@report_group.command("meeting")
@filter_options
@click.option("--layer", metavar="LAYER", help="Layer of the 'SLA by area' sheet "
              "(default: council_district).")
@click.option("--output", required=True, metavar="PATH.xlsx")
@pass_ctx
@handle_errors
def meeting_cmd(ctx: Context, start: str | None, end: str | None,
                departments: tuple[str, ...], services: tuple[str, ...],
                areas: tuple[str, ...], now: str | None, due_soon_hours: float,
                as_drawn: str, layer: str | None, output: str) -> None:
    """Write the performance-meeting workbook: one sheet per standard report, then the
    contact reports when the store holds a contact log."""
    from reports.calendar import load_calendar
    from reports.export import write_workbook
    from reports.meeting import meeting_sheets, prepared_requests

    store = ctx.store()
    when = parse_now(now)
    requests = prepared_requests(store, now=when, due_soon_hours=due_soon_hours,
                                 as_drawn=as_drawn)
    filt = parse_filter(ctx, requests, start, end, departments, services, areas)
    if layer is not None and layer not in requests.columns:
        raise InputError(f"--layer: got {layer!r}; layers: {', '.join(store.layer_keys())}")
    profile = store.profile
    sheets = meeting_sheets(requests, filt, timezone=profile.timezone, now=when,
                            layer=layer, contacts=store.contacts(),
                            calendar=load_calendar(profile),
                            fiscal_year_start=profile.fiscal_year_start)
    path = write_workbook(sheets, output_path(output))
    for sheet in sheets:
        click.echo(f"{sheet.name:<28}{len(sheet.table):>6,} rows"
                   f"{'  + chart' if sheet.chart else ''}")
    click.echo(f"wrote {len(sheets)} sheets to {path}; {requests.attrs['as_drawn']}")


@click.command("request")
@click.argument("request_id")
@click.option("--now", "now", metavar="YYYY-MM-DD[THH:MM]",
              help="Reference time for the SLA state (default: now, UTC).")
@pass_ctx
@handle_errors
def request_cmd(ctx: Context, request_id: str, now: str | None) -> None:
    """Print one request's record: status, due time, SLA state, areas, geocode, hotspot."""
    from layers.services import load_services
    from reports.calendar import load_calendar
    from reports.tracking import request_record

    store = ctx.store()
    profile = store.profile
    rec = request_record(store, request_id, services=load_services(profile),
                         calendar=load_calendar(profile), now=parse_now(now))
    tz = profile.timezone
    f = rec.fields

    def show(value: object) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[call-overload]
            return "—"
        if isinstance(value, pd.Timestamp):
            return f"{value.tz_convert(tz):%Y-%m-%d %H:%M %Z}"
        if isinstance(value, float):
            return f"{value:,.2f}"
        return str(value)

    click.echo(f"request {f['service_request_id']} — {show(f.get('service_name'))}")
    rows = [
        ("status", f.get("status")), ("status notes", f.get("status_notes")),
        ("department", f.get("agency_responsible")), ("description", f.get("description")),
        ("requested", f.get("requested_datetime")), ("updated", f.get("updated_datetime")),
        ("closed", f.get("closed_datetime")), ("due", f.get("due_datetime")),
        ("due from", f.get("due_source")), ("SLA state", f.get("sla_state")),
        ("days to close", f.get("days_to_close")), ("address", f.get("address")),
        ("zipcode", f.get("zipcode")), ("lat, lon", f"{f.get('lat'):.6f}, {f.get('lon'):.6f}"),
        ("geocode match", f.get("geocode_match_type")), ("geocode score", f.get("geocode_score")),
        ("source", f.get("source")), ("quality flags", f.get("quality_flags") or None),
    ]
    n_contacts, n_calls = store.contact_counts(str(f["service_request_id"]))
    rows.append(("contacts", f"{n_contacts:,} ({n_calls:,} calls) made or asked about it"))
    for label, value in rows:
        click.echo(f"  {label:<16}{show(value)}")
    click.echo("areas")
    for key, (code, name) in rec.areas.items():
        shown = "outside every area" if code is None else (
            code if name in (None, code) else f"{code}  {name}")
        click.echo(f"  {key:<20}{shown}")
    click.echo("problem")
    if rec.problem is None:
        click.echo("  none yet (written without the problem rule; see: problems rebuild)")
    else:
        p = rec.problem
        ids = list(p["request_ids"])  # type: ignore[call-overload]
        shown_ids = ", ".join(ids[:10]) + (f", … ({len(ids) - 10} more)" if len(ids) > 10 else "")
        click.echo(f"  {p['problem_id']}  {p['calls']} call(s): {shown_ids}")
    click.echo("hotspot")
    if rec.hotspot is None:
        click.echo(f"  none: {rec.hotspot_note}")
    else:
        h = rec.hotspot
        click.echo(f"  {h['hotspot_id']}  {h['calls']} calls about "
                   f"{h['count']} problems "
                   f"(last 30 days to {show(pd.Timestamp(h['window_end']))}, eps 100 m, "  # type: ignore[arg-type]
                   f"min_samples {h['min_samples']})")


__all__ = ["filter_options", "meeting_cmd", "parse_filter", "report_group", "request_cmd"]
