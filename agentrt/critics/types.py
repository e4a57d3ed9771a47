"""The boundary of every critic: what is judged, and the verdict."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field


class CriticInput(BaseModel):
    """One round of multi-round RAG, as the sufficiency critic sees it."""

    question: str
    evidence: list[str] = Field(default_factory=list)  # passages, "title: text"
    answer: str
    rationale: str = ""


class Judgement(BaseModel):
    """A critic's judgement of one round (a verifier's pass/fail is ``rft.verifiers.Verdict``)."""

    score: float = Field(ge=0.0, le=1.0)  # probability that the answer should be accepted
    accept: bool
    critic: str  # which critic judged: a name and version, or "llm-judge:<model spec>"


class SufficiencyCritic(Protocol):
    name: str

    def judge(self, items: list[CriticInput]) -> list[Judgement]: ...


class CriticExample(CriticInput):
    """A labelled round from self-practice: ``label`` 1 if the round's answer was correct."""

    question_id: str
    round: int
    label: int = Field(ge=0, le=1)
    coverage: int | None = Field(None, ge=0, le=1)  # 1 if all gold supporting documents were retrieved
    gold_answers: list[str] = Field(default_factory=list)


class StopOutcome(BaseModel):
    """The replayed loop at one threshold, averaged over dev questions."""

    threshold: float
    f1: float
    rounds: float


class StoppingMetrics(BaseModel):
    """The chosen threshold beside the two fixed policies it must beat."""

    questions: int
    paths: int
    retrieval_cost: float
    chosen: StopOutcome
    first_round: StopOutcome  # accept every first answer: single-round RAG
    at_cap: StopOutcome  # accept nothing: fixed rounds up to the cap
