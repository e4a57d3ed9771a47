"""Task sets: what the RFT loop samples on and what its verifiers check.

A task set is a JSON Lines file, one :class:`Task` per line. A task carries its prompt (chat
messages), the tools offered (OpenAI function schemas), and whatever its verifier needs in
``expected`` (BFCL's allowed answers, gold QA answers, or anything a user verifier reads).
``task_type`` and ``difficulty`` travel with every exported training example.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from agentrt.errors import AgentrtError

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
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"task file {path} does not exist")
    tasks: list[Task] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                task = Task.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise TaskError(f"{path}:{number} is not a task ({exc.__class__.__name__}: "
                                f"{str(exc).splitlines()[0]}); each line is a JSON object with id, messages, verifier") from exc
            if task.id in seen:
                raise TaskError(f"{path}:{number}: task id {task.id!r} appears twice")
            seen.add(task.id)
            tasks.append(task)
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
