"""The ``hotspot311`` group and entry point: every command family, registered in one place."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from hotspot311.cli import (
    db,
    demo,
    geocode,
    history,
    hotspots,
    layers,
    problems,
    report,
    requests,
)
from hotspot311.cli.base import Context


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
@click.version_option(package_name="hotspot311")
@click.pass_context
def cli(ctx: click.Context, store: str | None, city: str | None) -> None:
    """hotspot311: 311 requests into maps, hotspots and crew priorities."""
    ctx.obj = Context(store, city)


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
):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``hotspot311`` script."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="hotspot311")
    except KeyboardInterrupt:
        click.echo("interrupted; the store is unchanged by the unfinished step", err=True)
        sys.exit(130)
