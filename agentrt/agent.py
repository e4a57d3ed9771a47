"""The tool-calling agent's parts: state, budgets, the model and tool nodes, routing.

Graphs in ``graphs/`` compose these into LangGraph graphs. The loop is the classic one (model,
tools, back to the model until it answers), with budgets that end a run early with the best
partial answer and a stop reason. Nothing here is stored that can be derived: steps and tool
calls of the current run are counted from the messages after the last user message, so a thread
can carry many runs and an interrupted run resumes with its counts intact.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from agentrt.models.base import SamplingParams
from agentrt.models.registry import DEFAULT_MODEL, load_model
from agentrt.tool import openai_schemas
from agentrt.tool_runner import run_tool_calls, tools_by_name


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    started_at: float  # wall clock at the run's first model call
    stop_reason: str | None  # set only when a budget ended the run
    answer: str | None


class Budget(BaseModel):
    """Limits of one run. Any of them can be overridden per run in ``configurable``."""

    max_steps: int = Field(8, ge=1, description="model calls")
    max_tool_calls: int = Field(16, ge=0)
    max_seconds: float = Field(300.0, gt=0)

    @classmethod
    def from_config(cls, default: Budget, config: RunnableConfig | None) -> Budget:
        conf = (config or {}).get("configurable", {})
        update = {k: conf[k] for k in cls.model_fields if conf.get(k) is not None}
        return default.model_copy(update=update) if update else default


def current_run(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The messages of the run in progress: everything after the last user message."""
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return list(messages[i + 1 :])
    return list(messages)


def exhausted(state: AgentState, budget: Budget) -> str | None:
    """Which budget the run has used up, if any."""
    run = current_run(state.get("messages", []))
    if sum(isinstance(m, AIMessage) for m in run) >= budget.max_steps:
        return "max_steps"
    if sum(isinstance(m, ToolMessage) for m in run) >= budget.max_tool_calls:
        return "max_tool_calls"
    if time.time() - state.get("started_at", time.time()) >= budget.max_seconds:
        return "max_seconds"
    return None


def model_from_config(config: RunnableConfig | None, default: str = DEFAULT_MODEL) -> Any:
    """The run's model: ``configurable.model`` (a spec) with sampling overrides, loaded once."""
    conf = (config or {}).get("configurable", {})
    params = {k: conf[k] for k in SamplingParams.model_fields if conf.get(k) is not None}
    return load_model(conf.get("model") or default, **params)


def make_model_node(
    tools: Sequence[BaseTool], system_prompt: str | None = None, default_model: str = DEFAULT_MODEL
) -> Callable[[AgentState, RunnableConfig], dict[str, Any]]:
    schemas = openai_schemas(tools)
    system = [SystemMessage(system_prompt)] if system_prompt else []

    def call_model(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        messages = state["messages"]
        update: dict[str, Any] = {}
        if not any(isinstance(m, AIMessage) for m in current_run(messages)):
            update = {"started_at": time.time(), "stop_reason": None, "answer": None}  # a new run
        model = model_from_config(config, default_model)
        reply = model.invoke(system + list(messages), config, tools=schemas) if schemas else model.invoke(
            system + list(messages), config
        )
        return {**update, "messages": [reply]}

    return call_model


def make_tool_node(tools: Sequence[BaseTool]) -> Callable[[AgentState], dict[str, Any]]:
    by_name = tools_by_name(tools)

    def call_tools(state: AgentState) -> dict[str, Any]:
        last = state["messages"][-1]
        assert isinstance(last, AIMessage), "the tool node follows a model turn"
        return {"messages": run_tool_calls(last, by_name)}

    return call_tools


def best_partial_answer(messages: Sequence[BaseMessage]) -> str:
    """What to say when a budget stops the run: the last thing the model said, else the last
    tool result, else an honest nothing."""
    run = current_run(messages)
    for m in reversed(run):
        if isinstance(m, AIMessage) and str(m.content).strip():
            return str(m.content).strip()
    for m in reversed(run):
        if isinstance(m, ToolMessage) and m.status != "error":
            return f"(no final answer; last tool result: {str(m.content)[:500]})"
    return "(no answer within the budget)"


def make_stop_node(budget: Budget) -> Callable[[AgentState, RunnableConfig], dict[str, Any]]:
    def stop(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        reason = exhausted(state, Budget.from_config(budget, config)) or "budget"
        return {"stop_reason": reason, "answer": best_partial_answer(state["messages"])}

    return stop


def make_router(budget: Budget, after: Literal["model", "tools"]) -> Callable[[AgentState, RunnableConfig], str]:
    """After the model: tools if it called any, else the end. After tools: back to the model.
    Either way, a spent budget goes to ``stop`` instead."""

    def route(state: AgentState, config: RunnableConfig) -> str:
        if after == "model":
            last = state["messages"][-1]
            if not (isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls)):
                return END
        if exhausted(state, Budget.from_config(budget, config)):
            return "stop"
        return "tools" if after == "model" else "model"

    return route


def build_tool_agent(
    tools: Sequence[BaseTool],
    *,
    system_prompt: str | None = None,
    default_model: str = DEFAULT_MODEL,
    budget: Budget | None = None,
) -> StateGraph:
    """The tool-calling agent as an uncompiled LangGraph ``StateGraph``.

    Compile it yourself (``.compile(checkpointer=..., interrupt_before=["tools"])``), or add
    nodes and edges first to make a variant.
    """
    budget = budget or Budget()
    builder = StateGraph(AgentState)
    builder.add_node("model", make_model_node(tools, system_prompt, default_model))
    builder.add_node("tools", make_tool_node(tools))
    builder.add_node("stop", make_stop_node(budget))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", make_router(budget, "model"), ["tools", "stop", END])
    builder.add_conditional_edges("tools", make_router(budget, "tools"), ["model", "stop"])
    builder.add_edge("stop", END)
    return builder


def final_answer(state: dict[str, Any]) -> str | None:
    """A finished run's answer: the budget node's ``answer`` if set, else the last model text."""
    if state.get("answer"):
        return state["answer"]
    for m in reversed(state.get("messages", [])):
        if isinstance(m, AIMessage):
            return str(m.content).strip() or None
    return None


def user_input(question: str) -> dict[str, list[HumanMessage]]:
    return {"messages": [HumanMessage(question)]}
