"""``hotspot311 serve api`` and ``hotspot311 api-keys add|list|revoke``.

``serve api`` runs the Open311 server (:mod:`hotspot311.api`) on the store with uvicorn,
on 127.0.0.1:8311 unless told otherwise. ``api-keys add NAME --role ROLE`` makes an
account's key and prints it once, alone on the last line: only its hash is stored.
"""

from __future__ import annotations

import os
import sys

import click

from geo.store.api_keys import ROLES, hash_key, new_key
from hotspot311.cli.base import Context, handle_errors, pass_ctx


@click.group("serve")
def serve_group() -> None:
    """Run a server on the store."""


@serve_group.command("api")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8311, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes (about one per core); rate limits count per process.")
@pass_ctx
@handle_errors
def serve_api_cmd(ctx: Context, host: str, port: int, workers: int) -> None:
    """The Open311 GeoReport v2 server, the tracking page and the liaison form.

    Limits, CORS and the photo folder come from HOTSPOT311_API_* variables (README).
    With --workers N, N processes serve the port, each with its own listening socket
    (SO_REUSEPORT: the system spreads new connections over them), its own database pool
    and its own count of the rate limits (a client may get up to N times the limit).
    """
    import uvicorn

    store = ctx.store()  # opened here first, so a bad store or city fails with exit 2/3
    click.echo(f"Open311 server for {store.profile.name} on {store.describe()}: "
               f"http://{host}:{port}/open311/v2/services.json, /track, /liaison, /docs")
    store.close()
    # the API is its own front door: uvicorn imports it by name, with the store and city
    # handed over in the environment it reads (hotspot311.api.asgi)
    os.environ["HOTSPOT311_STORE"] = ctx.store_location
    os.environ["HOTSPOT311_CITY"] = ctx.city
    if workers > 1:  # processes with a listening socket each (hotspot311.api.workers)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", "hotspot311.api.workers", "--host",
                                  host, "--port", str(port), "--workers", str(workers)])
    uvicorn.run("hotspot311.api.asgi:app_from_env", factory=True, host=host, port=port,
                access_log=False, log_level="warning", limit_concurrency=500,
                timeout_keep_alive=15, h11_max_incomplete_event_size=64 * 1024)


@click.group("api-keys")
def api_keys_group() -> None:
    """Accounts that post requests: liaisons, field staff, partner systems."""


@api_keys_group.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES),
              help="liaison, field_staff or partner (a partner system).")
@pass_ctx
@handle_errors
def add_cmd(ctx: Context, name: str, role: str) -> None:
    """Make a key for account NAME; print it once (only its hash is stored)."""
    key = new_key()
    record = ctx.store().add_api_key(name, role, hash_key(key))
    click.echo(f"account {record.name} ({record.role}) added. Its key is shown once, below; "
               "store it safely (it cannot be shown again; revoke and add to replace it):")
    click.echo(key)


@api_keys_group.command("list")
@pass_ctx
@handle_errors
def list_cmd(ctx: Context) -> None:
    """Every account: name, role, created, revoked (never a key)."""
    keys = ctx.store().api_keys()
    if not keys:
        click.echo("no accounts")
        return
    click.echo(f"{'name':<24}{'role':<14}{'created':<22}revoked")
    for k in keys:
        revoked = f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "-"
        click.echo(f"{k.name:<24}{k.role:<14}{k.created_at:%Y-%m-%d %H:%M:%S}   {revoked}")


@api_keys_group.command("revoke")
@click.argument("name")
@pass_ctx
@handle_errors
def revoke_cmd(ctx: Context, name: str) -> None:
    """Revoke account NAME's key (posts with it get 403 from now on)."""
    record = ctx.store().revoke_api_key(name)
    click.echo(f"account {record.name}: key revoked at {record.revoked_at:%Y-%m-%d %H:%M:%S}")


__all__ = ["api_keys_group", "serve_group"]
