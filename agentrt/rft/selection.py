"""Which recorded runs become training data, for exports and fine-tuning alike.

A filter chooses runs (graph, model, status, reward, verdict, feedback, dates, task types); of
those, a run counts as a success only if its tool calls went right (``tool_summary.clean``), and
turns a human reviewer edited are emitted as ``edits`` says. What is left out is counted, so a
user sees why their data set is the size it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from agentrt.rft.tasks import TaskType
from agentrt.trajectory import Status, Trajectory
from agentrt.trajectory_store import TrajectoryStore

Edits = Literal["as-run", "model", "skip"]


class ExportFilter(BaseModel):
    """Which runs become training data.

    ``graph``, ``model``, ``status`` and ``since`` go to the store's own query; the rest (reward,
    the verifier's verdict, the task type, ``until``) live in columns or metadata the store does not
    index and are checked here. ``status=None`` takes every status. A naive datetime is read as
    UTC, as ``agentrt traj export --since`` reads it.
    """

    graph: str | None = None
    model: str | None = None
    status: Status | None = "completed"
    min_reward: float | None = None
    verdict: Literal["passed", "failed"] | None = None
    since: datetime | None = None
    until: datetime | None = None
    task_types: list[TaskType] = Field(default_factory=list)
    feedback_key: str = "correct"
    min_feedback: float | None = None  # the latest feedback under ``feedback_key`` is at least this
    tool_errors: bool = False  # also runs whose tool calls went wrong (training formats leave them out)

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _passed(traj: Trajectory) -> bool | None:
    verdict = traj.metadata.get("verdict")
    passed = verdict.get("passed") if isinstance(verdict, dict) else None
    return passed if isinstance(passed, bool) else None


def matches(traj: Trajectory, flt: ExportFilter) -> bool:
    """The filter's checks that the store cannot do in SQL."""
    if flt.until is not None and traj.started_at > flt.until:
        return False
    if flt.min_reward is not None and (traj.reward is None or traj.reward < flt.min_reward):
        return False
    if flt.verdict is not None and _passed(traj) is not (flt.verdict == "passed"):
        return False  # a run with no verdict matches neither "passed" nor "failed"
    if flt.min_feedback is not None:
        latest = traj.latest_feedback(flt.feedback_key)
        if latest is None or latest.score < flt.min_feedback:
            return False
    return not flt.task_types or traj.metadata.get("task_type") in flt.task_types


def select(store: TrajectoryStore, flt: ExportFilter | None = None) -> Iterator[Trajectory]:
    """Matching trajectories, newest first, loaded one at a time."""
    flt = flt or ExportFilter()
    for traj in store.iter(graph=flt.graph, model=flt.model, status=flt.status, since=flt.since):
        if matches(traj, flt):
            yield traj


class SkippedRun(BaseModel):
    run_id: str
    reason: str


class Tally(BaseModel):
    """Of the runs a filter matched, which were left out of training data and why."""

    matched: int = 0
    tool_errors: int = 0  # a tool call went wrong (see ExportFilter.tool_errors)
    edits: Edits = "as-run"  # how turns a human edited are emitted
    edited: int = 0  # runs with such turns (emitted as ``edits`` says, or left out for "skip")
    skipped: list[SkippedRun] = Field(default_factory=list)  # malformed: cannot be an example

    def left_out(self) -> list[str]:
        """What was left out and why, one phrase each, for a summary line."""
        parts = [f"skipped {len(self.skipped)} malformed"] if self.skipped else []
        if self.tool_errors:
            parts.append(f"left out {self.tool_errors} whose tool calls went wrong (invalid, failed, timed out or "
                         "rejected, or no answer after a tool result; --tool-errors keeps them)")
        if self.edited:
            how = {"as-run": "as they ran (human edits included)", "model": "as the model wrote them",
                   "skip": "not at all"}[self.edits]
            parts.append(f"{self.edited} runs had turns a human edited, emitted {how}")
        return parts


def candidates(store: TrajectoryStore, flt: ExportFilter, tally: Tally) -> Iterator[Trajectory]:
    """The matching runs that may become training examples, counting in ``tally`` those left out:
    tool calls that went wrong (unless the filter keeps them), human edits when ``edits="skip"``."""
    for traj in select(store, flt):
        tally.matched += 1
        if not flt.tool_errors and not traj.tool_summary.clean:
            tally.tool_errors += 1
            continue
        if traj.human_edited:
            tally.edited += 1
            if tally.edits == "skip":
                continue
        yield traj
