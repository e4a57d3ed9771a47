"""``agentrt critic ...``: train, show and list trained critics; a typer sub-app mounted by the
main CLI with ``app.add_typer(critic_app, name="critic")``. torch loads only for ``train``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from agentrt.console import err, fail
from agentrt.console import out as console

critic_app = typer.Typer(help="Trained critics: train a sufficiency critic (SIM-RAG), show and list saved ones "
                              "(CR-Planner's ranking critics too).",
                         no_args_is_help=True)




def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


@critic_app.command()
def train(
    dataset: Annotated[Path, typer.Argument(help="JSONL file, one CriticExample per line")],
    name: Annotated[str, typer.Option(help="critic name: saved as ~/.cache/agentrt/critics/NAME/vN")],
    label: Annotated[str, typer.Option(help="what 1 means: correct (the answer was right) or coverage (all gold documents retrieved)")] = "correct",
    epochs: Annotated[int, typer.Option(min=1)] = 3,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    lr: Annotated[float, typer.Option(min=0.0)] = 5e-5,
    max_length: Annotated[int, typer.Option(min=16, max=512, help="tokens per round (the evidence is cut first)")] = 512,
    dev_fraction: Annotated[float, typer.Option(min=0.0, max=0.9, help="share of questions held out to pick the threshold and measure")] = 0.2,
    seed: Annotated[int, typer.Option()] = 0,
    bf16: Annotated[bool | None, typer.Option("--bf16/--no-bf16", help="bfloat16 autocast (default: when the CPU has native bf16)")] = None,
    evidence_words: Annotated[int, typer.Option(min=0, help="evidence words shared by all passages, so every round's passages fit (0: whole passages)")] = 240,
    answer_check: Annotated[bool, typer.Option("--answer-check/--no-answer-check", help="tell the critic whether the answer occurs in the evidence")] = True,
    retrieval_cost: Annotated[float, typer.Option(min=0.0, help="F1 one more retrieval round must buy when the threshold is picked by replaying the loop on dev")] = 0.01,
) -> None:
    """Fine-tune all-MiniLM-L6-v2 into a sufficiency critic and save it (a new version)."""
    from agentrt.console import progress_bar
    from agentrt.critics.classifier import CriticError
    from agentrt.sim_rag.dataset import DatasetError, read_examples
    from agentrt.sim_rag.train import train_critic

    if label not in ("correct", "coverage"):
        fail(f"--label must be correct or coverage, not {label!r}")
    try:
        examples = read_examples(dataset)
        with progress_bar(err) as bar:
            task = bar.add_task(f"loading the base model ({len(examples)} rounds)", total=None)

            def progress(done: int, total: int, loss: float) -> None:
                bar.update(task, completed=done, total=total, description=f"training, loss {loss:.3f}")

            report = train_critic(examples, name=name, label=label, dev_fraction=dev_fraction, epochs=epochs,  # type: ignore[arg-type]
                                  batch_size=batch_size, lr=lr, max_length=max_length, seed=seed, progress=progress,
                                  bf16=bf16, evidence_words=evidence_words or None, answer_check=answer_check,
                                  retrieval_cost=retrieval_cost)
    except (DatasetError, CriticError, OSError) as exc:
        fail(str(exc))
    meta, m = report.critic, report.critic.metrics
    table = Table(title=f"{report.name}: dev metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in [
        ("accuracy (at threshold)", _num(m.accuracy)),
        ("accuracy at 0.5", _num(m.accuracy_at_half)),
        ("AUC", _num(m.auc)),
        ("ECE (10 bins)", _num(m.ece)),
        ("Brier score", _num(m.brier)),
        ("positive rate (labels)", _num(m.positive_rate)),
        ("accept rate", _num(m.accept_rate)),
        ("precision of accepts", _num(m.accept_precision)),
        ("threshold", f"{meta.threshold:.4g}"),
    ]:
        table.add_row(key, value)
    if (stop := meta.stopping) is not None:
        for key, o in [("replayed loop at threshold", stop.chosen), ("replayed: accept round 1", stop.first_round),
                       ("replayed: run to the cap", stop.at_cap)]:
            table.add_row(key, f"F1 {o.f1:.3f}, {o.rounds:.2f} rounds")
    console.print(table)
    tb, db = meta.train_balance, meta.dev_balance
    console.print(f"threshold {meta.threshold:.4g}: {meta.threshold_rule}", highlight=False)
    console.print(f"train: {tb.examples} rounds ({tb.positives} positive, {tb.negatives} negative) over {tb.questions} "
                  f"questions; dev: {db.examples} rounds ({db.positives} positive, {db.negatives} negative)"
                  + (f"; {report.skipped} rounds without a {label} label skipped" if report.skipped else ""),
                  highlight=False)
    console.print(f"training: {meta.training.seconds:.1f} s, {meta.training.examples_per_second:.1f} rounds/s; "
                  f"{meta.training.balancing}", highlight=False)
    console.print(f"saved critic {report.name} to {report.path}", highlight=False, soft_wrap=True)
    _print_labelings(examples)


def _print_labelings(examples: list) -> None:
    """How the answer-correctness label and the evidence-coverage label agree on these rounds."""
    from agentrt.sim_rag.train import compare_labelings

    c = compare_labelings(examples)
    if not c["n"]:
        return
    table = Table(title=f"correct vs coverage labels ({c['n']} rounds with both)")
    table.add_column("")
    table.add_column("coverage 1", justify="right")
    table.add_column("coverage 0", justify="right")
    table.add_row("correct 1", str(c["both_positive"]), str(c["correct_only"]))
    table.add_row("correct 0", str(c["coverage_only"]), str(c["both_negative"]))
    console.print(table)
    console.print(f"agreement {_num(c['agreement'])}, Cohen's kappa {_num(c['kappa'])}", highlight=False)


@critic_app.command()
def show(name_or_path: Annotated[str, typer.Argument(help="NAME, NAME@VERSION, or a critic folder path")]) -> None:
    """Print a saved critic's critic.json (the newest version for a bare NAME)."""
    from agentrt.critics.classifier import CriticError, resolve
    from agentrt.critics.folders import read_any_meta

    try:
        folder = resolve(name_or_path)
        meta = read_any_meta(folder)
    except CriticError as exc:
        fail(str(exc))
    err.print(f"{folder}", highlight=False, soft_wrap=True)
    typer.echo(meta.model_dump_json(indent=2))


