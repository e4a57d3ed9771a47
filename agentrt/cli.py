"""The ``agentrt`` command line: run graphs, manage models, read trajectories, benchmark."""

from __future__ import annotations

import json
import sqlite3
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from langchain_core.messages import AIMessage, ToolMessage
from rich.panel import Panel
from rich.table import Table

from agentrt.bench.cli import bench_app
from agentrt.console import err, fail
from agentrt.console import out as console
from agentrt.cr_planner.cli import plan_app
from agentrt.critics.cli import critic_app
from agentrt.errors import AgentrtError
from agentrt.paths import home
from agentrt.qa.cli import eval_app
from agentrt.retrieval.cli import index_app
from agentrt.rft.cli import rft_app
from agentrt.server.cli import keys_app, serve
from agentrt.sim_rag.cli import practice

app = typer.Typer(help="agentrt: run LLM agents with tools and retrieval, record trajectories.", no_args_is_help=True)
traj_app = typer.Typer(help="Read and export recorded trajectories.", no_args_is_help=True)
app.add_typer(traj_app, name="traj")
app.add_typer(bench_app, name="bench")
app.add_typer(eval_app, name="eval")
app.add_typer(index_app, name="index")
app.add_typer(critic_app, name="critic")
app.command("practice")(practice)
app.command("serve")(serve)
app.add_typer(keys_app, name="keys")
app.add_typer(rft_app, name="rft")
app.add_typer(plan_app, name="plan")

StoreOpt = Annotated[Path | None, typer.Option("--store", help="trajectory database (default $AGENTRT_STORE or ~/.cache/agentrt/trajectories.sqlite)")]
KNOWN_ERRORS = (AgentrtError, ValueError, OSError, sqlite3.Error)




def _store(path: Path | None) -> Any:
    from agentrt.trajectory_store import TrajectoryStore, default_store_path

    return TrajectoryStore(path or default_store_path())


@app.command()
def run(
    question: Annotated[str | None, typer.Argument(help="what to ask; omit with --resume")] = None,
    graph: Annotated[str, typer.Option(help="graph name from the manifest, or path.py:attr")] = "react",
    model: Annotated[str | None, typer.Option(help="model spec (see `agentrt models`)")] = None,
    thread: Annotated[str | None, typer.Option(help="thread id: continue this conversation")] = None,
    resume: Annotated[bool, typer.Option(help="resume the thread's interrupted run from its last checkpoint")] = False,
    max_steps: Annotated[int | None, typer.Option(help="budget: model calls")] = None,
    max_tool_calls: Annotated[int | None, typer.Option(help="budget: tool calls")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="budget: wall time")] = None,
    temperature: Annotated[float | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    manifest: Annotated[Path | None, typer.Option(help="langgraph.json listing the graphs")] = None,
    checkpoints: Annotated[Path | None, typer.Option(help="checkpoint database (default ~/.cache/agentrt/checkpoints.sqlite)")] = None,
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON only")] = False,
) -> None:
    """Ask a graph a question; the steps show as they happen and the run is recorded."""
    from agentrt.agent import user_input
    from agentrt.checkpoints import sqlite_checkpointer
    from agentrt.manifest import load_graph
    from agentrt.models import weights
    from agentrt.models.registry import DEFAULT_MODEL, load_model
    from agentrt.runner import run_config, stream_run

    if resume and not thread:
        fail("--resume needs --thread ID (the id printed by the run you want to resume)")
    if not resume and not (question or "").strip():
        fail('give a question, e.g. agentrt run "What is 17 * 23 + 4?"')
    try:
        compiled = load_graph(graph, manifest)
        trajectories = _store(store)
        spec = model or DEFAULT_MODEL
        first_use = spec.startswith("local:") and not weights.prepared(spec.removeprefix("local:"))
        note = " (first use: assembling and converting the weights, about a minute)" if first_use else ""
        with console.status(f"loading {spec}{note} ...", spinner="dots"):
            load_model(spec)
        saver = sqlite_checkpointer(checkpoints)
    except KNOWN_ERRORS as exc:
        fail(str(exc))
    thread = thread or str(uuid.uuid4())
    config = run_config(
        model=model, thread_id=thread, max_steps=max_steps, max_tool_calls=max_tool_calls,
        max_seconds=max_seconds, temperature=temperature, seed=seed,
    )
    inputs = None if resume else user_input(question or "")
    view = _RunView(quiet=as_json)
    result = None
    for event in stream_run(compiled.copy(update={"checkpointer": saver}), graph, inputs, config, trajectories):
        if event.kind == "end":
            result = event.data
        else:
            view.show(event)
    assert result is not None
    if as_json:
        print(result.model_dump_json())
    else:
        view.finish(result)
    if result.status == "failed":
        raise typer.Exit(1)


