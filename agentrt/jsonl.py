"""Reading JSON Lines files into pydantic rows, the two ways agentrt needs.

- :func:`read_log`: the files long jobs append to as they go (practice, evaluation, sampling,
  tree search). A line a kill cut short is skipped: its item simply runs again on resume.
- :func:`read_rows`: files a user gives (tasks, datasets, pairs). Any bad line is an error naming
  the file and line number, because silently dropping a user's data is worse than stopping.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)


def read_log(path: Path, model: type[T]) -> list[T]:
    """Every readable row of a resumable log (none if the file does not exist yet)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(model.model_validate_json(line))
        except ValueError:
            continue  # cut by an interruption
    return rows


def read_objects(path: Path, *, error: Callable[[str], Exception], what: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a user's file, or ``error("FILE line N:
    ...")`` at the first line that is not a JSON object."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"no {what} file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what} file {path}: {exc}") from None
    objects = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{path} line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(value, dict):
            raise error(f"{path} line {number}: expected a JSON object (one {what} row), got {type(value).__name__}")
        objects.append((number, value))
    return objects


def read_rows(path: Path, model: type[T], *, error: Callable[[str], Exception], what: str) -> list[T]:
    """Every row of a user's file, or ``error("FILE line N: ...")`` at the first bad one."""
    rows = []
    for number, value in read_objects(path, error=error, what=what):
        try:
            rows.append(model.model_validate(value))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "row"
            raise error(f"{path} line {number}: not a valid {what} row ({where}: {first['msg']})") from None
    return rows
