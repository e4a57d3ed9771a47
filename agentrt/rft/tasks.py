"""Task sets: what the RFT loop samples on and what its verifiers check.

A task set is a JSON Lines file, one :class:`Task` per line. A task carries its prompt (chat
messages), the tools offered (OpenAI function schemas), and whatever its verifier needs in
``expected`` (BFCL's allowed answers, gold QA answers, or anything a user verifier reads).
``task_type`` and ``difficulty`` travel with every exported training example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentrt.errors import AgentrtError
from agentrt.jsonl import read_rows

TaskType = Literal["name_detection", "parameter_filling", "parallel", "chained", "no_tool", "qa", "other"]


class TaskError(AgentrtError, ValueError):
    """A task file or task cannot be used; the message names the file, line and fix."""


class Task(BaseModel):
    id: str = Field(..., min_length=1)
    messages: list[dict[str, Any]] = Field(..., min_length=1, description="the prompt, OpenAI chat format")
    tools: list[dict[str, Any]] = Field(default_factory=list, description="OpenAI tool schemas offered")
    verifier: str = Field(..., description="bfcl_ast | qa | module:function")
    expected: Any = Field(None, description="what the verifier checks against")
    task_type: TaskType = "other"
    difficulty: float | None = Field(None, description="0 easy .. 1 hard; filled in by sampling (failure rate)")
    source: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


def read_tasks(path: str | Path) -> list[Task]:
    tasks = read_rows(Path(path), Task, what="task", error=lambda m: TaskError(
        f"{m}; each line is a JSON object with id, messages, verifier"))
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise TaskError(f"{path}: task id {task.id!r} appears twice")
        seen.add(task.id)
    if not tasks:
        raise TaskError(f"task file {path} has no tasks; write one JSON task per line")
    return tasks


def write_tasks(tasks: list[Task], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for t in tasks:
            f.write(t.model_dump_json(exclude_none=True) + "\n")
    tmp.replace(path)
