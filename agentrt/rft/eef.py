"""EEF (exploring expert failures): learn from the failed trajectories of a stronger model.

A failed expert trajectory often holds good steps before the one that went wrong. EEF restarts
the current model from the expert's intermediate states and keeps the runs that then succeed:
the expert's prefix, which led somewhere useful, plus the current model's own continuation.

LangGraph's checkpoints make the restarts exact: the expert runs on a thread with a
checkpointer, every step leaves a checkpoint, and invoking the graph from an earlier
checkpoint with another ``configurable.model`` forks the thread there. Only states where the
model is about to act (``next == ("model",)``) after at least one expert turn are restart points;
each restart is recorded as its own trajectory, the prefix included, with its verdict.
"""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import convert_to_openai_messages
from pydantic import BaseModel

from agentrt.agent import final_answer
from agentrt.rft.tasks import Task
from agentrt.rft.verifiers import Attempt, Verdict, verify
from agentrt.runner import run
from agentrt.trajectory import sampled_texts
from agentrt.trajectory_store import TrajectoryStore


class Restart(BaseModel):
    checkpoint_id: str
    expert_turns: int  # expert model turns in the kept prefix
    run_id: str
    verdict: Verdict
    conversation: list[dict[str, Any]]  # the expert prefix and the student's continuation, OpenAI format


class EEFResult(BaseModel):
    task_id: str
    expert_run_id: str
    expert_verdict: Verdict
    restarts: list[Restart]

    @property
    def kept(self) -> list[Restart]:
        return [r for r in self.restarts if r.verdict.passed]


def attempt_of_state(state: dict[str, Any]) -> Attempt:
    messages = convert_to_openai_messages(state.get("messages", []))
    calls = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
             for m in messages if m.get("role") == "assistant" for c in m.get("tool_calls") or []]
    return Attempt(tool_calls=calls, answer=final_answer(state), messages=messages)


def explore_expert_failure(graph: Any, graph_name: str, task: Task, *, expert: str, student: str,
                           store: TrajectoryStore | None, max_restarts: int = 4) -> EEFResult:
    """Run the expert on ``task``; if it fails, restart ``student`` from its intermediate states.
    ``graph`` must be compiled with a checkpointer."""
    thread = f"eef-{task.id}-{uuid.uuid4().hex[:8]}"
    meta = {"task_id": task.id, "task_type": task.task_type, "tools": task.tools, "phase": "eef"}
    expert_run = run(graph, graph_name, {"messages": task.messages},
                     {"configurable": {"thread_id": thread, "model": expert}}, store)
    expert_verdict = verify(task, attempt_of_state(expert_run.state or {}))
    _mark(store, expert_run.run_id, expert_verdict, {**meta, "role": "expert"})
    result = EEFResult(task_id=task.id, expert_run_id=expert_run.run_id, expert_verdict=expert_verdict, restarts=[])
    if expert_verdict.passed:
        return result  # nothing to learn from a failure: the success itself is ordinary training data
    history = list(graph.get_state_history({"configurable": {"thread_id": thread}}))  # newest first
    points = [s for s in reversed(history)
              if tuple(s.next) == ("model",) and _model_turns(s.values) > 0][:max_restarts]
    for snap in points:
        cp = snap.config["configurable"]["checkpoint_id"]
        config = {"configurable": {"thread_id": thread, "checkpoint_id": cp, "model": student}}
        forked = run(graph, graph_name, None, config, store)
        attempt = attempt_of_state(forked.state or {})
        verdict = verify(task, attempt)
        # the fork's trajectory starts at the checkpoint; its metadata keeps the whole conversation
        _mark(store, forked.run_id, verdict, {**meta, "role": "restart", "expert_run_id": expert_run.run_id,
                                              "checkpoint_id": cp, "expert_turns": _model_turns(snap.values),
                                              "conversation": attempt.messages,
                                              "conversation_sampled": sampled_texts((forked.state or {}).get("messages", []))})
        result.restarts.append(Restart(checkpoint_id=cp, expert_turns=_model_turns(snap.values),
                                       run_id=forked.run_id, verdict=verdict, conversation=attempt.messages))
    return result


def _model_turns(values: dict[str, Any]) -> int:
    return sum(1 for m in values.get("messages", []) if getattr(m, "type", None) == "ai")


def _mark(store: TrajectoryStore | None, run_id: str, verdict: Verdict, meta: dict[str, Any]) -> None:
    if store is None:
        return
    store.set_reward(run_id, 1.0 if verdict.passed else 0.0)
    store.merge_metadata(run_id, {**meta, "verdict": verdict.model_dump()})
