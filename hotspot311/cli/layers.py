"""Commands for boundary layers: ``layers list``, ``layers add``."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click
import pandas as pd

from hotspot311.cli.base import Context, handle_errors, pass_ctx
from hotspot311.errors import InputError
from layers.profile import LayerSpec, validate_layer_key


@click.group("layers")
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
