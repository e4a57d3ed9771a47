"""CR-Planner as a LangGraph graph: ``choose`` (the sub-goal critic ranks the allowed next
sub-goals and the best is taken) and ``execute`` (candidates for it are sampled, the execution
critic ranks them, the best are applied) alternate until the plan answers.

Budgets: ``max_steps`` sub-goals per run (the last one is always ``answer``, so a run stopped by
its budget still ends with the best answer it can give, and says ``step_budget``), ``samples``
candidates per model-written sub-goal, ``retrieve_k`` passages per retrieval. Every decision,
with all candidates and their scores, goes into ``plan_steps`` and so into the trajectory.
"""

from __future__ import annotations

import operator
import time
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from pydantic import BaseModel
from typing_extensions import TypedDict

from agentrt.agent import model_from_config, question_of
from agentrt.cr_planner.critics import PlanCritic, plan_critic
from agentrt.cr_planner.plan import (
    Plan,
    PlanSettings,
    Subgoal,
    action_text,
    allowed_subgoals,
    apply,
    partial_answer,
    propose,
    state_text,
)
from agentrt.models.registry import DEFAULT_MODEL
from agentrt.retrieval.shared import retriever_for


class StepRecord(BaseModel):
    """One executed sub-goal, as the trajectory keeps it."""

    step: int
    subgoal: Subgoal
    subgoal_scores: dict[str, float]  # every allowed sub-goal and its score
    subgoal_critic: str  # which critic chose ("forced" when only one sub-goal was allowed)
    candidates: list[str]
    candidate_scores: list[float]
    chosen: list[int]  # indices of the kept candidates
    execution_critic: str
    model_calls: int  # of this step: candidates, and LLM-judge calls of both critics
    seconds: float  # wall time of this step's critic and model calls


class PlannerState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    question: str
    plan: dict[str, Any]  # a Plan
    subgoal: Subgoal | None  # chosen, not yet executed
    subgoal_scores: dict[str, float]
    subgoal_critic: str
    subgoal_seconds: float
    plan_steps: Annotated[list[dict[str, Any]], operator.add]  # StepRecords
    documents: list[dict[str, Any]]  # the kept evidence (for clients and evaluation)
    answer: str | None
    stop_reason: str | None  # answered | step_budget | no_answer
    model_calls: int
    critics: dict[str, str]  # which critics the run used


class PlannerConfig(PlanSettings):
    """Per-run settings (``configurable``): the plan's budgets plus the two critics (auto |
    llm-judge | a ranking critic's name or path)."""

    subgoal_critic: str = "auto"
    execution_critic: str = "auto"
    seed: int = 0

    @classmethod
    def from_config(cls, config: RunnableConfig | None) -> PlannerConfig:
        conf = (config or {}).get("configurable", {})
        return cls(**{k: conf[k] for k in cls.model_fields if conf.get(k) is not None})


def _critics(cfg: PlannerConfig, config: RunnableConfig) -> tuple[PlanCritic, PlanCritic]:
    model = model_from_config(config)
    spec = (config.get("configurable") or {}).get("model") or DEFAULT_MODEL
    return (plan_critic(cfg.subgoal_critic, "subgoal", model=model, spec=spec),
            plan_critic(cfg.execution_critic, "execution", model=model, spec=spec))


def start(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    cfg = PlannerConfig.from_config(config)
    plan = Plan.start(question_of(state, "CR-Planner"))
    subgoal_critic, execution_critic = _critics(cfg, config)
    return {"question": plan.question, "plan": plan.model_dump(), "answer": None, "stop_reason": None,
            "model_calls": 0, "documents": [], "subgoal": None,
            "critics": {"subgoal": subgoal_critic.name, "execution": execution_critic.name}}


def choose(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    cfg = PlannerConfig.from_config(config)
    plan = Plan.model_validate(state["plan"])
    allowed = allowed_subgoals(plan, cfg)
    if len(allowed) == 1:
        return {"subgoal": allowed[0], "subgoal_scores": {allowed[0]: 1.0}, "subgoal_critic": "forced",
                "subgoal_seconds": 0.0}
    critic, _ = _critics(cfg, config)
    started = time.perf_counter()
    scores = critic.rank(plan.question, state_text(plan, cfg), [action_text(s) for s in allowed])
    best = max(range(len(allowed)), key=lambda i: (scores[i], -i))  # ties: the default order
    return {"subgoal": allowed[best], "subgoal_scores": dict(zip(allowed, scores)), "subgoal_critic": critic.name,
            "subgoal_seconds": time.perf_counter() - started}


def _keep(subgoal: Subgoal, scores: list[float], keep_docs: int) -> list[int]:
    ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return sorted(ranked[:keep_docs]) if subgoal == "retrieve" else ranked[:1]


def execute(state: PlannerState, config: RunnableConfig) -> dict[str, Any]:
    cfg = PlannerConfig.from_config(config)
    plan = Plan.model_validate(state["plan"])
    subgoal = state["subgoal"]
    assert subgoal is not None, "execute runs after choose"
    model = model_from_config(config)
    started = time.perf_counter()
    calls = 1 if str(state.get("subgoal_critic")).startswith("llm-judge") else 0
    candidates, made = propose(plan, subgoal, cfg, model=model, retriever=retriever_for(cfg.index),
                                seed=cfg.seed * 1000 + plan.steps)
    calls += made
    _, critic = _critics(cfg, config)
    if len(candidates) > 1:
        scores = critic.rank(plan.question, state_text(plan, cfg), [action_text(subgoal, c) for c in candidates])
        critic_name = critic.name
        calls += 1 if critic_name.startswith("llm-judge") else 0
    else:
        scores, critic_name = [1.0] * len(candidates), "single candidate"
    chosen = _keep(subgoal, scores, cfg.keep_docs)
    after = apply(plan, subgoal, [candidates[i] for i in chosen])
    record = StepRecord(
        step=after.steps, subgoal=subgoal, subgoal_scores=state.get("subgoal_scores") or {},
        subgoal_critic=state.get("subgoal_critic") or "", candidates=[c.text for c in candidates],
        candidate_scores=scores, chosen=chosen, execution_critic=critic_name, model_calls=calls,
        seconds=round(time.perf_counter() - started + (state.get("subgoal_seconds") or 0.0), 4),
    )
    update: dict[str, Any] = {"plan": after.model_dump(), "subgoal": None, "plan_steps": [record.model_dump()],
                              "documents": after.documents, "model_calls": state.get("model_calls", 0) + calls}
    if after.done:
        if after.answer:
            reason = "step_budget" if state.get("subgoal_critic") == "forced" else "answered"
            answer = after.answer
        else:  # no usable answer came out: the best partial one
            reason, answer = "no_answer", partial_answer(plan)
        update.update(answer=answer, stop_reason=reason, messages=[AIMessage(answer)])
    return update


def build_cr_planner() -> StateGraph:
    builder = StateGraph(PlannerState)
    builder.add_node("start", start)
    builder.add_node("choose", choose)
    builder.add_node("execute", execute)
    builder.add_edge(START, "start")
    builder.add_edge("start", "choose")
    builder.add_edge("choose", "execute")
    builder.add_conditional_edges("execute", lambda s: END if s.get("stop_reason") else "choose", ["choose", END])
    return builder


def steps_of(state: PlannerState) -> list[StepRecord]:
    return [StepRecord(**s) for s in state.get("plan_steps", [])]

