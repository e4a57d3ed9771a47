"""The tool-calling agent graph with a scripted model: tool errors, budgets, checkpoints, records."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.sqlite import SqliteSaver

from agentrt.agent import Budget, build_tool_agent, final_answer, user_input
from agentrt.checkpoints import sqlite_checkpointer
from agentrt.models.scripted import call
from agentrt.runner import run, run_config
from agentrt.tool import tool


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: first
        b: second
    """
    return a + b


@tool
def explode(reason: str) -> str:
    """Always fails.

    Args:
        reason: why
    """
    raise RuntimeError(f"boom: {reason}")


@tool(timeout=0.3)
def slow(seconds: float) -> str:
    """Sleeps.

    Args:
        seconds: how long
    """
    time.sleep(seconds)
    return "done"


@tool
async def async_echo(text: str) -> str:
    """Echo asynchronously.

    Args:
        text: what to echo
    """
    await asyncio.sleep(0)
    return text.upper()


TOOLS = [add, explode, slow, async_echo]


def agent(**kwargs):
    return build_tool_agent(TOOLS, **kwargs).compile()


def invoke(graph, spec, question="q", **configurable):
    return graph.invoke(user_input(question), run_config(model=spec, **configurable))


def tool_messages(state):
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


def test_tool_call_then_answer(scripted):
    spec = scripted([call("add", a=17, b=23), "It is 40."])
    state = invoke(agent(), spec)
    (result,) = tool_messages(state)
    assert result.content == "40" and result.status == "success"
    assert result.response_metadata["latency_s"] >= 0
    assert final_answer(state) == "It is 40."
    assert state.get("stop_reason") is None


def test_tool_exception_goes_back_to_model(scripted):
    seen = []

    def script(messages):
        seen.append(messages[-1])
        return call("explode", reason="x") if len(seen) == 1 else "sorry, it failed"

    state = invoke(agent(), scripted(script))
    (result,) = tool_messages(state)
    assert result.status == "error"
    assert "explode failed: RuntimeError: boom: x" in result.content
    assert isinstance(seen[-1], ToolMessage)  # the model saw the error
    assert final_answer(state) == "sorry, it failed"


def test_tool_timeout_is_reported_not_fatal(scripted):
    spec = scripted([call("slow", seconds=5), "gave up"])
    started = time.perf_counter()
    state = invoke(agent(), spec)
    assert time.perf_counter() - started < 3
    (result,) = tool_messages(state)
    assert result.status == "error" and "did not finish within 0.3 s" in result.content
    assert result.response_metadata["error"] == "timeout"


def test_an_async_tool_past_its_timeout_is_cancelled_and_frees_its_thread(scripted):
    finished = []

    @tool(timeout=0.3)
    async def stuck(seconds: float) -> str:
        """Wait.

        Args:
            seconds: how long
        """
        try:
            await asyncio.sleep(seconds)
        finally:
            finished.append(time.perf_counter())
        return "done"

    spec = scripted([call("stuck", seconds=30), "gave up"])
    started = time.perf_counter()
    state = invoke(build_tool_agent([stuck]).compile(), spec)
    (result,) = tool_messages(state)
    assert result.response_metadata["error"] == "timeout"
    deadline = time.perf_counter() + 2
    while not finished and time.perf_counter() < deadline:
        time.sleep(0.02)
    assert finished and finished[0] - started < 2  # cancelled at its timeout, not after 30 s


def test_wrong_argument_type_names_the_field(scripted):
    spec = scripted([call("add", a="seventeen", b=2), "ok"])
    (result,) = tool_messages(invoke(agent(), spec))
    assert result.status == "error"
    assert "invalid arguments for add" in result.content and "a:" in result.content
    assert "a (integer), b (integer)" in result.content


def test_malformed_tool_call_gets_readable_error(scripted):
    broken = AIMessage(
        content="",
        invalid_tool_calls=[{"name": "add", "args": '{"a": 1,', "id": "c1", "error": "Could not parse your tool call", "type": "invalid_tool_call"}],
    )
    spec = scripted([broken, "fine"])
    state = invoke(agent(), spec)
    (result,) = tool_messages(state)
    assert result.status == "error" and "Could not parse your tool call" in result.content
    assert final_answer(state) == "fine"


def test_unknown_tool_lists_available_ones(scripted):
    spec = scripted([call("multiply", a=1, b=2), "ok"])
    (result,) = tool_messages(invoke(agent(), spec))
    assert "no tool named 'multiply'" in result.content and "add" in result.content


def test_parallel_calls_run_concurrently(scripted):
    both = AIMessage(content="", tool_calls=[call("slow", seconds=0.25).tool_calls[0], call("slow", seconds=0.25).tool_calls[0]])
    spec = scripted([both, "ok"])
    started = time.perf_counter()
    state = invoke(agent(), spec)
    assert time.perf_counter() - started < 0.45
    assert [m.content for m in tool_messages(state)] == ["done", "done"]


def test_async_tool(scripted):
    spec = scripted([call("async_echo", text="hi"), "ok"])
    (result,) = tool_messages(invoke(agent(), spec))
    assert result.content == "HI"


