"""``agentrt bench ...``: the benchmarks as a typer sub-app, mounted by the main CLI with
``app.add_typer(bench_app, name="bench")``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

bench_app = typer.Typer(help="Benchmarks: graph overhead against plain LangGraph, local backend speed.",
                        no_args_is_help=True)
console = Console()


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
