"""`agentrt practice`: SIM-RAG's self-practice, which labels each round for the critic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentrt.console import out as console
from agentrt.console import progress_bar
from agentrt.qa.cli import DataOpt, tasks_from_options


def practice(
    data: DataOpt = None,
    split: Annotated[str, typer.Option(help="which tasks: first:N, last:N, A:B or all")] = "first:300",
    out: Annotated[Path, typer.Option(help="critic dataset to write (appended; re-running resumes)")] = Path("critic-data/sim-rag.jsonl"),
    model: Annotated[str | None, typer.Option(help="reasoner model spec")] = None,
    paths: Annotated[int, typer.Option(help="retrieval paths explored per question (first greedy, rest sampled)")] = 2,
    temperature: float = 0.7,
    max_rounds: int = 3,
    docs_per_round: int = 3,
    index: Annotated[str | None, typer.Option(help="index folder (default: the HotpotQA demo index)")] = None,
    f1_threshold: Annotated[float, typer.Option(help="an answer is correct at EM or at least this F1")] = 0.8,
    store: Annotated[Path | None, typer.Option("--store")] = None,
) -> None:
    """Self-practice: explore retrieval paths on questions with gold answers and label each round."""
    from agentrt.sim_rag.graph import SimRagConfig
    from agentrt.sim_rag.practice import practice as run_practice
    from agentrt.trajectory_store import TrajectoryStore, default_store_path

    tasks = tasks_from_options(data, split)
    settings = SimRagConfig(max_rounds=max_rounds, docs_per_round=docs_per_round, index=index)
    with TrajectoryStore(store or default_store_path()) as trajectories, progress_bar(console) as bar:
        job = bar.add_task("practice", total=len(tasks))
        report = run_practice(tasks, out, model=model, store=trajectories, paths=paths, temperature=temperature,
                              f1_threshold=f1_threshold, settings=settings, progress=lambda n: bar.advance(job, n))
    console.print(
        f"{report.examples} examples ({report.positives} correct rounds) from {report.questions - report.skipped_done} "
        f"questions in {report.seconds / 60:.1f} min ({report.skipped_done} already done, {report.failed_runs} failed runs) "
        f"-> {report.dataset}"
    )
