"""``agentrt rft ...``: build task sets, run the RFT loop, measure batched sampling."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agentrt.console import err as console
from agentrt.console import fail, progress_bar
from agentrt.models.base import ModelError

rft_app = typer.Typer(help="Rejection-sampling fine-tuning: task sets, the loop, sampling speed.", no_args_is_help=True)
tasks_app = typer.Typer(help="Write task sets from the shared datasets.", no_args_is_help=True)
rft_app.add_typer(tasks_app, name="tasks")




@tasks_app.command("bfcl")
def tasks_bfcl(
    out: Annotated[Path, typer.Option(help="task file to write (JSONL)")],
    split: Annotated[str, typer.Option(help="train (non-live categories) or eval (live categories)")] = "train",
    category: Annotated[list[str] | None, typer.Option(help="only these categories (repeatable)")] = None,
    limit_per_category: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """BFCL tasks: train on the non-live categories, evaluate on the live ones."""
    from agentrt.rft.bfcl import EVAL_CATEGORIES, TRAIN_CATEGORIES, load_bfcl
    from agentrt.rft.tasks import TaskError, write_tasks

    if split not in ("train", "eval"):
        fail(f"--split must be train or eval, not {split!r}")
    try:
        tasks = load_bfcl(category or (TRAIN_CATEGORIES if split == "train" else EVAL_CATEGORIES),
                          limit_per_category=limit_per_category)
        write_tasks(tasks, out)
    except TaskError as exc:
        fail(str(exc))
    console.print(f"wrote {len(tasks)} tasks to {out}")


@tasks_app.command("hotpotqa")
def tasks_hotpotqa(
    out: Annotated[Path, typer.Option(help="task file to write (JSONL)")],
    split: Annotated[str, typer.Option(help="first:N, last:N, A:B or all")] = "last:300",
) -> None:
    """Closed-book QA tasks from the HotpotQA file, verified by EM/F1."""
    from agentrt.qa.data import DataError
    from agentrt.rft.bfcl import load_hotpotqa_tasks
    from agentrt.rft.tasks import TaskError, write_tasks

    try:
        tasks = load_hotpotqa_tasks(split)
        write_tasks(tasks, out)
    except (TaskError, DataError) as exc:
        fail(str(exc))
    console.print(f"wrote {len(tasks)} tasks to {out}")




@rft_app.command("run")
def run_cmd(
    train: Annotated[Path, typer.Option(help="training task file")],
    eval: Annotated[Path, typer.Option("--eval", help="held-out task file")],
    name: Annotated[str, typer.Option(help="adapter name: serve it as local:BASE+NAME")],
    out: Annotated[Path, typer.Option(help="run folder (every round's data, model, metrics; re-run resumes)")],
    model: Annotated[str, typer.Option(help="base model spec (a local: model)")] = "local:qwen2.5-coder-0.5b",
    rounds: Annotated[int, typer.Option(min=1)] = 1,
    n: Annotated[int, typer.Option(min=1, help="samples per batched draw")] = 4,
    successes: Annotated[int, typer.Option(min=1, help="DART: sample a task until this many successes...")] = 1,
    budget: Annotated[int, typer.Option(min=1, help="...or this many samples")] = 8,
    max_per_task: Annotated[int, typer.Option(min=1, help="kept successes per task (balance)")] = 2,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.8,
    max_tokens: Annotated[int, typer.Option(min=8)] = 256,
    expert: Annotated[str | None, typer.Option(help="stronger model spec: its successes on unsolved tasks are kept too")] = None,
    workers: Annotated[int, typer.Option(min=1, help="sampling processes")] = 1,
    ray: Annotated[bool, typer.Option(help="fan sampling out over a Ray cluster (RAY_ADDRESS) instead")] = False,
    epochs: Annotated[int, typer.Option(min=1)] = 2,
    lr: Annotated[float, typer.Option(min=0.0)] = 2e-4,
    rank: Annotated[int, typer.Option(min=1)] = 8,
    batch_size: Annotated[int, typer.Option(min=1)] = 4,
    max_length: Annotated[int, typer.Option(min=32)] = 1024,
    limit: Annotated[int | None, typer.Option(min=1, help="use only the first N tasks of each file")] = None,
) -> None:
    """Sample, verify, keep successes, LoRA fine-tune, evaluate held-out; R rounds; report and plot."""
    from agentrt.rft.loop import RFTConfig, run_rft
    from agentrt.rft.sft import SFTError, SFTSettings
    from agentrt.rft.tasks import TaskError, read_tasks

    try:
        train_tasks, eval_tasks = read_tasks(train)[:limit], read_tasks(eval)[:limit]
        cfg = RFTConfig(name=name, model=model, rounds=rounds, n=n, successes=successes, budget=budget,
                        temperature=temperature, max_per_task=max_per_task, max_tokens=max_tokens, expert=expert,
                        workers=workers, ray=ray, sft=SFTSettings(epochs=epochs, lr=lr, rank=rank, alpha=2 * rank,
                                                                  batch_size=batch_size, max_length=max_length))
        with progress_bar(console) as bars:
            ids: dict[str, int] = {}

            def tick(phase: str, done: int, total: int) -> None:
                if phase not in ids:
                    ids[phase] = bars.add_task(phase, total=total)
                bars.update(ids[phase], completed=done, total=total)

            report = run_rft(train_tasks, eval_tasks, cfg, out, progress=tick)
    except (TaskError, SFTError, ModelError) as exc:
        fail(str(exc))
    table = Table(title=f"RFT of {model} → {name} (held-out: {eval.name})")
    for col in ("round", "model", "held-out accuracy", "train successes / samples", "tasks solved", "kept", "fine-tune"):
        table.add_column(col)
    for r in report.rounds:
        acc = r.eval.get("all", {})
        table.add_row(
            str(r.round), r.model, f"{100 * acc.get('accuracy', 0):.1f}% of {acc.get('n', 0)}",
            f"{r.train_successes} / {r.train_samples}" if r.train_samples is not None else "",
            f"{r.solved_tasks} / {r.train_tasks}" if r.train_tasks is not None else "",
            str(r.kept_total or ""), f"{r.sft.examples} ex, {r.sft.seconds:.0f} s, loss {r.sft.losses[-1]:.3f}" if r.sft else "",
        )
    Console().print(table)
    console.print(f"report: {out / 'report.json'}, plot: {out / 'report.png'}")


@rft_app.command("train")
def train_cmd(
    name: Annotated[str, typer.Option(help="adapter name: serve it as local:BASE+NAME (each training adds a version)")],
    model: Annotated[str, typer.Option(help="base model spec to fine-tune (a local: model)")] = "local:qwen2.5-coder-0.5b",
    store: Annotated[Path | None, typer.Option(help="trajectory database (default $AGENTRT_STORE or ~/.cache/agentrt/trajectories.sqlite)")] = None,
    graph: Annotated[str | None, typer.Option(help="only runs of this graph")] = None,
    run_model: Annotated[str | None, typer.Option(help="only runs made with this model spec")] = None,
    min_feedback: Annotated[float | None, typer.Option(help="only runs whose latest feedback under --feedback-key is at least this")] = None,
    feedback_key: Annotated[str, typer.Option(help="the feedback key --min-feedback reads")] = "correct",
    verdict: Annotated[str | None, typer.Option(help="passed or failed: only runs a verifier judged so")] = None,
    min_reward: Annotated[float | None, typer.Option(help="only runs with at least this reward")] = None,
    tool_errors: Annotated[bool, typer.Option("--tool-errors", help="also runs whose tool calls went wrong")] = False,
    edits: Annotated[str, typer.Option(help="turns a human edited: as-run, model, or skip")] = "as-run",
    epochs: Annotated[int, typer.Option(min=1)] = 2,
    lr: Annotated[float, typer.Option(min=0.0)] = 2e-4,
    rank: Annotated[int, typer.Option(min=1)] = 8,
    batch_size: Annotated[int, typer.Option(min=1)] = 4,
    max_length: Annotated[int, typer.Option(min=32)] = 1024,
) -> None:
    """Fine-tune on collected runs: choose them from a trajectory store (feedback, verdict, reward,
    graph, model), train a LoRA adapter on what the model sampled, register it under NAME."""
    from pydantic import ValidationError

    from agentrt.rft.export import ExportFilter
    from agentrt.rft.from_store import train_from_store
    from agentrt.rft.sft import SFTError, SFTSettings
    from agentrt.trajectory_store import (
        TrajectoryStore,
        TrajectoryStoreError,
        default_store_path,
    )

    if edits not in ("as-run", "model", "skip"):
        fail(f"unknown --edits {edits!r}: use as-run, model or skip")
    try:
        flt = ExportFilter(graph=graph, model=run_model, min_feedback=min_feedback, feedback_key=feedback_key,
                           verdict=verdict, min_reward=min_reward, tool_errors=tool_errors)
    except ValidationError as exc:
        fail(f"{exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
    settings = SFTSettings(epochs=epochs, lr=lr, rank=rank, alpha=2 * rank, batch_size=batch_size, max_length=max_length)
    try:
        with TrajectoryStore(store or default_store_path()) as trajectories, progress_bar(console) as bars:
            task = bars.add_task("fine-tuning", total=None)
            chosen, report = train_from_store(
                trajectories, flt, base_spec=model, name=name, edits=edits, settings=settings,  # type: ignore[arg-type]
                progress=lambda step, total, loss: bars.update(task, completed=step, total=total))
    except (SFTError, ModelError, TrajectoryStoreError) as exc:
        fail(str(exc))
    console.print(chosen.summary(), highlight=False)
    console.print(f"trained {report.examples} assistant turns of {report.conversations} runs in {report.seconds:.0f} s "
                  f"(loss {report.losses[0]:.3f} -> {report.losses[-1]:.3f}); registered {report.adapter}", highlight=False)
    console.print(f"use it as [bold]{model.split('+')[0]}+{report.adapter}[/bold] (agentrt serve --allow-model ...)")


@rft_app.command("bench-sampling")
def bench_sampling(
    tasks: Annotated[Path, typer.Option(help="task file")],
    model: Annotated[str, typer.Option()] = "local:qwen2.5-coder-0.5b",
    n: Annotated[int, typer.Option(min=2)] = 4,
    limit: Annotated[int, typer.Option(min=1)] = 8,
    max_tokens: Annotated[int, typer.Option(min=8)] = 128,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.8,
) -> None:
    """Trajectories per minute, batched (n per call) against one at a time, same tasks and model."""
    from agentrt.models.registry import load_model
    from agentrt.rft.sampling import draw
    from agentrt.rft.tasks import TaskError, read_tasks

    try:
        chosen = read_tasks(tasks)[:limit]
        m = load_model(model)
    except (TaskError, ModelError) as exc:
        fail(str(exc))
    draw(m, chosen[0], 1, temperature=temperature, batched=True, max_tokens=8)  # warm-up
    rows = []
    for batched in (False, True):
        started, count = time.perf_counter(), 0
        for t in chosen:
            count += len(draw(m, t, n, temperature=temperature, batched=batched, max_tokens=max_tokens))
        seconds = time.perf_counter() - started
        rows.append((batched, count, seconds))
    table = Table(title=f"sampling {n} per task on {len(chosen)} tasks, {model}, ≤{max_tokens} new tokens")
    for col in ("mode", "trajectories", "seconds", "trajectories/min"):
        table.add_column(col)
    for batched, count, seconds in rows:
        table.add_row("batched" if batched else "one at a time", str(count), f"{seconds:.1f}", f"{60 * count / seconds:.1f}")
    one, many = rows
    table.add_row("ratio", "", "", f"{(many[1] / many[2]) / (one[1] / one[2]):.2f}x")
    Console().print(table)
