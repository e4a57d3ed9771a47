"""SIM-RAG: multi-round retrieval-augmented generation whose stopping decision is a critic's.

Each round the reasoner answers from the question and the evidence so far, with a short
rationale; the critic judges whether the evidence supports accepting that answer. On reject the
reasoner writes a new search query, the retriever adds top-k documents not seen before, and the
next round begins. A round cap ends the loop, either answering anyway or abstaining.

The same loop, with a fixed critic, is each baseline of the evaluation: ``accept-all`` with one
round is single-round RAG, ``reject-all`` with N rounds is fixed N-round RAG, zero documents per
round is closed-book answering. Every round (query, documents, answer, rationale, critic score)
is kept in the state, so it lands in the trajectory.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from agentrt.agent import model_from_config, question_of
from agentrt.critics.types import CriticInput, SufficiencyCritic
from agentrt.models.registry import DEFAULT_MODEL
from agentrt.once import OncePerKey
from agentrt.qa.prompts import (
    QUERY_PROMPT,
    REASONER_PROMPT,
    evidence_lines,
    parse_answer,
)
from agentrt.retrieval.shared import retriever_for

ABSTAIN = "I don't know: the retrieved evidence was not enough to answer."


class RoundRecord(BaseModel):
    round: int
    query: str | None
    doc_ids: list[str]
    answer: str
    rationale: str
    critic: str
    score: float
    accepted: bool


class SimRagState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    question: str
    query: str | None  # the query for the next retrieval
    documents: Annotated[list[dict[str, Any]], operator.add]  # evidence so far, in retrieval order
    new_doc_ids: list[str]  # what the latest retrieval added
    rounds: Annotated[list[dict[str, Any]], operator.add]  # judged rounds (RoundRecord)
    answer: str | None  # the latest answer
    rationale: str
    stop_reason: str | None


class SimRagConfig(BaseModel):
    """Per-run settings (each can be overridden in ``configurable``)."""

    max_rounds: int = Field(3, ge=1)
    docs_per_round: int = Field(3, ge=0)  # 0: closed book
    critic: str = "auto"  # auto | llm-judge | accept-all | reject-all | a trained critic's name or path
    at_cap: Literal["answer", "abstain"] = "answer"
    index: str | None = None  # an index folder; None: the HotpotQA demo index
    max_doc_words: int = Field(120, ge=10)  # passages are cut to this many words in prompts

    @classmethod
    def from_config(cls, config: RunnableConfig | None) -> SimRagConfig:
        conf = (config or {}).get("configurable", {})
        return cls(**{k: conf[k] for k in cls.model_fields if conf.get(k) is not None})


_critics: OncePerKey[SufficiencyCritic] = OncePerKey()


def critic_for(name: str, model_spec: str) -> SufficiencyCritic:
    """``auto`` is the trained critic ``sim-rag`` when one exists, else the LLM judge."""
    from agentrt.sim_rag.critics import FixedCritic, LLMJudge

    def load() -> SufficiencyCritic:
        if name in ("accept-all", "reject-all"):
            return FixedCritic(accept=name == "accept-all")
        if name == "llm-judge":
            return LLMJudge(model_spec)
        from agentrt.critics.classifier import CriticError, TrainedCritic

        try:
            return TrainedCritic.load("sim-rag" if name == "auto" else name)
        except CriticError:
            if name != "auto":
                raise
            return LLMJudge(model_spec)

    key = f"{name}|{model_spec}" if name in ("auto", "llm-judge") else name  # the judge depends on the model
    return _critics.load(key, load)


def _evidence_block(state: SimRagState, cfg: SimRagConfig) -> str:
    lines = evidence_lines(state.get("documents", []), cfg.max_doc_words)
    return "\n".join(f"[{i}] {line}" for i, line in enumerate(lines, 1)) or "(none)"


def start(state: SimRagState) -> dict[str, Any]:
    """A new run: the first query is the question itself."""
    question = question_of(state, "SIM-RAG")
    if not question.strip():
        raise ValueError("the question is empty")
    return {"question": question, "query": question, "answer": None, "rationale": "", "stop_reason": None}


def retrieve(state: SimRagState, config: RunnableConfig) -> dict[str, Any]:
    cfg = SimRagConfig.from_config(config)
    if cfg.docs_per_round == 0:
        return {"new_doc_ids": []}
    seen = {d["id"] for d in state.get("documents", [])}
    found = retriever_for(cfg.index).search(state["query"] or state["question"], k=cfg.docs_per_round, exclude=seen)
    return {
        "documents": [{"id": d.id, "title": d.title, "text": d.text, "score": d.score} for d in found],
        "new_doc_ids": [d.id for d in found],
    }


def reason(state: SimRagState, config: RunnableConfig) -> dict[str, Any]:
    cfg = SimRagConfig.from_config(config)
    prompt = f"Evidence:\n{_evidence_block(state, cfg)}\n\nQuestion: {state['question']}"
    reply = model_from_config(config).invoke(
        [SystemMessage(REASONER_PROMPT), HumanMessage(prompt)], config, max_tokens=96
    )
    answer, rationale = parse_answer(str(reply.content))
    return {"messages": [reply], "answer": answer, "rationale": rationale}


def judge(state: SimRagState, config: RunnableConfig) -> dict[str, Any]:
    cfg = SimRagConfig.from_config(config)
    critic = critic_for(cfg.critic, (config.get("configurable") or {}).get("model") or DEFAULT_MODEL)
    answer, rationale = state.get("answer") or "", state.get("rationale", "")
    (verdict,) = critic.judge([CriticInput(
        question=state["question"], evidence=evidence_lines(state.get("documents", []), cfg.max_doc_words),
        answer=answer, rationale=rationale,
    )])
    n = len(state.get("rounds", [])) + 1
    record = RoundRecord(
        round=n, query=state.get("query"), doc_ids=state.get("new_doc_ids", []), answer=answer,
        rationale=rationale, critic=verdict.critic, score=verdict.score, accepted=verdict.accept,
    )
    update: dict[str, Any] = {"rounds": [record.model_dump()]}
    if verdict.accept:
        update["stop_reason"] = "accepted"
    elif n >= cfg.max_rounds:
        update["stop_reason"] = "round_cap"
        if cfg.at_cap == "abstain":
            update["answer"] = ABSTAIN
    return update


def rewrite_query(state: SimRagState, config: RunnableConfig) -> dict[str, Any]:
    cfg = SimRagConfig.from_config(config)
    prompt = (f"Evidence:\n{_evidence_block(state, cfg)}\n\nQuestion: {state['question']}\n"
              f"Answer so far (not accepted): {state.get('answer')}\nSearch query:")
    reply = model_from_config(config).invoke(
        [SystemMessage(QUERY_PROMPT), HumanMessage(prompt)], config, max_tokens=32
    )
    query = str(reply.content).strip().splitlines()[0].strip().strip('"') if str(reply.content).strip() else ""
    return {"messages": [reply], "query": query or state["question"]}


def finish_messages(state: SimRagState) -> dict[str, Any]:
    """The answer as a final assistant message, so chat clients of the graph see it."""
    return {"messages": [AIMessage(state.get("answer") or "")]}


def build_sim_rag() -> StateGraph:
    builder = StateGraph(SimRagState)
    builder.add_node("start", start)
    builder.add_node("retrieve", retrieve)
    builder.add_node("reason", reason)
    builder.add_node("judge", judge)
    builder.add_node("rewrite_query", rewrite_query)
    builder.add_node("finish", finish_messages)
    builder.add_edge(START, "start")
    builder.add_edge("start", "retrieve")
    builder.add_edge("retrieve", "reason")
    builder.add_edge("reason", "judge")
    builder.add_conditional_edges("judge", lambda s: "finish" if s.get("stop_reason") else "rewrite_query", ["finish", "rewrite_query"])
    builder.add_edge("rewrite_query", "retrieve")
    builder.add_edge("finish", END)
    return builder


def rounds_of(state: SimRagState) -> list[RoundRecord]:
    return [RoundRecord(**r) for r in state.get("rounds", [])]
