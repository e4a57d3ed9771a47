"""The tool-calling agent's parts: state, budgets, the model and tool nodes, routing.

Graphs in ``graphs/`` compose these into LangGraph graphs. The loop is the classic one (model,
tools, back to the model until it answers), with budgets that end a run early with the best
partial answer and a stop reason. Nothing here is stored that can be derived: steps and tool
calls of the current run are counted from the messages after the last user message, so a thread
can carry many runs and an interrupted run resumes with its counts intact.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt
from pydantic import BaseModel, Field, ValidationError
from typing_extensions import TypedDict

from agentrt.models.base import SamplingParams
from agentrt.models.registry import DEFAULT_MODEL, load_model
from agentrt.tool import openai_schemas
from agentrt.tool_runner import run_tool_calls, tools_by_name
from agentrt.trajectory import TOOL_REJECTED


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    started_at: float  # wall clock at the run's first model call
    stop_reason: str | None  # set only when a budget ended the run
    answer: str | None
    approve_tools: Any  # the run's ``configurable.approve_tools``, kept so a resumed run still knows


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
        if not any(isinstance(m, AIMessage) for m in current_run(messages)):  # a new run
            approve = (config or {}).get("configurable", {}).get("approve_tools")
            update = {"started_at": time.time(), "stop_reason": None, "answer": None, "approve_tools": approve}
        model = model_from_config(config, default_model)
        reply = model.invoke(system + list(messages), config, tools=schemas) if schemas else model.invoke(
            system + list(messages), config
        )
        return {**update, "messages": [reply]}

    return call_model


class ToolReview(BaseModel):
    """A reviewer's answer to an approval interrupt: run the calls as they are, run them with
    edited arguments, or refuse them (the model then sees the refusal and its reason)."""

    action: Literal["approve", "edit", "reject"]
    args: dict[str, Any] | None = Field(None, description="edit: new arguments of the only call")
    tool_calls: list[dict[str, Any]] | None = Field(
        None, description="edit: new arguments per call, as [{'id': ..., 'args': {...}}]"
    )
    reason: str | None = Field(None, description="reject: why, shown to the model")


def needs_review(calls: Sequence[dict[str, Any]], approve_tools: Any) -> bool:
    """``approve_tools`` (set per run in ``configurable``, kept in the state for the run): true
    for every tool, or a list of tool names that need a reviewer's approval before they run."""
    if not approve_tools or not calls:
        return False
    if approve_tools is True:
        return True
    names = {approve_tools} if isinstance(approve_tools, str) else set(approve_tools)
    return any(c["name"] in names for c in calls)


def review_tool_calls(last: AIMessage) -> tuple[AIMessage, list[ToolMessage]]:
    """Pause the run (a LangGraph interrupt, so the thread's checkpoint holds it) until a
    reviewer resumes it with a :class:`ToolReview`; returns the turn to run (edited or not) and
    the refusals to send back instead of running it.

    A resume value that is not a valid review pauses again, with the reason in the request:
    the thread stays waiting for a reviewer instead of failing."""
    request: dict[str, Any] = {
        "type": "tool_approval",
        "tool_calls": [{"id": c["id"], "name": c["name"], "args": c["args"]} for c in last.tool_calls],
        "actions": ["approve", "edit", "reject"],
    }
    while True:
        raw = interrupt(request)
        try:
            return _apply_review(last, raw)
        except (ValidationError, ValueError) as exc:
            request = {**request, "error": f"the resume value {raw!r} is not a review: {exc}. Resume with "
                                          "{'action': 'approve'|'edit'|'reject', 'args'|'tool_calls'|'reason': ...}"}


def _apply_review(last: AIMessage, raw: Any) -> tuple[AIMessage, list[ToolMessage]]:
    review = ToolReview.model_validate(raw if isinstance(raw, dict) else {"action": raw})
    if review.action == "reject":
        reason = review.reason or "no reason given"
        refusals = [
            ToolMessage(f"The reviewer rejected this call ({reason}). Do not retry it; answer without it.",
                        tool_call_id=c["id"], name=c["name"], status="error",
                        response_metadata={"error": TOOL_REJECTED, "review": {"action": "reject", "reason": reason}})
            for c in last.tool_calls
        ]
        return last, refusals
    if review.action == "edit":
        edits = {e.get("id"): e.get("args", {}) for e in review.tool_calls or []}
        if review.args is not None:
            if len(last.tool_calls) != 1:
                raise ValueError("'args' edits a turn with exactly one call; use 'tool_calls' with ids")
            edits = {last.tool_calls[0]["id"]: review.args}
        calls = [{**c, "args": edits.get(c["id"], c["args"])} for c in last.tool_calls]
        # The turn runs as edited; the record keeps that a person changed it, and what the model wrote.
        written = [{"id": c["id"], "name": c["name"], "args": c["args"]} for c in last.tool_calls]
        meta = {**last.response_metadata, "review": {"action": "edit", "edited": sorted(edits)},
                "model_tool_calls": written}
        last = AIMessage(content=last.content, tool_calls=calls, id=last.id, response_metadata=meta,
                         usage_metadata=last.usage_metadata)
    return last, []


def make_tool_node(tools: Sequence[BaseTool]) -> Callable[[AgentState], dict[str, Any]]:
    by_name = tools_by_name(tools)

    def call_tools(state: AgentState) -> dict[str, Any]:
        last = state["messages"][-1]
        assert isinstance(last, AIMessage), "the tool node follows a model turn"
        original = last
        if needs_review(last.tool_calls, state.get("approve_tools")):
            last, refusals = review_tool_calls(last)
            if refusals:
                return {"messages": refusals}
        edited = [last] if last is not original else []  # same id: add_messages replaces the turn
        return {"messages": edited + run_tool_calls(last, by_name)}

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


def question_of(state: Mapping[str, Any], graph: str) -> str:
    """The question a QA graph answers: ``state["question"]``, else the latest user message, so
    the graph can be called like a chat agent (the server, the OpenAI face) or with the field."""
    if state.get("question"):
        return str(state["question"])
    for m in reversed(state.get("messages", [])):
        if isinstance(m, HumanMessage):
            return str(m.content)
    raise ValueError(f"{graph} needs a question: pass {{'question': ...}} or a user message")

