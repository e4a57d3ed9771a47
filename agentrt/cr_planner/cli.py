"""``agentrt plan collect`` (tree search for training pairs) and ``agentrt plan train`` (the
sub-goal and execution critics)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agentrt.console import err, fail, progress_bar
from agentrt.console import out as console
from agentrt.paths import home

plan_app = typer.Typer(help="CR-Planner: collect critic training pairs by tree search, train the critics.",
                       no_args_is_help=True)




@plan_app.command()
def collect(
    data: Annotated[Path | None, typer.Option("--data", help="QA JSONL (default: the HotpotQA 600 file in ../shared/data)")] = None,
    split: Annotated[str, typer.Option(help="which tasks: first:N, last:N, A:B or all")] = "first:40",
    out: Annotated[Path | None, typer.Option(help="folder for pairs.jsonl and trees.jsonl (appended; re-running resumes)")] = None,
    model: Annotated[str | None, typer.Option(help="reasoner model spec")] = None,
    simulations: Annotated[int, typer.Option(min=1, help="tree-search simulations per question")] = 8,
    max_model_calls: Annotated[int, typer.Option(min=1, help="model calls per question, rollouts included")] = 40,
    samples: Annotated[int, typer.Option(min=1, help="candidates sampled per model-written sub-goal")] = 3,
    max_steps: Annotated[int, typer.Option(min=1)] = 5,
    retrieve_k: Annotated[int, typer.Option(min=1)] = 4,
    keep_docs: Annotated[int, typer.Option(min=1)] = 2,
    margin: Annotated[float, typer.Option(min=0.0, help="least value difference between siblings that makes a pair")] = 0.1,
    index: Annotated[str | None, typer.Option(help="index folder (default: the HotpotQA demo index)")] = None,
    cache: Annotated[bool, typer.Option(help="answer identical greedy rollouts once")] = True,
) -> None:
    """Monte Carlo tree search over the planner's actions on QA tasks with gold answers; sibling
    actions whose values differ become ranking pairs for the critics."""
    from agentrt.cr_planner.collect import collect as run_collect
    from agentrt.cr_planner.mcts import SearchSettings, TreeStats
    from agentrt.cr_planner.plan import PlanSettings
    from agentrt.models.base import ModelError
    from agentrt.models.cache import cached_models
    from agentrt.models.registry import DEFAULT_MODEL, load_model
    from agentrt.qa.cli import tasks_from_options
    from agentrt.retrieval.errors import RetrievalError
    from agentrt.retrieval.shared import retriever_for

    tasks = tasks_from_options(data, split)
    out = out or home() / "plan" / f"pairs-{split.replace(':', '')}"
    settings = PlanSettings(max_steps=max_steps, samples=samples, retrieve_k=retrieve_k, keep_docs=keep_docs, index=index)
    search = SearchSettings(simulations=simulations, max_model_calls=max_model_calls, margin=margin)
    try:
        llm = load_model(model or DEFAULT_MODEL)
        retriever = retriever_for(index)
        with cached_models(out / "model-cache.sqlite" if cache else None), progress_bar(err) as bar:
            job = bar.add_task("tree search", total=len(tasks))

            def progress(stats: TreeStats | None) -> None:
                bar.advance(job)
                if stats:
                    bar.update(job, description=f"tree search (last: {stats.nodes} nodes, {stats.model_calls} calls, "
                                                f"best F1 {stats.best_reward:.2f})")

            report = run_collect(tasks, out, settings=settings, search=search, model=llm, retriever=retriever,
                                 progress=progress)
    except (ModelError, RetrievalError, OSError) as exc:
        fail(str(exc))
    console.print(f"{report.subgoal_pairs} sub-goal pairs and {report.execution_pairs} execution pairs from "
                  f"{report.questions - report.skipped_done} questions ({report.model_calls} model calls) in "
                  f"{report.seconds / 60:.1f} min ({report.skipped_done} already done) -> {report.folder}",
                  highlight=False, soft_wrap=True)


@plan_app.command()
def train(
    pairs: Annotated[Path, typer.Argument(help="a collection folder (from `plan collect`) or its pairs.jsonl")],
    kind: Annotated[str, typer.Option(help="subgoal, execution or both")] = "both",
    subgoal_name: Annotated[str, typer.Option(help="name of the sub-goal critic")] = "cr-subgoal",
    execution_name: Annotated[str, typer.Option(help="name of the execution critic")] = "cr-execution",
    epochs: Annotated[int, typer.Option(min=1)] = 3,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    lr: Annotated[float, typer.Option(min=0.0)] = 5e-5,
    max_length: Annotated[int, typer.Option(min=16, max=512)] = 384,
    dev_fraction: Annotated[float, typer.Option(min=0.0, max=0.9, help="share of questions held out")] = 0.2,
    seed: int = 0,
) -> None:
    """Train the sub-goal and execution critics (MiniLM, pairwise ranking loss) and report their
    ranking accuracy on the pairs of held-out questions; each is saved as a new version."""
    from agentrt.cr_planner.collect import read_pairs
    from agentrt.critics.classifier import CriticError
    from agentrt.critics.ranking import train_ranking_critic

    if kind not in ("subgoal", "execution", "both"):
        fail(f"--kind must be subgoal, execution or both, not {kind!r}")
    kinds = ["subgoal", "execution"] if kind == "both" else [kind]
    names = {"subgoal": subgoal_name, "execution": execution_name}
    table = Table("critic", "ranks", "train pairs", "dev pairs (questions)", "dev ranking accuracy", "by margin", "train s",
                  title="CR-Planner critics")
    try:
        found = read_pairs(pairs)
        for k in kinds:
            chosen = [p for p in found if p.kind == k]
            with progress_bar(err) as bar:
                job = bar.add_task(f"training {names[k]} on {len(chosen)} pairs", total=None)
                report = train_ranking_critic(
                    chosen, name=names[k], ranks=k, dev_fraction=dev_fraction, epochs=epochs, batch_size=batch_size,
                    lr=lr, max_length=max_length, seed=seed,
                    progress=lambda done, total, loss, job=job: bar.update(job, completed=done, total=total),
                )
            meta = report.critic
            acc = meta.metrics.accuracy
            table.add_row(report.name, k, str(meta.train_pairs), f"{meta.dev_pairs} ({meta.dev_groups})",
                          "n/a" if acc is None else f"{acc:.3f}",
                          ", ".join(f"{m}: {v:.2f}" for m, v in meta.metrics.accuracy_by_margin.items()),
                          f"{meta.training.seconds:.0f}")
    except CriticError as exc:
        fail(str(exc))
    console.print(table)