@critic_app.command("list")
def list_() -> None:
    """Every saved critic under ~/.cache/agentrt/critics (AGENTRT_HOME), all versions."""
    from agentrt.critics.classifier import CriticError, critics_root
    from agentrt.critics.folders import list_critics
    from agentrt.critics.ranking import RankingMeta

    found = list_critics()
    if not found:
        console.print(f"no critics under {critics_root()}: train one with "
                      "`agentrt critic train DATASET.jsonl --name NAME`", highlight=False, soft_wrap=True)
        return
    table = Table(title=f"critics under {critics_root()}")
    for col in ("critic", "label", "threshold", "dev acc", "AUC", "train/dev rounds", "created"):
        table.add_column(col)
    for folder, meta in found:
        if isinstance(meta, CriticError):
            table.add_row(folder.parent.name + "/" + folder.name, f"[red]unreadable: {escape(str(meta))}[/]", "", "", "", "", "")
            continue
        if isinstance(meta, RankingMeta):  # a CR-Planner critic: ranking accuracy on dev pairs
            table.add_row(f"{meta.name}@{meta.version}", f"ranking ({meta.ranks})", "", _num(meta.metrics.accuracy), "",
                          f"{meta.train_pairs}/{meta.dev_pairs} pairs", meta.created_at.strftime("%Y-%m-%d %H:%M"))
            continue
        table.add_row(f"{meta.name}@{meta.version}", meta.label, f"{meta.threshold:.4g}", _num(meta.metrics.accuracy),
                      _num(meta.metrics.auc), f"{meta.train_balance.examples}/{meta.dev_balance.examples}",
                      meta.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table)
