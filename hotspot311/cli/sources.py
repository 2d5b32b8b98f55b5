"""Commands for feed sources: ``sources add|list|show|remove``."""

from __future__ import annotations

import json

import click

from geo.feeds.config import make_config
from geo.ingest.mapping import ColumnMapping
from geo.store.sources import KINDS, Source, sources_frame, watermark_text
from hotspot311.cli.base import Context, handle_errors, pass_ctx
from hotspot311.errors import InputError


@click.group("sources")
def sources_group() -> None:
    """City feeds the store keeps current (see ``hotspot311 sync``)."""


@sources_group.command("add")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(KINDS), help="The feed protocol.")
@click.option("--url", required=True, metavar="URL",
              help="Open311 endpoint base, Socrata domain, CARTO SQL API URL or file URL.")
@click.option("--dataset", metavar="ID", help="Socrata dataset id, e.g. erm2-nwe9.")
@click.option("--table", metavar="NAME", help="CARTO table, e.g. public_cases_fc.")
@click.option("--jurisdiction", metavar="ID", help="Open311 jurisdiction_id.")
@click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN",
              help="Canonical field from a feed column (repeatable).")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
              help="Canonical field given one value for every row (repeatable).")
@click.option("--mapping", "mapping_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="TOML file with [columns] and [constants] (--map/--set win over it).")
@click.option("--page-size", type=int, default=1000, show_default=True,
              help="Rows per request.")
@click.option("--rate-limit", type=float, default=5.0, show_default=True,
              help="Most requests per second.")
@click.option("--token-env", metavar="VAR",
              help="Environment variable holding the app token / API key (not the token).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Protocol option, e.g. Open311 window=updated, paging=yes.")
@click.option("--replace", is_flag=True, help="Replace the source of that name (state kept).")
@pass_ctx
@handle_errors
def sources_add_cmd(ctx: Context, name: str, kind: str, url: str, dataset: str | None,
                    table: str | None, jurisdiction: str | None, maps: tuple[str, ...],
                    sets: tuple[str, ...], mapping_file: str | None, page_size: int,
                    rate_limit: float, token_env: str | None, options: tuple[str, ...],
                    replace: bool) -> None:
    """Register a feed source NAME."""
    if mapping_file:
        base = ColumnMapping.from_toml(mapping_file)
        maps = (*(f"{k}={v}" for k, v in base.columns.items()), *maps)
        sets = (*(f"{k}={v}" for k, v in base.constants.items()), *sets)
    config = make_config(name, kind=kind, url=url, dataset=dataset, table=table,
                         jurisdiction=jurisdiction, maps=maps, sets=sets, page_size=page_size,
                         rate_limit=rate_limit, token_env=token_env, options=options)
    ctx.store().save_source(config, replace=replace)
    click.echo(f"source {name!r} ({kind}) registered; run: hotspot311 sync {name}")


@sources_group.command("list")
@pass_ctx
@handle_errors
def sources_list_cmd(ctx: Context) -> None:
    """List the sources with their last sync."""
    sources = ctx.store().sources()
    if not sources:
        click.echo("no sources; add one with: hotspot311 sources add NAME --kind … --url …")
        return
    click.echo(sources_frame(sources).to_string(index=False))


@sources_group.command("show")
@click.argument("name")
@pass_ctx
@handle_errors
def sources_show_cmd(ctx: Context, name: str) -> None:
    """Show one source: configuration and state."""
    store = ctx.store()
    source = store.source(name)
    c, s = source.config, source.state
    for key, value in (
        ("name", c.name), ("kind", c.kind), ("url", c.url), ("dataset", c.dataset),
        ("table", c.table), ("jurisdiction", c.jurisdiction),
        ("columns", json.dumps(c.columns)), ("constants", json.dumps(c.constants)),
        ("page size", c.page_size), ("rate limit", f"{c.rate_limit:g}/s"),
        ("token from", c.token_env), ("options", json.dumps(c.options)),
        ("last sync", s.last_sync.isoformat(timespec="seconds") if s.last_sync else None),
        ("outcome", s.last_outcome), ("rows synced", f"{s.rows:,}"), ("pages", s.pages),
        ("watermark", json.dumps(s.watermark) if s.watermark else None),
        ("last error", s.last_error), ("services", len(store.source_services(name))),
    ):
        click.echo(f"{key:<13}{'' if value is None else value}")


@sources_group.command("remove")
@click.argument("name")
@pass_ctx
@handle_errors
def sources_remove_cmd(ctx: Context, name: str) -> None:
    """Forget source NAME (its requests stay in the store)."""
    if not ctx.store().remove_source(name):
        raise InputError(f"NAME: no source named {name!r}; see hotspot311 sources list")
    click.echo(f"source {name!r} removed; its requests stay in the store")


def source_lines(sources: list[Source]) -> list[str]:
    """Lines of ``status`` about the sources: last sync, outcome, rows, watermark, error."""
    lines = [f"sources      {len(sources):>9,}"] if sources else []
    for s in sources:
        st = s.state
        when = st.last_sync.isoformat(timespec="seconds") if st.last_sync else "never synced"
        mark = watermark_text(st.watermark) or "none"
        lines.append(f"    {s.config.name:<20} {s.config.kind:<8} {when} "
                     f"{st.last_outcome or ''} {st.rows:,} rows; watermark {mark}")
        if st.last_error:
            lines.append(f"      last error: {st.last_error[:300]}")
    return lines
