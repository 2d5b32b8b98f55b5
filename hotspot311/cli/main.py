"""The ``hotspot311`` group and entry point: every command family, registered in one place."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from hotspot311.cli import (
    api,
    db,
    demo,
    geocode,
    history,
    hotspots,
    layers,
    problems,
    report,
    report_contacts,
    requests,
    sources,
    sync,
)
from hotspot311.cli.base import Context, report_crash
from hotspot311.settings import get_settings


@click.group()
@click.option(
    "--store",
    "store",
    metavar="DIR|URL",
    help="Store directory or postgresql:// URL (default: $HOTSPOT311_STORE or ./.hotspot311).",
)
@click.option(
    "--city",
    metavar="PROFILE",
    help="City profile name or TOML path (default: $HOTSPOT311_CITY or philadelphia).",
)
@click.option(
    "--debug",
    is_flag=True,
    help="On an unexpected error, print the traceback instead of writing it to a log file.",
)
@click.version_option(package_name="hotspot311")
@click.pass_context
def cli(ctx: click.Context, store: str | None, city: str | None, debug: bool) -> None:
    """hotspot311: 311 requests into maps, hotspots and crew priorities."""
    ctx.obj = Context(store, city, debug=debug)


for _command in (
    requests.ingest_cmd,
    requests.status_cmd,
    requests.join_cmd,
    requests.export_group,
    requests.quarantine_cmd,
    layers.layers_group,
    demo.demo_cmd,
    hotspots.hotspots_cmd,
    history.runs_group,
    history.significance_cmd,
    geocode.geocode_cmd,
    report.report_group,
    report.request_cmd,
    db.db_group,
    problems.problems_group,
    problems.chronic_cmd,
    sources.sources_group,
    sync.sync_cmd,
    api.serve_group,
    api.api_keys_group,
):
    cli.add_command(_command)

for _report in (report_contacts.inquiries_cmd, report_contacts.calls_cmd,
                report_contacts.call_departments_cmd):
    report.report_group.add_command(_report)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``hotspot311`` script.

    Commands turn unexpected errors into one line and a log file themselves
    (:func:`hotspot311.cli.base.handle_errors`); this catches what fails outside them.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="hotspot311")
    except KeyboardInterrupt:
        click.echo("interrupted; the store is unchanged by the unfinished step", err=True)
        sys.exit(130)
    except Exception as err:
        report_crash(_command_of(args), err, debug="--debug" in args or get_settings().debug,
                     argv=["hotspot311", *args])


def _command_of(args: Sequence[str]) -> str:
    """``hotspot311`` and the command words of ``args`` (options and their values left out).

    Examples
    --------
    >>> _command_of(["--store", "s", "export", "requests", "--format", "csv"])
    'hotspot311 export requests'
    """
    words = ["hotspot311"]
    group: click.Command = cli
    rest = list(args)
    while rest and isinstance(group, click.Group):
        word = rest.pop(0)
        if word.startswith("-"):
            if "=" not in word and word not in ("--debug", "--help", "--version") and rest:
                rest.pop(0)  # the option's value
            continue
        sub = group.commands.get(word)
        if sub is None:
            break
        words.append(word)
        group = sub
    return " ".join(words)
