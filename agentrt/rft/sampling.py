"""Sampling trajectories on tasks and verifying them: one draw, recorded and judged.

Single-turn tasks (a prompt, the tools offered, one assistant turn: BFCL's format) are sampled
``n`` at a time in one batched ``model.sample`` call, which on a local model is one ``generate``
with ``num_return_sequences=n``: the prompt is read once and the n continuations decode as a
batch. Every sample is recorded as a trajectory (graph ``single_turn``) with the task's id, type,
difficulty, tools and the verifier's verdict in its metadata and the verdict as its reward, so
everything downstream (selection, export, fine-tuning) reads trajectories.

How many draws each task gets is DART's business (``agentrt.rft.dart``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, convert_to_messages
from pydantic import BaseModel

from agentrt.rft.tasks import Task
from agentrt.rft.verifiers import Attempt, Verdict, verify
from agentrt.runner import record_call
from agentrt.trajectory_store import TrajectoryStore

GRAPH = "single_turn"


class Sample(BaseModel):
    task_id: str
    run_id: str
    phase: str  # "train" | "eval" | "expert"
    passed: bool
    score: float
    reason: str
    calls: list[dict[str, Any]]
    answer: str | None


class TaskSamples(BaseModel):
    """One line of a samples file: all samples drawn for one task in one phase."""

    task_id: str
    phase: str
    samples: list[Sample]
    draws: int
    seconds: float

    @property
    def successes(self) -> int:
        return sum(s.passed for s in self.samples)

    @property
    def difficulty(self) -> float:
        return 1.0 - self.successes / max(1, len(self.samples))


def attempt_of(reply: AIMessage) -> Attempt:
    """What the verifier sees of a reply: its calls (an unparseable one as ``__malformed__``,
    which fails verification with a reason instead of crashing) and its text."""
    calls = [{"name": c["name"], "arguments": c["args"]} for c in reply.tool_calls]
    calls += [{"name": c.get("name") or "", "arguments": {"__malformed__": c.get("args") or c.get("error")}}
              for c in reply.invalid_tool_calls]
    text = str(reply.content).strip() or None
    return Attempt(tool_calls=calls, answer=None if calls else text, messages=[])


def prompt_of(task: Task) -> list[BaseMessage]:
    return convert_to_messages(task.messages)


def draw(model: Any, task: Task, n: int, *, temperature: float, batched: bool, max_tokens: int) -> list[AIMessage]:
    """``n`` replies to the task's prompt: one batched call, or ``n`` calls one at a time (the
    baseline the sampling benchmark compares against)."""
    prompt = prompt_of(task)
    params = {"temperature": temperature, "max_tokens": max_tokens}
    if batched:
        return model.sample(prompt, n, tools=task.tools, **params)
    return [model.sample(prompt, 1, tools=task.tools, **params)[0] for _ in range(n)]


def record(store: TrajectoryStore | None, task: Task, reply: AIMessage, verdict: Verdict, *, model: str,
           phase: str, round_no: int) -> str:
    if store is None:
        return str(uuid.uuid4())
    run_id = record_call(store, graph=GRAPH, model=model, prompt=prompt_of(task), reply=reply, tools=task.tools,
                         metadata={"task_id": task.id, "task_type": task.task_type, "difficulty": task.difficulty,
                                   "tools": task.tools, "phase": phase, "round": round_no, "source": task.source})
    store.set_reward(run_id, 1.0 if verdict.passed else 0.0)
    store.merge_metadata(run_id, {"verdict": verdict.model_dump()})
    return run_id


def run_graph_task(task: Task, *, model_spec: str, store: TrajectoryStore | None, phase: str, round_no: int,
                   temperature: float, max_tokens: int) -> tuple[str, Attempt, Verdict]:
    """One multi-step sample: the task's graph (``metadata.graph``, a manifest name) run to the
    end with the model, recorded by the runner like any run."""
    from agentrt.manifest import load_graph
    from agentrt.rft.eef import attempt_of_state
    from agentrt.runner import run, run_config

    graph = load_graph(task.metadata["graph"])
    config = run_config(model=model_spec, temperature=temperature, max_tokens=max_tokens)
    result = run(graph, task.metadata["graph"], {"messages": task.messages}, config, store)
    attempt = attempt_of_state(result.state or {})
    verdict = verify(task, attempt)
    if store is not None:
        store.set_reward(result.run_id, 1.0 if verdict.passed else 0.0)
        store.merge_metadata(result.run_id, {"task_id": task.id, "task_type": task.task_type, "phase": phase,
                                             "round": round_no, "tools": task.tools, "verdict": verdict.model_dump()})
    return result.run_id, attempt, verdict


def accuracy(rows: list[TaskSamples], tasks: dict[str, Task]) -> dict[str, Any]:
    """Share of tasks whose (first) sample passed, overall and per task type and source."""
    by: dict[str, list[bool]] = {}
    for r in rows:
        t = tasks[r.task_id]
        ok = bool(r.samples) and r.samples[0].passed
        for key in ("all", f"type:{t.task_type}", f"source:{t.source}"):
            by.setdefault(key, []).append(ok)
    return {k: {"n": len(v), "accuracy": sum(v) / len(v)} for k, v in sorted(by.items())}


def dumps_calls(calls: list[dict[str, Any]]) -> str:
    """A canonical form of a sample's calls, for deduplication (argument order does not matter;
    call order does not either: parallel calls are a set)."""
    return json.dumps(sorted(json.dumps(c, sort_keys=True, default=str) for c in calls))
