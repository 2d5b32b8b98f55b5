"""Commands ``report inquiries``, ``report calls`` and ``report call-departments``.

::

    hotspot311 report inquiries --from 2024-07-01 --to 2024-07-31 --output inquiries.xlsx
    hotspot311 report calls --freq month --format csv --output calls.csv
    hotspot311 report calls --freq fytd --to 2025-03-31
    hotspot311 report call-departments --top 10 --output departments.xlsx

They read the store's contact log (``hotspot311 ingest --kind contacts``). Registered
on the ``report`` group by :mod:`hotspot311.cli.main`.
"""

from __future__ import annotations

from datetime import date

import click
import pandas as pd

from hotspot311.cli.base import Context, handle_errors, output_path, pass_ctx
from hotspot311.errors import InputError


def _date(name: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise InputError(f"{name}: got {value!r}; expected a date YYYY-MM-DD") from err


def _make(name: str) -> click.Command:
    from reports.contact_sheets import CONTACT_REPORTS

    @click.command(name, help=f"{CONTACT_REPORTS[name]} (from the contact log).")
    @click.option("--from", "start", metavar="YYYY-MM-DD",
                  help="First local date a contact was received (default: the data's first).")
    @click.option("--to", "end", metavar="YYYY-MM-DD",
                  help="Last local date (default: the data's last).")
    @click.option("--freq", type=click.Choice(["week", "month", "fytd"]), default="week",
                  show_default=True, help="calls only: by week, by month, or fiscal year to "
                  "date (through --to, beside the year before).")
    @click.option("--top", "n", type=int, default=10, show_default=True,
                  help="call-departments only: number of departments.")
    @click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]),
                  help="Output format (default: from the --output suffix, else csv).")
    @click.option("--output", metavar="PATH", help="Write here (default: print a table).")
    @pass_ctx
    @handle_errors
    def command(ctx: Context, start: str | None, end: str | None, freq: str, n: int,
                fmt: str | None, output: str | None) -> None:
        from reports.calendar import load_calendar
        from reports.contact_sheets import (
            contact_data_date,
            contact_sheet,
            run_contact_report,
            synthetic_note,
        )
        from reports.export import write_table

        store = ctx.store()
        profile = store.profile
        contacts = store.contacts()
        if contacts.empty:
            raise InputError(f"{store.describe()} holds no contacts; ingest a contact log with "
                             "`hotspot311 ingest --kind contacts FILE`")
        table = run_contact_report(name, contacts, timezone=profile.timezone,
                                   calendar=load_calendar(profile),
                                   fiscal_year_start=profile.fiscal_year_start,
                                   start=_date("--from", start), end=_date("--to", end),
                                   freq=freq, n=n)
        kind = fmt or ("xlsx" if output and output.lower().endswith(".xlsx") else "csv")
        if output is None:
            if kind == "xlsx":
                raise InputError("--format xlsx: needs --output PATH")
            with pd.option_context("display.width", 250, "display.max_columns", 30,
                                   "display.max_rows", 500):
                click.echo(table.to_string(index=False))
            if synthetic_note(contacts):
                click.echo(f"(note{synthetic_note(contacts)})")
            return
        sheet = contact_sheet(name, table, sheet_name=name, freq=freq,
                              timezone=profile.timezone,
                              fiscal_year_start=profile.fiscal_year_start,
                              data_as_of=contact_data_date(contacts),
                              synthetic=synthetic_note(contacts))
        write_table(table, output_path(output), fmt=kind, sheet=sheet)
        click.echo(f"wrote {len(table):,} rows of {name} to {output}")

    return command


inquiries_cmd = _make("inquiries")
calls_cmd = _make("calls")
call_departments_cmd = _make("call-departments")

__all__ = ["call_departments_cmd", "calls_cmd", "inquiries_cmd"]
