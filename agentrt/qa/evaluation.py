"""QA evaluation: answer quality against retrieval cost, for several settings side by side.

Each setting is a graph from the manifest plus run configuration (critic, rounds, documents
per round...), so the baselines and the methods share one code path. Per question we keep EM
and F1 (SQuAD/HotpotQA normalisation), recall of the gold supporting documents, retrieval calls,
rounds, model calls and latency; per setting, means with 95% bootstrap intervals and the paired
difference against a reference setting, because a few points on 300 questions can be noise.
Results are appended per question, so an interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from pydantic import BaseModel, Field

from agentrt.jsonl import read_log
from agentrt.qa.data import QATask
from agentrt.qa.metrics import (
    bootstrap_ci,
    exact_match,
    f1_score,
    paired_bootstrap_ci,
    support_recall,
)
from agentrt.runner import run, run_config
from agentrt.trajectory_store import TrajectoryStore


class EvalSetting(BaseModel):
    name: str
    graph: str = "sim_rag"
    configurable: dict[str, Any] = Field(default_factory=dict)


def sim_rag_settings(critics: list[str] | None = None, docs_per_round: int = 3, max_rounds: int = 3) -> list[EvalSetting]:
    """The comparison the SIM-RAG paper makes, all on the SIM-RAG loop; one SIM-RAG setting per
    trained critic (e.g. one trained on answer correctness, one on evidence coverage)."""
    k = docs_per_round
    critics = critics or ["sim-rag"]
    trained = [EvalSetting(name="SIM-RAG (trained critic)" if len(critics) == 1 else f"SIM-RAG (critic {c})",
                           configurable={"critic": c, "max_rounds": max_rounds, "docs_per_round": k}) for c in critics]
    return [
        EvalSetting(name="no retrieval", configurable={"critic": "accept-all", "max_rounds": 1, "docs_per_round": 0}),
        EvalSetting(name="single-round RAG", configurable={"critic": "accept-all", "max_rounds": 1, "docs_per_round": k}),
        EvalSetting(name="fixed 2 rounds", configurable={"critic": "reject-all", "max_rounds": 2, "docs_per_round": k}),
        EvalSetting(name="fixed 3 rounds", configurable={"critic": "reject-all", "max_rounds": 3, "docs_per_round": k}),
        *trained,
        EvalSetting(name="SIM-RAG (LLM judge)", configurable={"critic": "llm-judge", "max_rounds": max_rounds, "docs_per_round": k}),
    ]


def planner_settings(subgoal_critic: str = "cr-subgoal", execution_critic: str = "cr-execution") -> list[EvalSetting]:
    """The CR-Planner comparison: the plain tool-calling agent with a search tool (128 tokens a
    turn: a call or a short answer; unbounded turns let a small model ramble for minutes), and
    the planner with trained critics and with the LLM judge as its critics."""
    return [
        EvalSetting(name="tool-calling agent", graph="rag_agent", configurable={"max_tokens": 128}),
        EvalSetting(name="CR-Planner (trained critics)", graph="cr_planner",
                    configurable={"subgoal_critic": subgoal_critic, "execution_critic": execution_critic}),
        EvalSetting(name="CR-Planner (LLM judge)", graph="cr_planner",
                    configurable={"subgoal_critic": "llm-judge", "execution_critic": "llm-judge"}),
    ]


class QAResult(BaseModel):
    setting: str
    task_id: str
    answer: str
    em: float
    f1: float
    support_recall: float | None
    retrieval_calls: int
    rounds: int
    model_calls: int
    latency_s: float  # wall time of the run (short when model calls came from the cache)
    model_s: float  # compute time of the run's model calls, as recorded when each was computed
    status: str
    run_id: str


class SettingSummary(BaseModel):
    setting: str
    n: int
    failed: int
    em: float
    em_ci: tuple[float, float]
    f1: float
    f1_ci: tuple[float, float]
    support_recall: float | None
    retrieval_calls: float
    rounds: float
    model_calls: float
    latency_s: float
    model_s: float
    em_diff: tuple[float, float, float] | None = None  # mean, CI vs the reference setting
    f1_diff: tuple[float, float, float] | None = None


def passages_in(message: ToolMessage) -> list[dict[str, Any]]:
    """The passages a retrieval tool returned: a JSON list of objects with a ``title`` (what
    agentrt's ``search`` tool returns); empty for any other tool result."""
    try:
        found = json.loads(str(message.content))
    except ValueError:
        return []
    if not isinstance(found, list) or not found or not all(isinstance(p, dict) and "title" in p for p in found):
        return []
    return found


def measure(setting: str, task: QATask, result: Any) -> QAResult:
    """Metrics of one finished run, from its final state: SIM-RAG's rounds, CR-Planner's steps
    (it counts its own model calls: candidates and LLM-judge calls), or a tool agent's calls of a
    retrieval tool (a tool answering with a JSON list of titled passages)."""
    state = result.state or {}
    answer = result.answer or ""
    rounds = state.get("rounds") or []
    steps = state.get("plan_steps") or []
    messages = state.get("messages") or []
    retrieved = [passages_in(m) for m in messages if isinstance(m, ToolMessage)]
    retrieved = [p for p in retrieved if p]
    retrieval_calls = (sum(1 for r in rounds if r.get("doc_ids")) + len(retrieved)
                       + sum(1 for s in steps if s.get("subgoal") == "retrieve"))
    titles = [d.get("title") or d.get("id") for d in state.get("documents") or []]
    titles += [p["title"] for found in retrieved for p in found]
    return QAResult(
        setting=setting, task_id=task.id, answer=answer,
        em=exact_match(answer, task.answers), f1=f1_score(answer, task.answers),
        support_recall=support_recall(titles, task.supporting_titles) if task.supporting_titles else None,
        retrieval_calls=retrieval_calls, rounds=len(rounds) or len(steps) or 1,
        # the SIM-RAG finish node repeats the answer as a message (-1); an LLM judge is a model call too
        model_calls=state["model_calls"] if steps else sum(isinstance(m, AIMessage) for m in messages) - (1 if rounds else 0)
        + sum(1 for r in rounds if str(r.get("critic", "")).startswith("llm-judge")),
        latency_s=result.duration_s, status=result.status, run_id=result.run_id,
        model_s=sum(float(s.get("seconds") or 0) for s in steps) if steps else
        sum(float(m.response_metadata.get("latency_s") or 0) for m in messages if isinstance(m, AIMessage)),
    )


def evaluate(
    tasks: list[QATask],
    settings: list[EvalSetting],
    results_path: Path,
    *,
    load_graph: Callable[[str], Any],
    model: str | None,
    store: TrajectoryStore | None,
    progress: Callable[[str, int], None] | None = None,
) -> list[QAResult]:
    """Run every setting on every task (skipping pairs already in ``results_path``).

    Question by question, every setting on it before the next question: a run stopped early
    (or a time-boxed one) leaves all settings on the same questions, which the paired
    comparison needs."""
    done = {(r.setting, r.task_id) for r in load_results(results_path)}
    results_path.parent.mkdir(parents=True, exist_ok=True)
    graphs = {s.graph: load_graph(s.graph) for s in settings}
    with results_path.open("a", encoding="utf-8") as f:
        for task in tasks:
            for setting in settings:
                if (setting.name, task.id) not in done:
                    config = run_config(model=model, temperature=0.0, **setting.configurable)
                    result = run(graphs[setting.graph], setting.graph, {"messages": [HumanMessage(task.question)]},
                                 config, store)
                    f.write(measure(setting.name, task, result).model_dump_json() + "\n")
                    f.flush()
                if progress:
                    progress(setting.name, 1)
    return load_results(results_path)


def load_results(path: Path) -> list[QAResult]:
    return read_log(path, QAResult)  # a line cut by an interruption: that question runs again


def summarize(results: list[QAResult], order: list[str], reference: str | None = None) -> list[SettingSummary]:
    by_setting: dict[str, dict[str, QAResult]] = {}
    for r in results:
        by_setting.setdefault(r.setting, {})[r.task_id] = r
    present = [by_setting[n] for n in order if by_setting.get(n)]
    shared = set.intersection(*(set(rows) for rows in present)) if present else set()
    # only questions every setting has answered: an evaluation stopped midway compares like with like
    by_setting = {name: {t: r for t, r in rows.items() if t in shared} for name, rows in by_setting.items()}
    ref = by_setting.get(reference or "", {})
    out = []
    for name in order:
        rows = by_setting.get(name)
        if not rows:
            continue
        rs = list(rows.values())
        em, f1 = [r.em for r in rs], [r.f1 for r in rs]
        sr = [r.support_recall for r in rs if r.support_recall is not None]

        def mean(xs: list[float]) -> float:
            return sum(xs) / len(xs) if xs else 0.0

        summary = SettingSummary(
            setting=name, n=len(rs), failed=sum(r.status != "completed" for r in rs),
            em=mean(em), em_ci=bootstrap_ci(em), f1=mean(f1), f1_ci=bootstrap_ci(f1),
            support_recall=mean(sr) if sr else None, retrieval_calls=mean([r.retrieval_calls for r in rs]),
            rounds=mean([r.rounds for r in rs]), model_calls=mean([r.model_calls for r in rs]),
            latency_s=mean([r.latency_s for r in rs]), model_s=mean([r.model_s for r in rs]),
        )
        common = sorted(set(rows) & set(ref)) if ref and name != reference else []
        if common:
            a_em, b_em = [rows[t].em for t in common], [ref[t].em for t in common]
            a_f1, b_f1 = [rows[t].f1 for t in common], [ref[t].f1 for t in common]
            summary.em_diff = (mean(a_em) - mean(b_em), *paired_bootstrap_ci(a_em, b_em))
            summary.f1_diff = (mean(a_f1) - mean(b_f1), *paired_bootstrap_ci(a_f1, b_f1))
        out.append(summary)
    return out


def plot(summaries: list[SettingSummary], path: Path, title: str) -> Path | None:
    """EM and F1 against retrieval calls, one point per setting with its interval."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharex=True)
    for ax, metric, label in ((axes[0], "em", "exact match"), (axes[1], "f1", "F1")):
        for s in summaries:
            value, (low, high) = getattr(s, metric), getattr(s, f"{metric}_ci")
            ax.errorbar(s.retrieval_calls, 100 * value, yerr=[[100 * (value - low)], [100 * (high - value)]],
                        fmt="o", capsize=4, label=s.setting)
        ax.set_xlabel("retrieval calls per question")
        ax.set_ylabel(f"{label}, % (95% bootstrap CI)")
        ax.grid(alpha=0.3)
    # a legend, not labels beside the points: settings of equal cost (fixed 3 rounds and a critic
    # that never accepts) sit on top of each other
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def dump_summary(summaries: list[SettingSummary], path: Path) -> None:
    path.write_text(json.dumps([s.model_dump() for s in summaries], indent=2))
