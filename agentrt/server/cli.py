"""``agentrt serve`` and ``agentrt keys``: start the server, manage its API keys."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agentrt.console import err as console
from agentrt.paths import home
from agentrt.server.store import ServerStore, ServerStoreError

keys_app = typer.Typer(help="API keys of a server (only their hashes are stored).", no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option(help="server data folder (default: AGENTRT_HOME/server)")]


def data_dir(value: Path | None) -> Path:
    return value or home() / "server"


def _store(folder: Path | None) -> ServerStore:
    try:
        return ServerStore(data_dir(folder) / "server.sqlite")
    except ServerStoreError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def serve(
    manifest: Annotated[Path | None, typer.Option(help="langgraph.json naming the graphs to serve")] = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8123,
    data: DataDir = None,
    workers: Annotated[int, typer.Option(help="runs executed at once")] = 8,
    queue_size: Annotated[int, typer.Option(help="runs waiting beyond that; more get 503")] = 256,
    max_body_bytes: Annotated[int, typer.Option(help="largest request body accepted")] = 1_000_000,
    require_key: Annotated[bool | None, typer.Option(
        "--require-key/--no-require-key", help="default: required as soon as a key exists")] = None,
    allow_model: Annotated[list[str] | None, typer.Option(
        "--allow-model", help="a model spec every graph's runs may choose (repeat it); by default a run "
                              "gets only its graph's own model, or those its manifest entry lists in `models`")] = None,
    max_models: Annotated[int | None, typer.Option(
        min=1, help="loaded models kept at once, least recently used dropped first (default 4)")] = None,
    header_timeout: Annotated[float, typer.Option(
        min=0.1, help="seconds a client may take to send a request's headers (then 408)")] = 10.0,
    graceful_timeout: Annotated[float, typer.Option(
        min=0, help="on SIGTERM, seconds to let runs in progress finish before they are marked interrupted")] = 3.0,
    log_level: Annotated[str, typer.Option()] = "warning",
) -> None:
    """Serve the manifest's graphs over HTTP (LangGraph's API, plus OpenAI's at /v1)."""
    import uvicorn

    from agentrt.manifest import ManifestError, find_manifest
    from agentrt.server.app import ServerSettings, create_app
    from agentrt.server.http_protocol import header_timeout_protocol
    from agentrt.sqlite_health import DamagedDatabase, quick_check

    folder = data_dir(data)
    try:
        found = find_manifest(manifest)
        for name, what in (("server.sqlite", "threads, runs and API keys"), ("trajectories.sqlite", "trajectories"),
                           ("checkpoints.sqlite", "thread state checkpoints")):
            quick_check(folder / name, what)
        store = _store(folder)
        keys = store.has_keys()
        store.close()
    except (ManifestError, DamagedDatabase) as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    required = keys if require_key is None else require_key
    if required and not keys:
        console.print(f"[red]--require-key but {folder} has no keys: make one with "
                      f"`agentrt keys create NAME --data {folder}`[/red]")
        raise typer.Exit(2)
    settings = ServerSettings(manifest=found, data_dir=folder, workers=workers, queue_size=queue_size,
                              max_body_bytes=max_body_bytes, require_key=require_key,
                              allow_models=tuple(allow_model or ()), max_models=max_models,
                              graceful_timeout=graceful_timeout)
    console.print(f"agentrt serving {found} at [bold]http://{host}:{port}[/bold] (docs: /docs, OpenAI: /v1)")
    console.print(f"data: {folder}; API keys: " + ("[green]required[/green]" if required else
                  "[yellow]not required[/yellow] (make one with `agentrt keys create NAME`)"))
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False,
                http=header_timeout_protocol(header_timeout), timeout_graceful_shutdown=max(1, round(graceful_timeout)))
    # The stores are closed and in-flight runs marked; a worker still inside a tool call must not
    # keep the process alive (the interpreter would wait for its thread at exit).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@keys_app.command("create")
def create_key(name: Annotated[str, typer.Argument(help="who or what the key is for")], data: DataDir = None) -> None:
    """Make a key; it is printed once, on stdout, and only its hash is kept."""
    key_id, key = _store(data).create_key(name)
    console.print(f"created {key_id} for {name!r}; keep the key, it is not shown again:")
    print(key)


@keys_app.command("list")
def list_keys(data: DataDir = None) -> None:
    table = Table("id", "name", "created", "revoked")
    import datetime as dt

    for k in _store(data).list_keys():
        when = dt.datetime.fromtimestamp(k["created_at"]).isoformat(timespec="seconds")
        table.add_row(k["key_id"], k["name"], when, "yes" if k["revoked_at"] else "")
    Console().print(table)


@keys_app.command("revoke")
def revoke_key(key_id: str, data: DataDir = None) -> None:
    if not _store(data).revoke_key(key_id):
        console.print(f"[red]no active key {key_id!r} (agentrt keys list shows them)[/red]")
        raise typer.Exit(2)
    console.print(f"revoked {key_id}")
