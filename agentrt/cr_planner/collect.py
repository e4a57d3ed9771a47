"""Collecting CR-Planner's training pairs: one tree search per question, appended question by
question to ``pairs.jsonl`` (the ranking pairs) and ``trees.jsonl`` (one ``TreeStats`` per
question), so an interrupted collection resumes where it stopped."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agentrt.cr_planner.mcts import SearchSettings, TreeSearch, TreeStats
from agentrt.cr_planner.plan import PlanSettings
from agentrt.critics.classifier import CriticError
from agentrt.critics.ranking import RankingPair
from agentrt.jsonl import read_log, read_rows
from agentrt.qa.data import QATask
from agentrt.retrieval.types import Retriever

PAIRS_FILE = "pairs.jsonl"
TREES_FILE = "trees.jsonl"


class CollectReport(BaseModel):
    questions: int
    skipped_done: int
    subgoal_pairs: int
    execution_pairs: int
    model_calls: int
    seconds: float
    folder: str


def collect(tasks: list[QATask], out: Path, *, settings: PlanSettings, search: SearchSettings, model: Any,
            retriever: Retriever, progress: Callable[[TreeStats | None], None] | None = None) -> CollectReport:
    out.mkdir(parents=True, exist_ok=True)
    done = {t.question_id for t in read_trees(out)}
    _drop_unfinished(out / PAIRS_FILE, done)
    started = time.time()
    counts = {"subgoal": 0, "execution": 0, "calls": 0, "skipped": 0}
    with (out / PAIRS_FILE).open("a", encoding="utf-8") as pairs_f, (out / TREES_FILE).open("a", encoding="utf-8") as trees_f:
        for task in tasks:
            if task.id in done:
                counts["skipped"] += 1
                if progress:
                    progress(None)
                continue
            pairs, stats = TreeSearch(task, settings, search, model=model, retriever=retriever).run()
            pairs_f.writelines(p.model_dump_json() + "\n" for p in pairs)
            pairs_f.flush()
            trees_f.write(stats.model_dump_json() + "\n")  # written last: the question counts as done
            trees_f.flush()
            counts["subgoal"] += stats.subgoal_pairs
            counts["execution"] += stats.execution_pairs
            counts["calls"] += stats.model_calls
            if progress:
                progress(stats)
    return CollectReport(questions=len(tasks), skipped_done=counts["skipped"], subgoal_pairs=counts["subgoal"],
                         execution_pairs=counts["execution"], model_calls=counts["calls"],
                         seconds=time.time() - started, folder=str(out))


def read_trees(folder: Path) -> list[TreeStats]:
    return read_log(folder / TREES_FILE, TreeStats)  # a cut line: that question is searched again


def _drop_unfinished(path: Path, finished: set[str]) -> None:
    """Before resuming: keep only the pairs of finished questions (an interruption may have left
    part of a question's pairs, or half a line), written to a new file renamed into place."""
    if not path.is_file():
        return
    kept = [pair.model_dump_json() + "\n" for pair in read_log(path, RankingPair) if pair.group in finished]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    tmp.replace(path)


def read_pairs(path: Path) -> list[RankingPair]:
    """The pairs of a collection folder (or a pairs file). Pairs of questions whose search did
    not finish (no line in ``trees.jsonl``) are left out: they come again on resume."""
    folder, file = (path, path / PAIRS_FILE) if path.is_dir() else (path.parent, path)
    if not file.is_file():
        raise CriticError(f"no pairs at {file}: collect them with `agentrt plan collect --out {folder}`")
    finished = {t.question_id for t in read_trees(folder)} if (folder / TREES_FILE).is_file() else None
    if finished is not None:  # a resumable collection: a cut last line belongs to an unfinished question
        return [pair for pair in read_log(file, RankingPair) if pair.group in finished]
    return read_rows(file, RankingPair, what="ranking pair", error=lambda m: CriticError(
        f"{m}: the file is damaged; collect again into a new folder"))
