"""QA tasks with gold answers: HotpotQA (distractor layout) and NQ-open style JSONL."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, Field

from agentrt.errors import AgentrtError

DATA_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data"


class QATask(BaseModel):
    id: str
    question: str
    answers: list[str]
    supporting_titles: list[str] = Field(default_factory=list)  # gold evidence, where known
    kind: str = ""  # HotpotQA "bridge" / "comparison"


class DataError(AgentrtError, ValueError):
    """A task file cannot be read; the message names the file and line."""


HOTPOTQA_FILE = "hotpot_dev_distractor_600.jsonl"


def hotpotqa_path() -> Path:
    """The HotpotQA file: ``$AGENTRT_HOTPOTQA``, else ``../shared/data/hotpotqa/`` beside the repository."""
    env = os.environ.get("AGENTRT_HOTPOTQA")
    if env:
        if not Path(env).is_file():
            raise DataError(f"AGENTRT_HOTPOTQA points at {env}, which is not a file")
        return Path(env)
    candidate = DATA_ROOT / "hotpotqa" / HOTPOTQA_FILE
    if candidate.is_file():
        return candidate
    raise DataError(
        f"the HotpotQA data was not found (looked at {candidate}): set AGENTRT_HOTPOTQA to the path of {HOTPOTQA_FILE}"
    )


def load_qa(path: str | Path) -> list[QATask]:
    """Tasks from a JSONL file: HotpotQA records (``_id, question, answer, supporting_facts``)
    or simple ``{"id"?, "question", "answer" | "answers"}`` rows."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no task file at {path}")
    tasks = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            answers = row.get("answers") or row.get("answer")
            answers = [answers] if isinstance(answers, str) else list(answers or [])
            question = str(row["question"]).strip()
            if not question or not answers:
                raise KeyError("question" if not question else "answer")
            tasks.append(
                QATask(
                    id=str(row.get("_id") or row.get("id") or f"{path.stem}-{n}"),
                    question=question,
                    answers=[str(a) for a in answers],
                    supporting_titles=sorted({t for t, _ in row.get("supporting_facts", [])}),
                    kind=row.get("type", ""),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}, line {n}: not a QA task ({type(exc).__name__}: {exc}); "
                            "each line needs a question and an answer") from exc
    if not tasks:
        raise DataError(f"{path} has no tasks")
    return tasks


def split(tasks: list[QATask], part: str) -> list[QATask]:
    """``first:N``, ``last:N``, ``N:M`` (a slice) or ``all``: the project convention trains on
    HotpotQA's first 300 records and reports on the last 300."""
    if part == "all":
        return tasks
    head, _, tail = part.partition(":")
    if head == "first":
        return tasks[: int(tail)]
    if head == "last":
        return tasks[-int(tail) :]
    return tasks[int(head or 0) : int(tail) if tail else None]
