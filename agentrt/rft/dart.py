"""DART (difficulty-aware rejection tuning): a task keeps getting samples, ``n`` per draw, until it
has ``successes`` verified successes or has used ``budget`` samples, so hard tasks get more tries
than easy ones; a task's difficulty is its failure rate (``TaskSamples.difficulty``).

Samples are appended to a file task by task, so an interrupted sampling resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from agentrt.jsonl import read_log
from agentrt.rft.sampling import (
    Sample,
    TaskSamples,
    attempt_of,
    draw,
    record,
    run_graph_task,
)
from agentrt.rft.tasks import Task
from agentrt.rft.verifiers import verify
from agentrt.trajectory_store import TrajectoryStore


def sample_task(
    model: Any, task: Task, *, model_spec: str, store: TrajectoryStore | None, phase: str, round_no: int,
    n: int, successes: int | None, budget: int, temperature: float, batched: bool = True, max_tokens: int = 256,
) -> TaskSamples:
    """Draw ``n`` at a time until ``successes`` verified successes (DART) or ``budget`` samples;
    ``successes=None`` draws exactly ``budget`` (an evaluation, or plain uniform sampling).
    A task with ``metadata.graph`` is run through that graph, one sample per run."""
    started, out, draws = time.perf_counter(), [], 0
    while len(out) < budget:
        k = min(n, budget - len(out))
        draws += 1
        if task.metadata.get("graph"):
            for _ in range(k):
                run_id, attempt, verdict = run_graph_task(task, model_spec=model_spec, store=store, phase=phase,
                                                          round_no=round_no, temperature=temperature,
                                                          max_tokens=max_tokens)
                out.append(Sample(task_id=task.id, run_id=run_id, phase=phase, passed=verdict.passed,
                                  score=verdict.score, reason=verdict.reason, calls=attempt.tool_calls,
                                  answer=attempt.answer))
        else:
            replies = draw(model, task, k, temperature=temperature, batched=batched, max_tokens=max_tokens)
            for reply in replies:
                attempt = attempt_of(reply)
                verdict = verify(task, attempt)
                run_id = record(store, task, reply, verdict, model=model_spec, phase=phase, round_no=round_no)
                out.append(Sample(task_id=task.id, run_id=run_id, phase=phase, passed=verdict.passed,
                                  score=verdict.score, reason=verdict.reason, calls=attempt.tool_calls,
                                  answer=attempt.answer))
        if successes is not None and sum(s.passed for s in out) >= successes:
            break
    return TaskSamples(task_id=task.id, phase=phase, samples=out, draws=draws, seconds=time.perf_counter() - started)


def done_tasks(path: Path) -> dict[str, TaskSamples]:
    """Tasks already sampled in an earlier (interrupted) call: a samples file is appended task by
    task, and a line cut by a crash is ignored (that task is sampled again)."""
    return {row.task_id: row for row in read_log(path, TaskSamples)}


def sample_all(
    tasks: Iterable[Task], out: Path, *, model: Any, model_spec: str, store: TrajectoryStore | None, phase: str,
    round_no: int, n: int, successes: int | None, budget: int, temperature: float, batched: bool = True,
    max_tokens: int = 256, progress: Callable[[TaskSamples], None] | None = None,
) -> list[TaskSamples]:
    """Sample every task, appending to ``out`` as it goes; re-running resumes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_tasks(out)
    rows = []
    with out.open("a", encoding="utf-8") as f:
        for task in tasks:
            if task.id in done:
                rows.append(done[task.id])
            else:
                row = sample_task(model, task, model_spec=model_spec, store=store, phase=phase, round_no=round_no,
                                  n=n, successes=successes, budget=budget, temperature=temperature, batched=batched,
                                  max_tokens=max_tokens)
                f.write(row.model_dump_json() + "\n")
                f.flush()
                rows.append(row)
            if progress:
                progress(rows[-1])
    return rows
