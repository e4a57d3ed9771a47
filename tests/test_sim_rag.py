"""The SIM-RAG loop with a scripted reasoner, an in-memory retriever and fixed critics."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from agentrt.critics.types import Judgement
from agentrt.retrieval import shared
from agentrt.retrieval.types import ScoredDocument
from agentrt.runner import run, run_config
from agentrt.sim_rag import graph as sim_rag
from agentrt.sim_rag.graph import ABSTAIN, build_sim_rag, parse_answer, rounds_of

DOCS = [
    ("Paris", "Paris is the capital of France."),
    ("France", "France is a country in Europe whose capital is Paris."),
    ("Eiffel Tower", "The Eiffel Tower is in Paris and was built in 1889."),
    ("Berlin", "Berlin is the capital of Germany."),
    ("Gustave Eiffel", "Gustave Eiffel was a French engineer."),
]


class WordOverlap:
    """A retriever scoring documents by shared words: enough to check the loop's bookkeeping."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, set[str]]] = []

    def search(self, query, k=5, exclude=()):
        self.calls.append((query, k, set(exclude)))
        words = set(query.lower().split())
        ranked = sorted(DOCS, key=lambda d: -len(words & set((d[0] + " " + d[1]).lower().split())))
        return [ScoredDocument(id=t, title=t, text=x, score=1.0) for t, x in ranked if t not in exclude][:k]


class AcceptAtRound:
    name = "accept-at-2"

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, 0

    def judge(self, items):
        self.seen += 1
        return [Judgement(score=0.9 if self.seen >= self.n else 0.1, accept=self.seen >= self.n, critic=self.name)]


@pytest.fixture
def retriever(monkeypatch):
    r = WordOverlap()
    monkeypatch.setitem(shared._retrievers, "mem", r)
    return r


def reasoner(*answers: str):
    """Script alternating reason / rewrite-query turns."""
    script = []
    for i, a in enumerate(answers):
        script.append(f"Answer: {a}\nRationale: evidence [{i + 1}] says so.")
        script.append(f"query {i + 2}")
    return script


def go(spec, question="Where is the Eiffel Tower?", **conf):
    graph = build_sim_rag().compile()
    return graph.invoke({"messages": [HumanMessage(question)]}, run_config(model=spec, index="mem", **conf))


def test_single_round_accept(scripted, retriever):
    state = go(scripted(reasoner("Paris")), critic="accept-all", max_rounds=3, docs_per_round=2)
    (r,) = rounds_of(state)
    assert (r.round, r.accepted, r.answer, r.critic) == (1, True, "Paris", "accept-all")
    assert r.rationale == "evidence [1] says so." and len(r.doc_ids) == 2
    assert state["stop_reason"] == "accepted" and state["messages"][-1].content == "Paris"
    assert len(retriever.calls) == 1 and retriever.calls[0][0] == "Where is the Eiffel Tower?"


def test_reject_all_runs_fixed_rounds_with_new_documents(scripted, retriever):
    state = go(scripted(reasoner("Berlin", "Lyon", "Paris")), critic="reject-all", max_rounds=3, docs_per_round=1)
    rounds = rounds_of(state)
    assert [r.answer for r in rounds] == ["Berlin", "Lyon", "Paris"]
    assert [r.query for r in rounds] == ["Where is the Eiffel Tower?", "query 2", "query 3"]
    ids = [i for r in rounds for i in r.doc_ids]
    assert len(ids) == 3 and len(set(ids)) == 3  # each round adds documents not seen before
    assert retriever.calls[2][2] == set(ids[:2])
    assert state["stop_reason"] == "round_cap" and state["answer"] == "Paris"


def test_abstain_at_cap(scripted, retriever):
    state = go(scripted(reasoner("Berlin", "Lyon")), critic="reject-all", max_rounds=2, at_cap="abstain")
    assert state["answer"] == ABSTAIN and state["messages"][-1].content == ABSTAIN


def test_critic_stops_the_loop(scripted, retriever, monkeypatch):
    monkeypatch.setitem(sim_rag._critics, "accept-at-2", AcceptAtRound(2))
    spec = scripted(reasoner("Berlin", "Paris"))
    state = go(spec, critic="accept-at-2", max_rounds=5)
    assert [r.accepted for r in rounds_of(state)] == [False, True] and state["answer"] == "Paris"


def test_closed_book_retrieves_nothing(scripted, retriever):
    state = go(scripted(reasoner("Paris")), critic="accept-all", docs_per_round=0)
    assert retriever.calls == [] and rounds_of(state)[0].doc_ids == []


def test_rounds_land_in_the_trajectory(scripted, retriever, store):
    spec = scripted(reasoner("Berlin", "Paris"))
    result = run(build_sim_rag().compile(), "sim_rag", {"messages": [HumanMessage("Where is the Eiffel Tower?")]},
                 run_config(model=spec, index="mem", critic="reject-all", max_rounds=2), store)
    assert result.status == "completed" and result.answer == "Paris" and result.stop_reason == "round_cap"
    t = store.get(result.run_id)
    judged = [e for e in t.events if e.node == "judge"]
    assert len(judged) == 2
    assert [e.node for e in t.events][:3] == ["start", "retrieve", "reason"]


def test_empty_question_fails_clearly(scripted, retriever, store):
    result = run(build_sim_rag().compile(), "sim_rag", {"question": "  "}, run_config(model=scripted([]), index="mem"), store)
    assert result.status == "failed" and "the question is empty" in result.error


@pytest.mark.parametrize("text,expected", [
    ("Answer: Paris\nRationale: [1] says it.", ("Paris", "[1] says it.")),
    ("answer: **1889**", ("1889", "")),
    ("Paris", ("Paris", "")),
    ("", ("", "")),
])
def test_parse_answer(text, expected):
    assert parse_answer(text) == expected
