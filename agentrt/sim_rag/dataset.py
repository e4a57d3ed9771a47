"""Critic datasets: JSONL files, one ``CriticExample`` per line (blank lines are skipped)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from agentrt.critics.types import CriticExample
from agentrt.errors import AgentrtError
from agentrt.jsonl import read_rows


class DatasetError(AgentrtError, ValueError):
    """A critic dataset could not be read or written; the message names the file and line."""


def _describe(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:3]:
        where = ".".join(str(x) for x in e["loc"]) or "row"
        parts.append(f"{where}: {e['msg']}")
    more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "; ".join(parts) + more


def read_examples(path: str | Path) -> list[CriticExample]:
    """Every example of a JSONL dataset, or a ``DatasetError`` naming the first bad line."""
    examples = read_rows(Path(path), CriticExample, error=DatasetError, what="dataset")
    if not examples:
        raise DatasetError(
            f"{path} is empty: a critic dataset has one CriticExample JSON object per line "
            "(question, evidence, answer, rationale, question_id, round, label)"
        )
    return examples


def write_examples(path: str | Path, examples: Iterable[CriticExample]) -> Path:
    """Write a JSONL dataset atomically (a temporary file renamed over ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for ex in examples:
                f.write(ex.model_dump_json() + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
