"""SIM-RAG self-practice: the system explores retrieval paths on questions with known answers,
and every round becomes a labelled example for the sufficiency critic.

Each question is run ``paths`` times through the SIM-RAG loop with the critic forced to reject
(so every path goes to the round cap): the first path greedy, the others sampled, so they write
different queries and find different evidence. Round r of a path gives one example: the
question, the evidence gathered up to r, the answer and rationale of r, labelled 1 if that answer
was correct (normalised exact match or F1 above a threshold). Where the task knows its gold
supporting documents, the example also gets the coverage label: were they all retrieved by r?

The dataset is appended question by question, so an interrupted practice resumes where it
stopped; every path is also recorded as a trajectory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from agentrt.critics.types import CriticExample
from agentrt.jsonl import read_log
from agentrt.qa.data import QATask
from agentrt.qa.metrics import is_correct
from agentrt.runner import run, run_config
from agentrt.sim_rag.graph import SimRagConfig, build_sim_rag, evidence_lines, rounds_of
from agentrt.trajectory_store import TrajectoryStore


class PracticeReport(BaseModel):
    questions: int
    skipped_done: int
    examples: int
    positives: int
    failed_runs: int
    seconds: float
    dataset: str


def examples_from_state(task: QATask, state: dict, cfg: SimRagConfig, f1_threshold: float) -> list[CriticExample]:
    documents = state.get("documents", [])
    out, seen = [], 0
    for r in rounds_of(state):
        seen += len(r.doc_ids)
        gathered = documents[:seen]
        titles = {d["title"] or d["id"] for d in gathered}
        out.append(CriticExample(
            question_id=task.id, round=r.round, question=task.question,
            evidence=evidence_lines(gathered, cfg.max_doc_words), answer=r.answer, rationale=r.rationale,
            label=int(is_correct(r.answer, task.answers, f1_threshold)),
            coverage=int(set(task.supporting_titles) <= titles) if task.supporting_titles else None,
            gold_answers=task.answers,
        ))
    return out


def practice(
    tasks: list[QATask],
    out: Path,
    *,
    model: str | None,
    store: TrajectoryStore | None,
    paths: int = 2,
    temperature: float = 0.7,
    f1_threshold: float = 0.8,
    settings: SimRagConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> PracticeReport:
    cfg = (settings or SimRagConfig()).model_copy(update={"critic": "reject-all", "at_cap": "answer"})
    done = _done_questions(out)
    graph = build_sim_rag().compile(name="sim_rag")
    started, counts = time.time(), {"examples": 0, "positives": 0, "failed": 0, "skipped": 0}
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as f:
        for task in tasks:
            if task.id in done:
                counts["skipped"] += 1
                if progress:
                    progress(1)
                continue
            examples: dict[tuple, CriticExample] = {}
            for p in range(paths):
                config = run_config(
                    model=model, temperature=0.0 if p == 0 else temperature, seed=p,
                    **cfg.model_dump(exclude_none=True),
                )
                result = run(graph, "sim_rag", {"messages": [HumanMessage(task.question)]}, config, store)
                if result.status != "completed" or result.state is None:
                    counts["failed"] += 1
                    continue
                for ex in examples_from_state(task, result.state, cfg, f1_threshold):
                    examples.setdefault((ex.round, tuple(ex.evidence), ex.answer), ex)  # paths often agree
            for ex in examples.values():
                f.write(ex.model_dump_json() + "\n")
                counts["examples"] += 1
                counts["positives"] += ex.label
            f.flush()
            if progress:
                progress(1)
    return PracticeReport(
        questions=len(tasks), skipped_done=counts["skipped"], examples=counts["examples"],
        positives=counts["positives"], failed_runs=counts["failed"], seconds=time.time() - started, dataset=str(out),
    )


def _done_questions(out: Path) -> set[str]:
    return {row.question_id for row in read_log(out, CriticExample)}  # a cut line: practised again
