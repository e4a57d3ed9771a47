"""The rejection-sampling fine-tuning loop (``agentrt rft run``).

Per round: sample the training tasks with the current model (DART: hard tasks get more samples
until they yield successes), keep the verified successes (deduplicated, at most
``max_per_task`` per task so easy tasks do not swamp the set), optionally add what a stronger
expert model solved where the current model did not, fine-tune a LoRA adapter on everything
kept so far (from the base model, so rounds do not compound drift), and evaluate on held-out
tasks. The held-out evaluation before any training is round 0.

Everything lives in one output folder, each phase in its own file, so an interrupted run
resumes where it stopped: samples are appended task by task, a finished fine-tune is recorded
with its adapter, and a finished evaluation is not redone. The folder keeps every round's data,
model and metrics; ``report.json`` and ``report.png`` sum it up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agentrt.jsonl import read_log
from agentrt.rft.fanout import sample_fanned
from agentrt.rft.sampling import Sample, TaskSamples, accuracy, dumps_calls
from agentrt.rft.sft import (
    Conversation,
    SFTReport,
    SFTSettings,
    base_folder,
    train_lora,
)
from agentrt.rft.tasks import Task, TaskError
from agentrt.trajectory_store import TrajectoryStore


class RFTConfig(BaseModel):
    name: str  # the adapter's name: round r saves NAME@vK, served as local:BASE+NAME@vK
    model: str  # base model spec (local:...)
    rounds: int = 1
    n: int = 4  # samples per draw (one batched call)
    successes: int = 1  # DART: draw until this many verified successes...
    budget: int = 8  # ...or this many samples
    temperature: float = 0.8
    max_per_task: int = 2
    max_tokens: int = 256
    expert: str | None = None
    workers: int = 1
    ray: bool = False
    sft: SFTSettings = SFTSettings()


class RoundResult(BaseModel):
    round: int
    model: str
    eval: dict[str, Any]
    train_tasks: int | None = None
    train_samples: int | None = None
    train_successes: int | None = None
    solved_tasks: int | None = None
    expert_kept: int | None = None
    kept_total: int | None = None
    sft: SFTReport | None = None


class RFTReport(BaseModel):
    config: RFTConfig
    rounds: list[RoundResult]
    folder: str


Progress = Callable[[str, int, int], None]  # (phase, done, total)


def _load_config(out: Path, cfg: RFTConfig) -> None:
    path = out / "config.json"
    if path.is_file():
        old = RFTConfig.model_validate_json(path.read_text())
        if old.model_dump(exclude={"rounds", "workers", "ray"}) != cfg.model_dump(exclude={"rounds", "workers", "ray"}):
            raise TaskError(f"{out} holds an RFT run with other settings; use a new --out, or the same settings "
                            "to resume it")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(cfg.model_dump_json(indent=2))


def _evaluate(tasks: list[Task], spec: str, out: Path, store: TrajectoryStore, cfg: RFTConfig, round_no: int,
              progress: Progress | None) -> dict[str, Any]:
    rows = sample_fanned(tasks, out, spec=spec, store_path=store.path, phase="eval", round_no=round_no, n=1,
                         successes=None, budget=1, temperature=0.0, max_tokens=cfg.max_tokens, workers=cfg.workers,
                         use_ray=cfg.ray, progress=_tick(progress, f"eval round {round_no}", len(tasks)))
    return accuracy(rows, {t.id: t for t in tasks})


def _tick(progress: Progress | None, phase: str, total: int) -> Callable[[TaskSamples], None] | None:
    if progress is None:
        return None
    count = [0]

    def one(_row: TaskSamples) -> None:
        count[0] += 1
        progress(phase, count[0], total)

    return one


def select(rows: list[TaskSamples], max_per_task: int) -> list[Sample]:
    """Verified successes, each distinct answer once, at most ``max_per_task`` per task."""
    kept: list[Sample] = []
    for row in rows:
        seen: set[str] = set()
        for s in row.samples:
            key = dumps_calls(s.calls) + "|" + (s.answer or "").strip().lower()
            if s.passed and key not in seen and len(seen) < max_per_task:
                seen.add(key)
                kept.append(s)
    return kept


def conversation_of(store: TrajectoryStore, run_id: str) -> Conversation:
    """A kept run as a training conversation, with what the model sampled for each turn. An EEF
    restart keeps its whole conversation, the expert's prefix included, and the sampled texts in
    its metadata: its own events start at the restart."""
    traj = store.get(run_id)
    meta = traj.metadata
    if meta.get("conversation"):
        messages, sampled = meta["conversation"], meta.get("conversation_sampled") or []
        ids: list[list[int] | None] = []
    else:
        messages, sampled = traj.messages, traj.sampled
        ids = [(note or {}).get("token_ids") for note in traj.annotations] if traj.annotations else []
    return Conversation(messages=messages, tools=meta.get("tools") or [], sampled=sampled, sampled_ids=ids)


def _eef(tasks: list[Task], cfg: RFTConfig, student: str, store: TrajectoryStore, out: Path) -> list[str]:
    """EEF on multi-step tasks the student did not solve: run the expert; from its failures'
    intermediate checkpoints, restart the student; keep the restarts that succeed. One line per
    task in ``out``, so a resumed run skips finished tasks."""
    from agentrt.checkpoints import sqlite_checkpointer
    from agentrt.manifest import load_graph
    from agentrt.rft.eef import EEFResult, explore_expert_failure

    done = {r.task_id: r for r in read_log(out, EEFResult)}
    checkpointer = sqlite_checkpointer(out.with_suffix(".checkpoints.sqlite"))
    kept: list[str] = []
    with out.open("a", encoding="utf-8") as f:
        for task in tasks:
            result = done.get(task.id)
            if result is None:
                name = task.metadata["graph"]
                graph = load_graph(name).copy(update={"checkpointer": checkpointer})
                result = explore_expert_failure(graph, name, task, expert=cfg.expert or "", student=student,
                                                store=store)
                f.write(result.model_dump_json() + "\n")
                f.flush()
            kept += [r.run_id for r in result.kept][: cfg.max_per_task]
            if result.expert_verdict.passed:
                kept.append(result.expert_run_id)
    return kept


def run_rft(train: list[Task], held_out: list[Task], cfg: RFTConfig, out: Path,
            progress: Progress | None = None) -> RFTReport:
    if not train or not held_out:
        raise TaskError("RFT needs training tasks and held-out tasks (both task files are empty)")
    if {t.id for t in train} & {t.id for t in held_out}:
        raise TaskError("some task ids are in both the training and the held-out set: evaluate on tasks it did not train on")
    base_folder(cfg.model)  # a remote or quantized model fails here, before any sampling
    _load_config(out, cfg)
    store = TrajectoryStore(out / "trajectories.sqlite")
    results = [RoundResult(round=0, model=cfg.model,
                           eval=_evaluate(held_out, cfg.model, out / "round-0" / "eval.jsonl", store, cfg, 0, progress))]
    kept_runs: list[str] = []
    current = cfg.model
    for r in range(1, cfg.rounds + 1):
        folder = out / f"round-{r}"
        rows = sample_fanned(train, folder / "train.jsonl", spec=current, store_path=store.path, phase="train",
                             round_no=r, n=cfg.n, successes=cfg.successes, budget=cfg.budget,
                             temperature=cfg.temperature, max_tokens=cfg.max_tokens, workers=cfg.workers,
                             use_ray=cfg.ray, progress=_tick(progress, f"sample round {r}", len(train)))
        kept = select(rows, cfg.max_per_task)
        expert_kept: list[str] = []
        if cfg.expert:
            unsolved = [t for t, row in zip(train, rows) if not any(s.passed for s in row.samples)]
            single = [t for t in unsolved if not t.metadata.get("graph")]
            expert_rows = sample_fanned(single, folder / "expert.jsonl", spec=cfg.expert, store_path=store.path,
                                        phase="expert", round_no=r, n=cfg.n, successes=cfg.successes,
                                        budget=cfg.budget, temperature=cfg.temperature, max_tokens=cfg.max_tokens,
                                        workers=1, use_ray=False,
                                        progress=_tick(progress, f"expert round {r}", len(single)))
            expert_kept = [s.run_id for s in select(expert_rows, cfg.max_per_task)]
            multi = [t for t in unsolved if t.metadata.get("graph")]
            if multi:
                expert_kept += _eef(multi, cfg, current, store, folder / "eef.jsonl")
        kept_runs += [s.run_id for s in kept] + expert_kept
        (folder / "kept.jsonl").write_text("".join(json.dumps({"run_id": k}) + "\n" for k in kept_runs))
        sft_path = folder / "sft.json"
        if sft_path.is_file():
            report = SFTReport.model_validate_json(sft_path.read_text())
        else:
            conversations = [conversation_of(store, run_id) for run_id in kept_runs]
            report = train_lora(conversations, base_spec=cfg.model, name=cfg.name, settings=cfg.sft,
                                progress=(lambda d, t, _loss: progress(f"fine-tune round {r}", d, t)) if progress else None,
                                meta={"rft_round": r, "rft_folder": str(out)})
            sft_path.write_text(report.model_dump_json(indent=2))
        current = f"{cfg.model.split('+')[0]}+{report.adapter}"
        results.append(RoundResult(
            round=r, model=current, eval=_evaluate(held_out, current, folder / "eval.jsonl", store, cfg, r, progress),
            train_tasks=len(train), train_samples=sum(len(x.samples) for x in rows),
            train_successes=sum(x.successes for x in rows), solved_tasks=sum(x.successes > 0 for x in rows),
            expert_kept=len(expert_kept), kept_total=len(kept_runs), sft=report,
        ))
    final = RFTReport(config=cfg, rounds=results, folder=str(out))
    (out / "report.json").write_text(final.model_dump_json(indent=2))
    plot(final, out / "report.png")
    return final


def plot(report: RFTReport, path: Path) -> None:
    """Held-out success rate per round, overall and per task type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    keys = sorted({k for r in report.rounds for k in r.eval if k == "all" or k.startswith("type:")})
    xs = [r.round for r in report.rounds]
    for key in keys:
        ys = [100 * r.eval.get(key, {}).get("accuracy", float("nan")) for r in report.rounds]
        ax.plot(xs, ys, marker="o", linewidth=2.5 if key == "all" else 1, label=key.replace("type:", ""))
    ax.set_xlabel("RFT round (0 = before training)")
    ax.set_ylabel("held-out success %")
    ax.set_xticks(xs)
    ax.set_title(f"{report.config.model}: RFT")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