def test_max_steps_budget_stops_with_partial_answer(scripted):
    looping = AIMessage(content="still thinking", tool_calls=call("add", a=1, b=1).tool_calls)
    spec = scripted([looping], cycle=True)
    state = invoke(agent(), spec, max_steps=3)
    assert state["stop_reason"] == "max_steps"
    assert state["answer"] == "still thinking"
    assert sum(isinstance(m, AIMessage) for m in state["messages"]) == 3


def test_max_tool_calls_and_wall_time(scripted):
    spec = scripted([call("add", a=1, b=1)], cycle=True)
    state = invoke(agent(), spec, max_tool_calls=2)
    assert state["stop_reason"] == "max_tool_calls"
    assert state["answer"].startswith("(no final answer; last tool result: 2")
    spec = scripted([call("slow", seconds=0.2)], cycle=True)
    state = invoke(agent(budget=Budget(max_seconds=0.5)), spec)
    assert state["stop_reason"] == "max_seconds"


def test_budgets_are_per_run_on_a_thread(scripted, tmp_path):
    spec = scripted([call("add", a=1, b=1), "two"], cycle=True)
    graph = build_tool_agent(TOOLS).compile(checkpointer=sqlite_checkpointer(tmp_path / "cp.sqlite"))
    for _ in range(3):  # 3 runs x 2 steps > max_steps=3, but each run has its own budget
        state = invoke(graph, spec, thread_id="t1", max_steps=3)
        assert final_answer(state) == "two" and state["stop_reason"] is None
    assert sum(isinstance(m, HumanMessage) for m in state["messages"]) == 3


def test_interrupted_run_resumes_from_checkpoint_in_a_new_process_state(scripted, tmp_path):
    spec = scripted([call("add", a=2, b=3), "five"])
    path = tmp_path / "cp.sqlite"
    first = build_tool_agent(TOOLS).compile(checkpointer=sqlite_checkpointer(path), interrupt_before=["tools"])
    config = run_config(model=spec, thread_id="t-resume")
    first.invoke(user_input("2+3?"), config)
    assert first.get_state(config).next == ("tools",)
    # a fresh connection, as after a restart: the checkpoint is on disk
    second = build_tool_agent(TOOLS).compile(checkpointer=SqliteSaver(sqlite3.connect(str(path), check_same_thread=False)))
    state = second.invoke(None, config)
    assert final_answer(state) == "five"
    assert [m.content for m in tool_messages(state)] == ["5"]


def test_runner_records_the_whole_trajectory(scripted, store):
    spec = scripted([call("add", a=17, b=23), call("explode", reason="y"), "40"])
    result = run(agent(), "test-agent", user_input("17+23?"), run_config(model=spec, thread_id="th"), store)
    assert result.status == "completed" and result.answer == "40" and result.stop_reason == "answered"
    t = store.get(result.run_id)
    assert t.graph == "test-agent" and t.model == spec and t.thread_id == "th" and t.input == "17+23?"
    assert [m["role"] for m in t.messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    ok, failed = t.tool_calls
    assert (ok.name, ok.arguments, ok.result, ok.error) == ("add", {"a": 17, "b": 23}, "40", None)
    assert failed.error == "RuntimeError" and "boom" in failed.result
    assert [e.node for e in t.events] == ["model", "tools", "model", "tools", "model"]
    assert t.final_answer == "40" and t.usage.total_tokens > 0
    assert t.critic_scores == [] and t.reward is None


def test_failed_run_keeps_its_trajectory(scripted, store):
    spec = scripted([call("add", a=1, b=2)])  # runs out after the first turn: the model raises
    result = run(agent(), "test-agent", user_input("q"), run_config(model=spec), store)
    assert result.status == "failed" and "ran out of responses" in result.error
    t = store.get(result.run_id)
    assert t.status == "failed" and "ran out" in t.error
    assert [m["role"] for m in t.messages] == ["user", "assistant", "tool"]


def test_unknown_model_spec_fails_clearly(store):
    result = run(agent(), "test-agent", user_input("q"), run_config(model="nonsense:spec"), store)
    assert result.status == "failed"
    assert "unknown model spec 'nonsense:spec'" in result.error and "agentrt models" in result.error
    assert store.get(result.run_id).status == "failed"


def test_malformed_tool_call_survives_token_streaming(scripted):
    """With stream_mode messages the model streams, and LangChain merges the chunks: the invalid
    call must stay invalid, with its error text, not turn into a call with empty arguments."""
    broken = AIMessage(
        content="",
        invalid_tool_calls=[{"name": "add", "args": '{"a": 1,', "id": "c9", "error": "Could not parse your tool call", "type": "invalid_tool_call"}],
    )
    spec = scripted([broken, "fine"])
    updates = [u for mode, u in agent().stream(user_input("q"), run_config(model=spec), stream_mode=["updates", "messages"]) if mode == "updates"]
    (model_turn,) = updates[0]["model"]["messages"]
    assert model_turn.tool_calls == [] and model_turn.invalid_tool_calls[0]["error"] == "Could not parse your tool call"
    (reply,) = updates[1]["tools"]["messages"]
    assert reply.status == "error" and "Could not parse your tool call" in reply.content