class _RunView:
    """Renders a run as it happens: streamed text, tool calls and their results."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.streaming = quiet, False

    def show(self, event: Any) -> None:
        if self.quiet:
            return
        if event.kind == "token":
            console.print(event.data, end="", style="cyan", markup=False, highlight=False)
            self.streaming = True
            return
        if self.streaming:
            console.print()
            self.streaming = False
        for m in (event.data or {}).get("messages", []) if isinstance(event.data, dict) else []:
            if isinstance(m, AIMessage):
                for c in m.tool_calls:
                    args = ", ".join(f"{k}={v!r}" for k, v in c["args"].items())
                    console.print(f"[bold]→ {c['name']}[/]({args})", highlight=False)
                for c in m.invalid_tool_calls:
                    console.print(f"[red]→ malformed tool call:[/] {c.get('error')}", markup=True, highlight=False)
            elif isinstance(m, ToolMessage):
                ms = 1000 * float(m.response_metadata.get("latency_s") or 0)
                style = "red" if m.status == "error" else "green"
                console.print(f"[{style}]← {str(m.content)[:300]}[/] [dim]({ms:.0f} ms)[/]", highlight=False)
        if event.node == "stop":
            console.print(f"[yellow]budget reached: {event.data.get('stop_reason')}[/]")

    def finish(self, result: Any) -> None:
        if self.streaming:
            console.print()
        if result.status == "failed":
            err.print(f"[bold red]run failed:[/] {result.error}")
        else:
            console.print(Panel(result.answer or "(no answer)", title="answer", border_style="green"))
        console.print(
            f"[dim]run {result.run_id} · thread {result.thread_id} · {result.status} · "
            f"stop: {result.stop_reason} · {result.duration_s:.1f} s[/]"
        )


@app.command()
def models(
    prepare: Annotated[bool, typer.Option(help="assemble and cache the local models now")] = False,
    verify: Annotated[bool, typer.Option(help="re-check the sha256 of assembled models")] = False,
) -> None:
    """List model specs; with --prepare, make the installed local models ready to load fast."""
    from agentrt.models import weights
    from agentrt.models.registry import list_specs

    table = Table("spec", "description", "ready", "note")
    for s in list_specs():
        table.add_row(s.spec, s.description, "yes" if s.available else "no", s.note)
    console.print(table)
    for name in weights.CATALOG:
        if (prepare or verify) and weights.installed(name):
            try:
                with console.status(f"preparing {name} ..."):
                    weights.hf_dir(name)
                    digest = weights.verify(name) if verify else None
                console.print(f"{name}: ready in {home() / 'models' / name}" + (f" (sha256 {digest})" if digest else ""))
            except AgentrtError as exc:
                fail(str(exc))


@traj_app.command("list")
def traj_list(
    limit: int = 20,
    graph: str | None = None,
    status: str | None = None,
    store: StoreOpt = None,
) -> None:
    """The newest runs."""
    try:
        rows = _store(store).list(limit=limit, graph=graph, status=status)
    except KNOWN_ERRORS as exc:
        fail(str(exc))
    table = Table("run", "started", "graph", "model", "status", "stop", "answer")
    for r in rows:
        table.add_row(
            r.run_id[:12], r.started_at.strftime("%Y-%m-%d %H:%M:%S"), r.graph, r.model or "", r.status,
            r.stop_reason or "", (r.final_answer or "")[:60],
        )
    console.print(table)


@traj_app.command("show")
def traj_show(run_id: str, store: StoreOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One run, step by step (a unique prefix of the id is enough)."""
    try:
        t = _store(store).get(run_id)
    except KNOWN_ERRORS as exc:
        fail(str(exc))
    if as_json:
        print(t.model_dump_json(indent=2))
        return
    console.print(f"[bold]{t.run_id}[/] {t.graph} · {t.model} · {t.status} · stop: {t.stop_reason}")
    console.print(f"[dim]started {t.started_at} · {t.duration_s or 0:.2f} s · tokens in {t.usage.input_tokens} out {t.usage.output_tokens}[/]")
    for m in t.messages:
        role = m.get("role")
        text = m.get("content") if isinstance(m.get("content"), str) else json.dumps(m.get("content"))
        calls = "".join(f"\n  → {c['function']['name']}({c['function']['arguments']})" for c in m.get("tool_calls") or [])
        console.print(f"[bold]{role}:[/] {text}{calls}", highlight=False)
    if t.final_answer:
        console.print(Panel(t.final_answer, title="answer", border_style="green"))


@traj_app.command("feedback")
def traj_feedback(
    run_id: Annotated[str, typer.Argument(help="the run (a unique prefix of its id is enough)")],
    score: Annotated[float, typer.Option(help="the judgement, e.g. 1 for right and 0 for wrong")],
    key: Annotated[str, typer.Option(help="what is judged: correct, thumbs, ...")] = "correct",
    comment: Annotated[str | None, typer.Option(help="why, in words")] = None,
    store: StoreOpt = None,
) -> None:
    """Judge a run; exports and `agentrt rft train` can choose runs by it (--min-feedback)."""
    import re

    from agentrt.trajectory import Feedback

    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", key):
        fail(f"--key {key!r}: use 1-64 letters, digits, . _ : or -")
    try:
        s = _store(store)
        full = s.get(run_id).run_id
        s.add_feedback(full, Feedback(key=key, score=score, comment=comment, source="cli"))
    except KNOWN_ERRORS as exc:
        fail(str(exc))
    err.print(f"feedback {key}={score:g} recorded for run {full}", highlight=False)


