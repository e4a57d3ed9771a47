"""CR-Planner: the planner graph (critics, budgets, trajectory), the tree search that collects
the critics' pairs, the ranking critics, and the CLI; scripted models and an in-memory
retriever for the logic, the real model and a real index for the end-to-end checks."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage
from typer.testing import CliRunner

from agentrt.cli import app
from agentrt.cr_planner import critics as plan_critics
from agentrt.cr_planner.collect import collect, read_pairs, read_trees
from agentrt.cr_planner.critics import JUDGE_PROMPT
from agentrt.cr_planner.graph import PlannerConfig, build_cr_planner, steps_of
from agentrt.cr_planner.mcts import SearchSettings, TreeSearch
from agentrt.cr_planner.plan import (
    QUERY_PROMPT,
    REASON_PROMPT,
    Plan,
    PlanSettings,
    allowed_subgoals,
)
from agentrt.critics.classifier import CriticError
from agentrt.critics.folders import list_critics
from agentrt.critics.ranking import RankingCritic, RankingPair, train_ranking_critic
from agentrt.models.registry import load_model
from agentrt.once import OncePerKey
from agentrt.qa.data import QATask
from agentrt.qa.evaluation import measure
from agentrt.runner import run, run_config
from tests.test_sim_rag import WordOverlap

QUESTION = "Where is the Eiffel Tower?"
TASK = QATask(id="q-eiffel", question=QUESTION, answers=["Paris"], supporting_titles=["Eiffel Tower"])


def model_script(judge_pick: str = "1", answer_empty: bool = False):
    """Replies by prompt: the answer is right ("Paris") only when the Eiffel Tower passage is in the
    evidence, so retrieving the right passage is what pays."""
    counter = {"n": 0}

    def reply(messages):
        system, user = str(messages[0].content), str(messages[-1].content)
        counter["n"] += 1
        if system == JUDGE_PROMPT:
            return judge_pick
        if system == QUERY_PROMPT:
            return f"eiffel tower city {counter['n'] % 2}"
        if system == REASON_PROMPT:
            return "The evidence names a tower; the city is missing."
        if answer_empty:
            return ""
        return "Answer: Paris\nRationale: [1] says so." if "Eiffel Tower:" in user else "Answer: Berlin\nRationale: a guess."

    return reply


@pytest.fixture
def retriever(monkeypatch):
    from agentrt.retrieval import shared

    r = WordOverlap()
    monkeypatch.setitem(shared._retrievers, "mem", r)
    return r


class Prefer:
    """A stand-in trained critic: scores an action by the first preferred word it contains."""

    def __init__(self, name: str, *words: str) -> None:
        self.name, self.words = name, words

    def rank(self, question, state, actions):
        return [next((10.0 - i for i, w in enumerate(self.words) if w in a), 0.0) for a in actions]


def plan(spec, store=None, **conf):
    config = run_config(model=spec, index="mem", **conf)
    return run(build_cr_planner().compile(), "cr_planner", {"messages": [HumanMessage(QUESTION)]}, config, store)


def test_trained_critics_steer_subgoals_and_candidates(scripted, retriever, monkeypatch, store):
    monkeypatch.setitem(plan_critics._loaded, "sg", Prefer("sg@1", "retrieve", "answer"))
    monkeypatch.setitem(plan_critics._loaded, "ex", Prefer("ex@1", "Eiffel Tower:", "Paris"))
    result = plan(scripted(model_script()), store, subgoal_critic="sg", execution_critic="ex", keep_docs=1, retrieve_k=3)
    assert result.status == "completed", result.error
    steps = steps_of(result.state)
    assert [s.subgoal for s in steps] == ["retrieve", "answer"]
    first = steps[0]
    assert first.subgoal_critic == "sg@1" and set(first.subgoal_scores) == {"retrieve", "reason", "answer"}
    assert len(first.candidates) == 3 and first.candidates[first.chosen[0]].startswith("Eiffel Tower:")
    assert first.candidate_scores[first.chosen[0]] == max(first.candidate_scores) and first.execution_critic == "ex@1"
    assert result.answer == "Paris" and result.state["stop_reason"] == "answered"
    assert result.state["critics"] == {"subgoal": "sg@1", "execution": "ex@1"}
    assert [d["title"] for d in result.state["documents"]] == ["Eiffel Tower"]
    # every decision, its candidates and their scores are in the trajectory
    recorded = [u["plan_steps"][0] for node, u in store.node_updates(result.run_id) if node == "execute"]
    assert [r["subgoal"] for r in recorded] == ["retrieve", "answer"]
    assert recorded[0]["candidates"] == first.candidates and recorded[0]["candidate_scores"] == first.candidate_scores
    assert recorded[0]["subgoal_scores"] == first.subgoal_scores
    # what the QA evaluation reads from a planner run
    measured = measure("CR-Planner", TASK, result)
    assert (measured.em, measured.retrieval_calls, measured.rounds, measured.support_recall) == (1.0, 1, 2, 1.0)
    assert measured.model_calls == result.state["model_calls"] == 1  # one batched call for the answers


def test_without_trained_critics_the_llm_judge_decides_and_says_so(scripted, retriever, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path))  # no trained critics there
    monkeypatch.setattr(plan_critics, "_loaded", OncePerKey())
    spec = scripted(model_script(judge_pick="1"))
    result = plan(spec, max_steps=3)
    assert result.status == "completed", result.error
    assert result.state["critics"] == {"subgoal": f"llm-judge:{spec}", "execution": f"llm-judge:{spec}"}
    steps = steps_of(result.state)
    assert steps[0].subgoal == "retrieve" and steps[0].subgoal_scores["retrieve"] == 1.0
    assert steps[0].subgoal_critic == f"llm-judge:{spec}"
    # judge calls are counted as model calls
    assert result.state["model_calls"] == sum(s.model_calls for s in steps) >= 2


def test_step_budget_ends_with_an_answer_and_a_stop_reason(scripted, retriever):
    result = plan(scripted(model_script()), max_steps=1, subgoal_critic="llm-judge", execution_critic="llm-judge")
    steps = steps_of(result.state)
    assert [s.subgoal for s in steps] == ["answer"] and steps[0].subgoal_critic == "forced"
    assert result.state["stop_reason"] == "step_budget" and result.answer == "Berlin"


def test_no_answer_gives_the_best_partial_answer(scripted, retriever, monkeypatch):
    monkeypatch.setitem(plan_critics._loaded, "sg", Prefer("sg@1", "retrieve", "reason", "answer"))
    result = plan(scripted(model_script(answer_empty=True)), max_steps=3, subgoal_critic="sg", execution_critic="llm-judge")
    assert [s.subgoal for s in steps_of(result.state)] == ["retrieve", "reason", "answer"]
    assert result.state["stop_reason"] == "no_answer"
    assert result.answer == "The evidence names a tower; the city is missing."  # the latest note


def test_allowed_subgoals_follow_the_plan():
    settings = PlanSettings(max_steps=4)
    p = Plan.start(QUESTION)
    assert allowed_subgoals(p, settings) == ["retrieve", "reason", "answer"]
    p = p.model_copy(update={"pending_query": None, "last": "reason", "steps": 1})
    assert allowed_subgoals(p, settings) == ["query", "answer"]
    assert allowed_subgoals(p.model_copy(update={"steps": 3}), settings) == ["answer"]
    with pytest.raises(ValueError, match="empty"):
        Plan.start("  ")
    # a run's greedy temperature (evaluations set 0) leaves candidate sampling on
    assert PlannerConfig.from_config(run_config(temperature=0.0)).sample_temperature == 0.7


def test_tree_search_respects_budget_and_finds_better_siblings(scripted, retriever):
    settings = PlanSettings(max_steps=3, samples=2, retrieve_k=3, keep_docs=1)
    model = load_model(scripted(model_script()))
    search = TreeSearch(TASK, settings, SearchSettings(simulations=6, max_model_calls=9), model=model, retriever=retriever)
    pairs, stats = search.run()
    assert stats.model_calls <= 9 and stats.depth <= settings.max_steps
    assert stats.best_reward == 1.0 and stats.root_values["retrieve"] > stats.root_values["answer"]
    assert all(p.better_value - p.worse_value >= 0.1 for p in pairs)
    sub = [p for p in pairs if p.kind == "subgoal"]
    assert any(p.better.startswith("Next: retrieve") and p.worse.startswith("Next: answer") for p in sub)
    ex = [p for p in pairs if p.kind == "execution"]
    assert any("Candidate: Eiffel Tower:" in p.better for p in ex)
    # a budget of one model call: the search stops at once, having spent no more
    tight = TreeSearch(TASK, settings, SearchSettings(simulations=6, max_model_calls=1), model=model, retriever=retriever)
    _, stats = tight.run()
    assert stats.model_calls <= 1 and stats.stopped == "budget"


def test_collect_appends_and_resumes(scripted, retriever, tmp_path):
    settings = PlanSettings(max_steps=3, samples=2, retrieve_k=3, keep_docs=1)
    model = load_model(scripted(model_script()))
    tasks = [TASK, TASK.model_copy(update={"id": "q2"})]
    out = tmp_path / "pairs"
    first = collect(tasks[:1], out, settings=settings, search=SearchSettings(simulations=4), model=model, retriever=retriever)
    assert first.subgoal_pairs + first.execution_pairs > 0
    # half a line of an interrupted second question is dropped on resume
    with (out / "pairs.jsonl").open("a") as f:
        f.write('{"group": "q2", "kind": "subg')
    again = collect(tasks, out, settings=settings, search=SearchSettings(simulations=4), model=model, retriever=retriever)
    assert again.skipped_done == 1 and {t.question_id for t in read_trees(out)} == {"q-eiffel", "q2"}
    pairs = read_pairs(out)
    assert {p.group for p in pairs} == {"q-eiffel", "q2"}
    assert len(pairs) == first.subgoal_pairs + first.execution_pairs + again.subgoal_pairs + again.execution_pairs


def test_damaged_pairs_file_is_a_clear_error(tmp_path):
    (tmp_path / "pairs.jsonl").write_text('{"nope": 1}\n{"also": "bad"}\n')
    with pytest.raises(CriticError, match="line 1: not a valid ranking pair row"):
        read_pairs(tmp_path / "pairs.jsonl")
    result = CliRunner().invoke(app, ["plan", "train", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no pairs at" in result.output and "Traceback" not in result.output


def _pairs(n: int) -> list[RankingPair]:
    out = []
    for i in range(n):
        out.append(RankingPair(group=f"q{i}", kind="execution", context=f"question {i}",
                               better=f"Next: retrieve. Candidate: the tower stands in Paris, item {i}",
                               worse=f"Next: retrieve. Candidate: unrelated football results, item {i}",
                               better_value=1.0, worse_value=0.0))
    return out


def test_ranking_critic_learns_pairs_and_is_versioned(tmp_path, monkeypatch):
    """The real MiniLM with the pairwise loss ranks held-out pairs of an easy pattern correctly."""
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path))
    root = tmp_path / "critics"
    report = train_ranking_critic(_pairs(40), name="toy-rank", ranks="execution", epochs=3, batch_size=8, lr=1e-4,
                                  max_length=64)
    assert report.critic.metrics.accuracy is not None and report.critic.metrics.accuracy >= 0.85
    assert report.critic.dev_pairs == 8 and report.critic.train_groups == 32
    critic = RankingCritic.load("toy-rank", root=root)
    good, bad = critic.scores("question 99", ["Next: retrieve. Candidate: the tower stands in Paris, item 99",
                                              "Next: retrieve. Candidate: unrelated football results, item 99"])
    assert good > bad
    second = train_ranking_critic(_pairs(12), name="toy-rank", ranks="execution", epochs=1, max_length=64, root=root)
    assert second.name == "toy-rank@2"
    kinds = {type(meta).__name__ for _, meta in list_critics(root)}
    assert kinds == {"RankingMeta"}
    # the critic commands show ranking critics beside sufficiency critics
    listed = CliRunner().invoke(app, ["critic", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "toy-rank@2" in listed.output and "ranking (execution)" in listed.output
    shown = CliRunner().invoke(app, ["critic", "show", "toy-rank@1"])
    assert shown.exit_code == 0 and '"kind": "ranking"' in shown.output
    with pytest.raises(CriticError, match="no 'subgoal' pairs"):
        train_ranking_critic([], name="empty", ranks="subgoal", root=root)


@pytest.mark.model
def test_planner_and_tree_search_with_real_model_and_index(small_real_index, store, tmp_path, monkeypatch):
    """The embedded Qwen plans over a real index: the LLM-judge planner answers within its budget,
    and `plan collect` searches a tree within its model-call budget."""
    from agentrt.qa.data import load_qa

    folder, source = small_real_index
    task = load_qa(source)[0]
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(plan_critics, "_loaded", OncePerKey())
    config = run_config(index=str(folder), max_steps=3, samples=2, temperature=0.0)  # greedy, as evaluations run
    result = run(build_cr_planner().compile(), "cr_planner", {"messages": [HumanMessage(task.question)]}, config, store)
    assert result.status == "completed", result.error
    steps = steps_of(result.state)
    assert 1 <= len(steps) <= 3 and steps[-1].subgoal == "answer" and result.answer
    assert result.state["critics"]["subgoal"].startswith("llm-judge:")
    assert result.state["stop_reason"] in ("answered", "step_budget", "no_answer")
    out = tmp_path / "collect"
    cli = CliRunner().invoke(app, ["plan", "collect", "--data", str(source), "--split", "first:1", "--index", str(folder),
                                   "--simulations", "2", "--max-model-calls", "6", "--samples", "2", "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    (stats,) = read_trees(out)
    assert stats.model_calls <= 6 and stats.nodes > 1
