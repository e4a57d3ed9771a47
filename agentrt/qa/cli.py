"""`agentrt eval qa`: every QA setting on the same questions, the comparison table and plot."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agentrt.console import err, fail, progress_bar
from agentrt.console import out as console
from agentrt.paths import home

eval_app = typer.Typer(help="Evaluate graphs on tasks with known answers.", no_args_is_help=True)

DataOpt = Annotated[Path | None, typer.Option("--data", help="QA JSONL (default: the HotpotQA 600 file in ../shared/data)")]


def tasks_from_options(data: Path | None, part: str):
    """The QA tasks a command's ``--data`` and ``--split`` name, or a one-line error."""
    from agentrt.qa.data import DataError, hotpotqa_path, load_qa, split

    try:
        return split(load_qa(data or hotpotqa_path()), part)
    except (DataError, ValueError) as exc:
        fail(str(exc))


@eval_app.command("qa")
def eval_qa(
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="which tasks: first:N, last:N, A:B or all")] = "last:300",
    settings: Annotated[str, typer.Option(help="comma-separated setting names to run (default: the SIM-RAG comparison)")] = "",
    critic: Annotated[list[str] | None, typer.Option(help="trained critic(s) for SIM-RAG settings (repeatable; default sim-rag)")] = None,
    model: Annotated[str | None, typer.Option(help="reasoner model spec")] = None,
    docs_per_round: int = 3,
    max_rounds: int = 3,
    out: Annotated[Path | None, typer.Option(help="results folder (results.jsonl, summary.json, plot)")] = None,
    manifest: Annotated[Path | None, typer.Option()] = None,
    store: Annotated[Path | None, typer.Option("--store")] = None,
    cache: Annotated[bool, typer.Option(help="answer identical greedy model calls once (settings share their first steps)")] = True,
) -> None:
    """EM/F1, supporting-document recall, retrieval calls, rounds and latency for each setting, with
    95% bootstrap intervals and the paired difference against single-round RAG; writes a plot."""
    from agentrt.manifest import load_graph
    from agentrt.models.cache import cached_models
    from agentrt.qa.evaluation import (
        dump_summary,
        evaluate,
        planner_settings,
        plot,
        sim_rag_settings,
        summarize,
    )
    from agentrt.trajectory_store import TrajectoryStore, default_store_path

    tasks = tasks_from_options(data, split)
    chosen = sim_rag_settings(critics=critic, docs_per_round=docs_per_round, max_rounds=max_rounds) + planner_settings()
    if settings:
        wanted = [s.strip() for s in settings.split(",")]
        unknown = set(wanted) - {s.name for s in chosen}
        if unknown:
            err.print(f"[bold red]error:[/] unknown setting(s) {sorted(unknown)}; known: {[s.name for s in chosen]}")
            raise typer.Exit(2)
        chosen = [s for s in chosen if s.name in wanted]
    else:
        chosen = [s for s in chosen if s.graph == "sim_rag"]
    out = out or home() / "eval" / f"qa-{split.replace(':', '')}"
    started = time.time()
    with TrajectoryStore(store or default_store_path()) as trajectories, progress_bar(console) as bar, \
            cached_models(out / "model-cache.sqlite" if cache else None):
        jobs = {s.name: bar.add_task(s.name, total=len(tasks)) for s in chosen}
        results = evaluate(tasks, chosen, out / "results.jsonl", load_graph=lambda g: load_graph(g, manifest),
                           model=model, store=trajectories, progress=lambda name, n: bar.advance(jobs[name], n))
    task_ids = {t.id for t in tasks}
    summaries = summarize([r for r in results if r.task_id in task_ids], [s.name for s in chosen], reference="single-round RAG")
    table = Table("setting", "n", "EM % [95% CI]", "F1 % [95% CI]", "ΔEM vs 1-round", "ΔF1 vs 1-round", "support recall",
                  "retrievals", "rounds", "model calls", "model s", "latency s", title=f"QA on {len(tasks)} questions ({split})")
    for s in summaries:
        def pct(v: float, ci: tuple[float, float]) -> str:
            return f"{100 * v:.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"

        def diff(d: tuple[float, float, float] | None) -> str:
            return f"{100 * d[0]:+.1f} [{100 * d[1]:+.1f}, {100 * d[2]:+.1f}]" if d else ""

        table.add_row(s.setting, str(s.n), pct(s.em, s.em_ci), pct(s.f1, s.f1_ci), diff(s.em_diff), diff(s.f1_diff),
                      f"{100 * s.support_recall:.1f}" if s.support_recall is not None else "", f"{s.retrieval_calls:.2f}",
                      f"{s.rounds:.2f}", f"{s.model_calls:.2f}", f"{s.model_s:.2f}", f"{s.latency_s:.2f}")
    console.print(table)
    dump_summary(summaries, out / "summary.json")
    picture = plot(summaries, out / "accuracy_vs_retrieval.png", f"HotpotQA {split}, {model or 'local:qwen2.5-coder-0.5b'}")
    console.print(f"results in {out} ({(time.time() - started) / 60:.1f} min)" + (f"; plot {picture}" if picture else ""))
