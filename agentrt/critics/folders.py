"""The folders of saved critics, of every kind: reading a critic's ``critic.json`` whichever
method trained it (a sufficiency classifier or a ranking critic), and listing them all. Above both
kinds, so that neither imports the other."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from agentrt.critics.classifier import (
    META_FILE,
    CriticError,
    CriticMeta,
    _versions,
    critics_root,
    read_meta,
)
from agentrt.critics.ranking import RankingMeta


def read_any_meta(folder: Path) -> BaseModel:
    """``critic.json`` of any saved critic: a ``RankingMeta`` for ranking critics (they say
    ``"kind": "ranking"``), else a sufficiency critic's ``CriticMeta``."""
    try:
        kind = json.loads((folder / META_FILE).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None  # read_meta says what is wrong with the file
    return read_meta(folder, RankingMeta if kind == "ranking" else CriticMeta)


def list_critics(root: Path | None = None) -> list[tuple[Path, BaseModel | CriticError]]:
    """Every saved critic under ``root`` (default ``home()/critics``), oldest version first: a
    ``CriticMeta`` for sufficiency critics, a ``RankingMeta`` for ranking critics."""
    root = root or critics_root()
    found: list[tuple[Path, BaseModel | CriticError]] = []
    if not root.is_dir():
        return found
    for base in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        folders = [base] if (base / META_FILE).is_file() else [v for _, v in sorted(_versions(base).items())]
        for folder in folders:
            try:
                found.append((folder, read_any_meta(folder)))
            except CriticError as exc:
                found.append((folder, exc))
    return found
