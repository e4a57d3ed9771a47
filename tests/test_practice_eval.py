"""Self-practice labels and the evaluation table, with a scripted reasoner that is right only
when the evidence holds the answer (so labels and metrics have something real to measure)."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import SystemMessage

from agentrt.models.cache import cached_models
from agentrt.qa.data import DataError, QATask, load_qa, split
from agentrt.qa.evaluation import EvalSetting, evaluate, plot, summarize
from agentrt.qa.metrics import (
    bootstrap_ci,
    exact_match,
    f1_score,
    is_correct,
    normalize_answer,
)
from agentrt.retrieval import shared
from agentrt.sim_rag.graph import QUERY_PROMPT, SimRagConfig
from agentrt.sim_rag.practice import practice
from tests.test_sim_rag import WordOverlap

TASKS = [
    QATask(id="q1", question="Where is the Eiffel Tower?", answers=["Paris"], supporting_titles=["Eiffel Tower"]),
    QATask(id="q2", question="Who was Gustave Eiffel?", answers=["a French engineer"], supporting_titles=["Gustave Eiffel"]),
]


def evidence_reader(messages):
    system = str(messages[0].content) if isinstance(messages[0], SystemMessage) else ""
    prompt = str(messages[-1].content)
    if system == QUERY_PROMPT:
        return "gustave eiffel french engineer" if "Gustave" in prompt else "eiffel tower paris"
    if "Eiffel Tower:" in prompt and "Paris:" in prompt and "Eiffel Tower?" in prompt:  # needs two documents
        return "Answer: Paris\nRationale: [1] says so."
    if "Gustave Eiffel:" in prompt:
        return "Answer: a French engineer\nRationale: it says so."
    return "Answer: Berlin\nRationale: a guess."


@pytest.fixture
def mem_index(monkeypatch):
    monkeypatch.setitem(shared._retrievers, "mem", WordOverlap())


def test_practice_labels_rounds_and_resumes(scripted, store, tmp_path, mem_index):
    spec = scripted(evidence_reader)
    out = tmp_path / "critic.jsonl"
    report = practice(TASKS, out, model=spec, store=store, paths=2, settings=SimRagConfig(index="mem", docs_per_round=1, max_rounds=3))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert report.examples == len(rows) > 0 and report.failed_runs == 0
    for row in rows:
        assert row["label"] == int(is_correct(row["answer"], row["gold_answers"]))
        titles = {e.split(":")[0] for e in row["evidence"]}
        gold = {"q1": {"Eiffel Tower"}, "q2": {"Gustave Eiffel"}}[row["question_id"]]
        assert row["coverage"] == int(gold <= titles)
    assert {r["question_id"] for r in rows} == {"q1", "q2"} and any(r["label"] == 1 for r in rows)
    assert any(r["label"] == 0 for r in rows)
    again = practice(TASKS, out, model=spec, store=store, paths=2, settings=SimRagConfig(index="mem"))
    assert again.skipped_done == 2 and again.examples == 0


def test_evaluate_settings_with_cache_and_plot(scripted, store, tmp_path, mem_index):
    spec = scripted(evidence_reader)
    base = {"index": "mem", "docs_per_round": 1}
    settings = [
        EvalSetting(name="no retrieval", configurable={**base, "critic": "accept-all", "docs_per_round": 0, "max_rounds": 1}),
        EvalSetting(name="single-round RAG", configurable={**base, "critic": "accept-all", "max_rounds": 1}),
        EvalSetting(name="fixed 3 rounds", configurable={**base, "critic": "reject-all", "max_rounds": 3}),
    ]
    from agentrt.manifest import load_graph

    with cached_models(tmp_path / "cache.sqlite") as cache:
        results = evaluate(TASKS, settings, tmp_path / "results.jsonl", load_graph=lambda g: load_graph(g), model=spec, store=store)
    assert cache.hits > 0  # the settings share their first calls
    assert len(results) == 6 and all(r.status == "completed" for r in results)
    by = {(r.setting, r.task_id): r for r in results}
    assert by[("no retrieval", "q1")].retrieval_calls == 0 and by[("no retrieval", "q1")].em == 0
    assert by[("fixed 3 rounds", "q1")].retrieval_calls == 3 and by[("fixed 3 rounds", "q1")].rounds == 3
    assert by[("fixed 3 rounds", "q1")].em == 1.0 and by[("fixed 3 rounds", "q1")].support_recall == 1.0
    summaries = summarize(results, [s.name for s in settings], reference="single-round RAG")
    assert [s.setting for s in summaries] == [s.name for s in settings]
    fixed = summaries[2]
    assert fixed.em_diff is not None and fixed.em >= summaries[1].em
    assert plot(summaries, tmp_path / "p.png", "test").stat().st_size > 1000
    # resuming runs nothing new
    again = evaluate(TASKS, settings, tmp_path / "results.jsonl", load_graph=lambda g: load_graph(g), model=spec, store=store)
    assert len(again) == 6


def test_metrics_follow_the_official_normalisation():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert exact_match("the Paris", ["Paris"]) == 1.0
    assert f1_score("Paris France", ["Paris"]) == pytest.approx(2 / 3)
    assert f1_score("yes", ["no"]) == 0.0 and exact_match("Yes.", ["yes"]) == 1.0
    lo, hi = bootstrap_ci([0, 1] * 50)
    assert lo < 0.5 < hi


def test_qa_loader_errors(tmp_path):
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="has no tasks"):
        load_qa(empty)
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"question": "q", "answer": "a"}\n{"question": "no answer"}\n')
    with pytest.raises(DataError, match="line 2"):
        load_qa(bad)
    assert [t.id for t in split(TASKS, "last:1")] == ["q2"] and [t.id for t in split(TASKS, "first:1")] == ["q1"]
