"""``agentrt bench ...``: the benchmarks as a typer sub-app, mounted by the main CLI with
``app.add_typer(bench_app, name="bench")``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from agentrt.console import out as console

bench_app = typer.Typer(help="Benchmarks: graph overhead against plain LangGraph, local backend speed.",
                        no_args_is_help=True)


@bench_app.command()
def executor(
    runs: Annotated[int, typer.Option(min=1, help="runs per variant, split over the rounds")] = 2000,
    rounds: Annotated[int, typer.Option(min=1, help="interleaved rounds (cancel drift)")] = 5,
    warmup: Annotated[int, typer.Option(min=0, help="untimed runs per variant first")] = 50,
    memory: Annotated[bool, typer.Option(help="also with LangGraph's in-memory checkpointer")] = True,
    trajectory: Annotated[bool, typer.Option(help="also agentrt with trajectory recording (agentrt.runner)")] = True,
    inline: Annotated[bool, typer.Option(help="also a lean hand-written LangGraph loop (tools inline, no timeout)")] = True,
    profile: Annotated[str | None, typer.Option(help="print a cProfile of this variant (e.g. agentrt) instead")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the rows as JSON only")] = False,
) -> None:
    """Per-step overhead of agentrt's tool agent vs the same loop written directly on LangGraph."""
    from agentrt.bench import executor as bench

    if profile:
        try:
            console.out(bench.profile(profile, runs), highlight=False)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--profile") from exc
        return
    if as_json:
        rows = bench.measure(runs, rounds, warmup, memory=memory, trajectory=trajectory, inline=inline)
        print(json.dumps([r.model_dump() for r in rows], indent=2))
    else:
        bench.main(runs, rounds, warmup, memory=memory, trajectory=trajectory, inline=inline, console=console)


@bench_app.command()
def backends(
    model: Annotated[str, typer.Option(help="catalog model name (see `agentrt models`)")] = "qwen2.5-coder-0.5b",
    prompt_tokens: Annotated[int, typer.Option(min=16, help="length of the long (RAG) prompt")] = 1500,
    new_tokens: Annotated[int, typer.Option(min=2, help="tokens to decode on the short prompt")] = 128,
    repeats: Annotated[int, typer.Option(min=1, help="timed repeats per figure (median)")] = 3,
    backend: Annotated[list[str] | None, typer.Option(help="only this backend: transformers or llama.cpp (repeatable)")] = None,
    isolate: Annotated[bool, typer.Option(help="measure each backend in its own process")] = True,
    chart: Annotated[Path | None, typer.Option(help="write a PNG bar chart here (needs matplotlib)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the rows as JSON only")] = False,
) -> None:
    """Prompt and decoding tokens/s of each local backend on the same model and prompts."""
    from agentrt.bench import backends as bench

    for b in backend or []:
        if b not in bench.BACKENDS:
            raise typer.BadParameter(f"{b!r}: use one of {', '.join(bench.BACKENDS)}", param_hint="--backend")
    if as_json:
        rows = bench.measure(model, prompt_tokens, new_tokens, repeats, backends=backend, isolate=isolate)
        print(json.dumps([r.model_dump() for r in rows], indent=2))
    else:
        bench.main(model, prompt_tokens, new_tokens, repeats, backend, isolate, chart, console=console)


@bench_app.command()
def server(
    clients: Annotated[list[int] | None, typer.Option(help="concurrent clients per level (repeatable)")] = None,
    seconds: Annotated[float, typer.Option(min=1, help="measured seconds per level")] = 10.0,
    warmup: Annotated[float, typer.Option(min=0, help="unmeasured seconds first")] = 2.0,
    peer: Annotated[bool, typer.Option(help="also LangGraph's dev server (langgraph dev), same graph")] = True,
    workers: Annotated[int, typer.Option(min=1, help="agentrt run workers")] = 8,
    manifest: Annotated[Path | None, typer.Option(help="langgraph.json with the react graph")] = None,
    server_core: Annotated[str, typer.Option(help="CPU core(s) the servers are pinned to")] = "0",
    client_core: Annotated[str, typer.Option(help="CPU core(s) the load client is pinned to")] = "1",
    as_json: Annotated[bool, typer.Option("--json", help="print the rows as JSON only")] = False,
) -> None:
    """Thread+run cycles/s and latency under 1..64 concurrent clients, agentrt vs langgraph dev."""
    from rich.table import Table

    from agentrt.bench import server_load as bench
    from agentrt.manifest import ManifestError, find_manifest

    try:
        found = find_manifest(manifest)
    except ManifestError as exc:
        raise typer.BadParameter(str(exc), param_hint="--manifest") from exc
    servers = ["agentrt", "langgraph dev"] if peer else ["agentrt"]
    levels = clients or [1, 16, 64]
    show = None if as_json else (lambda r: console.print(
        f"  {r.server:13} {r.clients:3} clients: {r.per_s:7.1f} cycles/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms"
        + (f", {r.errors} errors" if r.errors else "")))
    try:
        rows = bench.measure(levels, seconds, warmup, servers=servers, manifest=found, server_core=server_core,
                             client_core=client_core, workers=workers, progress=show)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps([{**r.model_dump(), "per_s": r.per_s} for r in rows], indent=2))
        return
    table = Table(title=f"thread+run cycles, graphs/react.py with scripted:echo, server on core {server_core}")
    table.add_column("clients", justify="right")
    table.add_column("threads stored", justify="right")
    for s in servers:
        table.add_column(f"{s} cycles/s", justify="right")
        table.add_column(f"{s} p50 / p99 ms", justify="right")
    if peer:
        table.add_column("throughput ratio", justify="right")
    n = len(levels) + 1
    for i in range(n):
        mine = rows[i]
        cells = [str(mine.clients), f"≥{mine.threads_before:,}"]
        for k in range(len(servers)):
            r = rows[k * n + i]
            cells += [f"{r.per_s:,.1f}" + (f" ({r.errors} err)" if r.errors else ""), f"{r.p50_ms:.1f} / {r.p99_ms:.1f}"]
        if peer:
            other = rows[n + i]
            cells.append(f"{mine.per_s / other.per_s:.1f}x" if other.per_s else "n/a")
        table.add_row(*cells)
    console.print(table)
