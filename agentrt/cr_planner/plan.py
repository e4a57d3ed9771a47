"""CR-Planner's world: what a plan holds, which sub-goals may come next, how each sub-goal's
candidates are made, and what choosing candidates does to the plan.

The planner graph and the tree search both act through these functions, so the critics are
trained on exactly the states and actions the planner later scores. The four sub-goals:

* ``reason``: write a one-sentence note on what the evidence shows and what is missing;
* ``query``: write a search query (the question itself is the first pending query);
* ``retrieve``: search for the pending query; the candidates are the retrieved passages, and
  the best ``keep_docs`` of them (by the execution critic) join the evidence;
* ``answer``: answer from the evidence; ends the plan.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from agentrt.qa.prompts import (
    QUERY_PROMPT,
    REASONER_PROMPT,
    evidence_lines,
    parse_answer,
)
from agentrt.retrieval.types import Retriever

Subgoal = Literal["reason", "query", "retrieve", "answer"]
SUBGOALS: tuple[Subgoal, ...] = ("retrieve", "query", "reason", "answer")

SUBGOAL_TEXT = {
    "reason": "reason: note what the evidence shows and what is still missing",
    "query": "query: write a new search query for the missing information",
    "retrieve": "retrieve: search the documents with the pending query",
    "answer": "answer: give the final answer now",
}
REASON_PROMPT = (
    "You plan how to answer a question from evidence passages. In one short sentence, state what "
    "the evidence already tells and what is still missing. Do not answer yet."
)


class PlanSettings(BaseModel):
    """Budgets and sizes of one plan (each can be overridden in ``configurable``)."""

    max_steps: int = Field(5, ge=1)  # sub-goals executed, the final answer included
    samples: int = Field(3, ge=1)  # candidates sampled for reason, query and answer
    retrieve_k: int = Field(4, ge=1)  # passages retrieved as candidates
    keep_docs: int = Field(2, ge=1)  # passages kept per retrieval
    # sampling of candidates (one batched call); its own name, so a run's greedy ``temperature``
    # (evaluations set 0) does not turn candidate sampling off
    sample_temperature: float = Field(0.7, ge=0.0)
    max_doc_words: int = Field(120, ge=10)
    index: str | None = None  # an index folder; None: the HotpotQA demo index


class Plan(BaseModel):
    """Everything the planner knows at one point; copied, never changed in place."""

    question: str
    pending_query: str | None = None
    queries: list[str] = Field(default_factory=list)  # queries already searched
    documents: list[dict[str, Any]] = Field(default_factory=list)  # kept evidence: id, title, text, score
    notes: list[str] = Field(default_factory=list)  # rationales written by ``reason``
    answer: str | None = None
    rationale: str = ""
    last: Subgoal | None = None
    steps: int = 0

    @classmethod
    def start(cls, question: str) -> Plan:
        if not question.strip():
            raise ValueError("the question is empty")
        return cls(question=question, pending_query=question)

    @property
    def done(self) -> bool:
        return self.answer is not None


class Candidate(BaseModel):
    """One way to execute a sub-goal: its text (what critics read and trajectories show), and for
    ``retrieve`` the passage, for ``answer`` the rationale that came with it."""

    text: str
    document: dict[str, Any] | None = None
    rationale: str = ""


def allowed_subgoals(plan: Plan, settings: PlanSettings) -> list[Subgoal]:
    """The sub-goals that make sense next; on the last step of the budget only ``answer``."""
    if plan.done:
        return []
    if plan.steps >= settings.max_steps - 1:
        return ["answer"]
    out: list[Subgoal] = ["retrieve" if plan.pending_query else "query"]
    if plan.last != "reason":
        out.append("reason")
    out.append("answer")
    return out


def evidence_block(plan: Plan, max_words: int) -> str:
    lines = [f"[{i}] {line}" for i, line in enumerate(evidence_lines(plan.documents, max_words), 1)]
    notes = [f"Note: {n}" for n in plan.notes]
    return "\n".join(lines + notes) or "(none)"


def _messages(plan: Plan, subgoal: Subgoal, settings: PlanSettings) -> list[Any]:
    evidence = evidence_block(plan, settings.max_doc_words)
    base = f"Evidence:\n{evidence}\n\nQuestion: {plan.question}"
    if subgoal == "answer":
        return [SystemMessage(REASONER_PROMPT), HumanMessage(base)]
    if subgoal == "query":
        searched = "; ".join(plan.queries) or "(none)"
        return [SystemMessage(QUERY_PROMPT), HumanMessage(f"{base}\nAlready searched: {searched}\nSearch query:")]
    return [SystemMessage(REASON_PROMPT), HumanMessage(f"{base}\nNote:")]


_MAX_TOKENS = {"answer": 96, "query": 32, "reason": 64}


def _first_line(text: str) -> str:
    lines = [line.strip().strip('"') for line in text.strip().splitlines() if line.strip()]
    return re.sub(r"^(search query|query|note)\s*:\s*", "", lines[0], flags=re.IGNORECASE) if lines else ""


def propose(plan: Plan, subgoal: Subgoal, settings: PlanSettings, *, model: Any, retriever: Retriever,
            seed: int | None = None, greedy: bool = False) -> tuple[list[Candidate], int]:
    """The candidates for ``subgoal`` and the number of model calls spent making them.

    Model-written candidates come from one batched call of ``samples`` answers (``greedy``: one
    answer at temperature 0, as the tree search's rollouts use, or a ``sample_temperature`` of 0);
    duplicates are dropped. An
    empty or unparseable reply gives no candidate rather than an empty one."""
    if subgoal == "retrieve":
        query = plan.pending_query or plan.question
        seen = {d["id"] for d in plan.documents}
        found = retriever.search(query, k=settings.retrieve_k, exclude=seen)
        docs = [{"id": d.id, "title": d.title, "text": d.text, "score": d.score} for d in found]
        return [Candidate(text=evidence_lines([d], settings.max_doc_words)[0], document=d) for d in docs], 0
    messages = _messages(plan, subgoal, settings)
    params: dict[str, Any] = {"max_tokens": _MAX_TOKENS[subgoal]}
    if greedy or settings.sample_temperature == 0:  # through invoke, so a model cache can answer repeats
        replies = [model.invoke(messages, temperature=0.0, **params)]
    else:
        replies = model.sample(messages, settings.samples, temperature=settings.sample_temperature, seed=seed, **params)
    out: dict[str, Candidate] = {}
    for reply in replies:
        text = str(reply.content)
        if subgoal == "answer":
            answer, rationale = parse_answer(text)
            if answer:
                out.setdefault(answer.lower(), Candidate(text=answer, rationale=rationale))
        elif line := _first_line(text):
            out.setdefault(line.lower(), Candidate(text=line))
    return list(out.values()), 1


def apply(plan: Plan, subgoal: Subgoal, chosen: list[Candidate]) -> Plan:
    """The plan after executing ``subgoal`` with the chosen candidates (for ``retrieve``: the
    passages to keep; otherwise one candidate, or none when the model gave nothing usable)."""
    update: dict[str, Any] = {"last": subgoal, "steps": plan.steps + 1}
    if subgoal == "retrieve":
        update["documents"] = plan.documents + [c.document for c in chosen if c.document]
        update["queries"] = plan.queries + [plan.pending_query or plan.question]
        update["pending_query"] = None
    elif subgoal == "query" and chosen:
        update["pending_query"] = chosen[0].text
    elif subgoal == "reason" and chosen:
        update["notes"] = plan.notes + [chosen[0].text]
    elif subgoal == "answer":
        update["answer"] = chosen[0].text if chosen else ""
        update["rationale"] = chosen[0].rationale if chosen else ""
    return plan.model_copy(update=update)


def partial_answer(plan: Plan) -> str:
    """The best answer a plan has when no answer candidate came out: its latest note, else the
    title of its best passage, else an honest nothing."""
    if plan.notes:
        return plan.notes[-1]
    if plan.documents:
        return str(plan.documents[0].get("title") or plan.documents[0]["id"])
    return "(no answer within the budget)"


# ---------------------------------------------------------------- what critics read


def state_text(plan: Plan, settings: PlanSettings, evidence_words: int = 200) -> str:
    """The plan as one text for the critics: budget, queries, notes, then passages (cut to a
    shared word budget, so a later step's passages are not lost to truncation)."""
    parts = [f"Step {plan.steps + 1} of {settings.max_steps}."]
    if plan.queries:
        parts.append("Searched: " + "; ".join(plan.queries) + ".")
    if plan.pending_query:
        parts.append(f"Pending query: {plan.pending_query}.")
    if plan.notes:
        parts.append("Notes: " + " ".join(plan.notes))
    passages = evidence_lines(plan.documents, settings.max_doc_words)
    if passages:
        each = max(8, evidence_words // len(passages))
        parts.append("Evidence: " + " ".join(f"[{i}] {' '.join(p.split()[:each])}" for i, p in enumerate(passages, 1)))
    else:
        parts.append("Evidence: (none)")
    return " ".join(parts)


def action_text(subgoal: Subgoal, candidate: Candidate | None = None) -> str:
    """A sub-goal (for the sub-goal critic) or a candidate of one (for the execution critic)."""
    if candidate is None:
        return f"Next: {SUBGOAL_TEXT[subgoal]}"
    return f"Next: {subgoal}. Candidate: {candidate.text}"