@traj_app.command("export")
def traj_export(
    out: Annotated[Path | None, typer.Option("--out", help="file to write (default: standard output)")] = None,
    format: Annotated[str, typer.Option("--format", help="jsonl (whole trajectories), openai (OpenAI fine-tuning "
                                        "chat format) or trl (Hugging Face / TRL conversational format with tools)")] = "jsonl",
    graph: str | None = None,
    model: Annotated[str | None, typer.Option(help="only runs of this model spec")] = None,
    status: Annotated[str | None, typer.Option(help="only runs with this status (openai and trl: default completed)")] = None,
    min_reward: Annotated[str | None, typer.Option("--min-reward", help="only runs with at least this reward")] = None,
    verdict: Annotated[str | None, typer.Option(help="passed or failed: only runs the verifier judged so")] = None,
    since: Annotated[str | None, typer.Option(help="only runs started at or after this time (ISO 8601; UTC unless it says)")] = None,
    until: Annotated[str | None, typer.Option(help="only runs started at or before this time (ISO 8601; UTC unless it says)")] = None,
    task_type: Annotated[list[str] | None, typer.Option("--task-type", help="only these task types (repeat, or comma-separate)")] = None,
    sidecar: Annotated[bool, typer.Option("--sidecar", help="openai: also write task_type and difficulty per example beside OUT (train.jsonl -> train.meta.jsonl)")] = False,
    min_feedback: Annotated[str | None, typer.Option("--min-feedback", help="only runs whose latest feedback under --feedback-key is at least this")] = None,
    feedback_key: Annotated[str, typer.Option("--feedback-key", help="the feedback key --min-feedback reads")] = "correct",
    tool_errors: Annotated[bool, typer.Option("--tool-errors", help="openai/trl: keep runs whose tool calls went wrong (left out by default)")] = False,
    edits: Annotated[str, typer.Option("--edits", help="turns a human reviewer edited: as-run (as executed), model (as the model wrote them; the example ends there) or skip")] = "as-run",
    store: StoreOpt = None,
) -> None:
    """Matching trajectories, one JSON document per line: whole records, or fine-tuning examples."""
    from agentrt.rft.export import FORMATS, export, write_examples

    if format not in FORMATS:
        fail(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    if verdict is not None and verdict not in ("passed", "failed"):
        fail(f"unknown verdict {verdict!r}: use passed or failed")
    if sidecar and out is None:
        fail("--sidecar needs --out FILE: the sidecar is written beside it")
    if edits not in ("as-run", "model", "skip"):
        fail(f"unknown --edits {edits!r}: use as-run, model or skip")
    flt = _export_filter(format, graph=graph, model=model, status=status, min_reward=min_reward, verdict=verdict,
                         since=since, until=until, task_types=task_type, min_feedback=min_feedback,
                         feedback_key=feedback_key, tool_errors=tool_errors)
    try:
        s = _store(store)
        report = (write_examples(s, sys.stdout, format, flt, edits=edits) if out is None
                  else export(s, out, format, flt, sidecar, edits=edits))
    except KNOWN_ERRORS as exc:
        fail(str(exc))
    for skipped in report.skipped[:10]:
        err.print(f"[yellow]skipped run {skipped.run_id}:[/] {skipped.reason}", markup=True, highlight=False)
    if len(report.skipped) > 10:
        err.print(f"[yellow]... and {len(report.skipped) - 10} more skipped runs[/]")
    err.print(report.summary(), markup=False, highlight=False)
    if report.written == 0:
        raise typer.Exit(1)


def _export_filter(format: str, *, task_types: list[str] | None, **fields: Any) -> Any:
    """The export filter from the command's options, or one red line naming the bad option.

    Times and numbers arrive as text and are parsed here, by the filter's own model, so a bad value
    is the same one-line error as any other instead of a usage box.

    Whole-trajectory exports (jsonl) keep every status unless one is asked for; training formats
    default to completed runs, since a failed or interrupted run is no example to learn from."""
    from pydantic import ValidationError

    from agentrt.rft.export import ExportFilter

    types = [t.strip() for item in task_types or [] for t in item.split(",") if t.strip()]
    if fields["status"] is None and format != "jsonl":
        fields["status"] = "completed"
    try:
        return ExportFilter(task_types=types, **fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "option"
        option = "--task-type" if name == "task_types" else "--" + name.replace("_", "-")
        fail(f"{option}: {first['msg']} (got {first.get('input')!r})")


def main() -> None:  # pragma: no cover - console entry point
    app()
