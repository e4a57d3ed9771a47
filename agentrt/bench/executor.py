"""Per-step overhead of agentrt's tool agent versus the same loop written directly on LangGraph.

Both sides run the same task with the same zero-latency scripted model and the same trivial
``add`` tool: the model calls the tool, the tool answers, the model answers (three node
executions: model, tools, model). Only the graph machinery differs:

- ``langgraph``: what a user writes without agentrt: ``StateGraph(MessagesState)``, a model node
  calling ``model.bind_tools([add]).invoke(messages)``, LangGraph's prebuilt ``ToolNode`` and
  ``tools_condition``;
- ``agentrt``: ``build_tool_agent([add]).compile()``, the model named by a spec in
  ``configurable`` (budgets checked after every step, per-tool timeouts);
- ``agentrt+trajectory``: the same graph through :func:`agentrt.runner.run`, which streams it and
  writes every step to a :class:`~agentrt.trajectory_store.TrajectoryStore` (SQLite);
- ``*+memory``: either graph with LangGraph's in-memory checkpointer, a new thread per run.

Method: every variant is checked and warmed up, then the variants take turns in rounds (the
order rotates each round) so that drift (CPU frequency, other processes, a growing heap) falls on
all of them alike. Reported: the median wall time of one run and of one step (run / 3), and each
agentrt row's ratio to its LangGraph counterpart.

    python -m agentrt.bench.executor --runs 2000 --rounds 5
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from pydantic import BaseModel

from agentrt.tool import tool

STEPS_PER_RUN = 3  # model -> tools -> model
TARGET_OVERHEAD = 0.10  # the target: agentrt at most 10% slower than the direct loop
SPEC = "scripted:bench-executor"
QUESTION = "What is 2 + 3?"
EXPECTED = "The sum is 5."


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first number
        b: the second number
    """
    return a + b


def _script(messages: list[BaseMessage]) -> AIMessage | str:
    """Call ``add`` first; answer with its result once it is back."""
    from agentrt.models.scripted import call

    last = messages[-1]
    if isinstance(last, ToolMessage):
        return f"The sum is {last.content}."
    return call("add", a=2, b=3)


class ExecutorRow(BaseModel):
    """One variant's figures."""

    variant: str
    description: str
    runs: int
    run_us: float  # median wall time of one run, microseconds
    step_us: float  # run_us / STEPS_PER_RUN
    run_us_p90: float
    cpu_us: float  # median CPU time of one run (all threads of the process): robust to a busy machine
    round_spread: float  # (max - min) / median of the per-round medians: how steady the figure was
    baseline: str | None = None  # the row this one is compared with
    ratio: float | None = None  # run_us / baseline's run_us
    overhead_step_us: float | None = None  # step_us - baseline's step_us
    cpu_ratio: float | None = None  # cpu_us / baseline's cpu_us
    ratios: dict[str, float] = {}  # run_us / run_us of every reference row of the same kind (no baseline)

    @property
    def overhead_pct(self) -> float | None:
        return None if self.ratio is None else (self.ratio - 1.0) * 100.0

    def ratio_text(self) -> str:
        if self.ratio is None:
            return "-"
        return f"{self.ratio:.2f}x, {self.overhead_pct:+.0f}%"


class Variant(BaseModel):
    """A way to run the task once; ``run`` returns the final answer."""

    model_config = {"arbitrary_types_allowed": True}

    name: str
    description: str
    run: Callable[[], str | None]
    baseline: str | None = None
    close: Callable[[], None] | None = None  # releases what the variant holds open (a database)


@contextmanager
def scripted_model() -> Iterator[Any]:
    """The zero-latency scripted model, registered under :data:`SPEC` for agentrt's config."""
    from agentrt.models import registry
    from agentrt.models.scripted import ScriptedChatModel

    model = ScriptedChatModel(spec=SPEC, script=_script)
    previous = registry.unregister(SPEC)
    registry.register(SPEC, model)
    try:
        yield model
    finally:
        registry.unregister(SPEC)
        if previous is not None:
            registry.register(SPEC, previous)


def langgraph_graph(model: Any, checkpointer: Any = None) -> Any:
    """The loop as a LangGraph user writes it without agentrt."""
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    bound = model.bind_tools([add])

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    builder.add_node("tools", ToolNode([add]))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition)
    builder.add_edge("tools", "model")
    return builder.compile(checkpointer=checkpointer)


def langgraph_inline_graph(model: Any) -> Any:
    """The leanest hand-written loop: tools invoked inline in the node (no thread, no timeout, no
    error handling), for a lower bound of what LangGraph itself costs."""
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import tools_condition

    bound = model.bind_tools([add])
    by_name = {add.name: add}

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    def call_tools(state: MessagesState) -> dict[str, Any]:
        return {"messages": [by_name[c["name"]].invoke(c) for c in state["messages"][-1].tool_calls]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    builder.add_node("tools", call_tools)
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition)
    builder.add_edge("tools", "model")
    return builder.compile()


def agentrt_graph(checkpointer: Any = None) -> Any:
    from agentrt.agent import build_tool_agent

    return build_tool_agent([add]).compile(checkpointer=checkpointer)


def _last_text(state: dict[str, Any]) -> str | None:
    return str(state["messages"][-1].content)


def variants(
    model: Any, store_dir: Path, *, memory: bool = True, trajectory: bool = True, inline: bool = True
) -> list[Variant]:
    """The variants to compare, each a closure running the task once."""
    from langgraph.checkpoint.memory import InMemorySaver

    from agentrt.agent import final_answer, user_input

    def question() -> dict[str, list[HumanMessage]]:
        return {"messages": [HumanMessage(QUESTION)]}

    lg = langgraph_graph(model)
    ag = agentrt_graph()

    def run_langgraph() -> str | None:
        return _last_text(lg.invoke(question()))

    def run_agentrt() -> str | None:
        return final_answer(ag.invoke(user_input(QUESTION), {"configurable": {"model": SPEC}}))

    out = [
        Variant(name="langgraph", description="StateGraph(MessagesState) + ToolNode + tools_condition",
                run=run_langgraph),
        Variant(name="agentrt", description="build_tool_agent([add]).compile()", run=run_agentrt,
                baseline="langgraph"),
    ]
    if inline:
        lean = langgraph_inline_graph(model)

        def run_inline() -> str | None:
            return _last_text(lean.invoke(question()))

        out.insert(1, Variant(name="langgraph-inline",
                              description="langgraph with a hand-written tool node calling tools inline "
                                          "(no thread, no timeout, no error handling): a lower bound",
                              run=run_inline))
    if trajectory:
        from agentrt.runner import run as runner_run
        from agentrt.trajectory_store import TrajectoryStore

        store = TrajectoryStore(store_dir / "bench-trajectories.sqlite")

        def run_recorded() -> str | None:
            result = runner_run(ag, "bench", user_input(QUESTION), {"configurable": {"model": SPEC}}, store)
            if result.status != "completed":
                raise RuntimeError(f"recorded run {result.status}: {result.error}")
            return result.answer

        out.append(Variant(name="agentrt+trajectory", description="agentrt.runner.run(...) into a TrajectoryStore",
                           run=run_recorded, baseline="langgraph", close=store.close))
    if memory:
        lg_mem = langgraph_graph(model, InMemorySaver())
        ag_mem = agentrt_graph(InMemorySaver())

        def run_langgraph_mem() -> str | None:
            return _last_text(lg_mem.invoke(question(), {"configurable": {"thread_id": uuid.uuid4().hex}}))

        def run_agentrt_mem() -> str | None:
            config = {"configurable": {"model": SPEC, "thread_id": uuid.uuid4().hex}}
            return final_answer(ag_mem.invoke(user_input(QUESTION), config))

        out += [
            Variant(name="langgraph+memory", description="langgraph with InMemorySaver, a thread per run",
                    run=run_langgraph_mem),
            Variant(name="agentrt+memory", description="agentrt with InMemorySaver, a thread per run",
                    run=run_agentrt_mem, baseline="langgraph+memory"),
        ]
    return out


@contextmanager
def open_variants(**which: bool) -> Iterator[list[Variant]]:
    """The variants (``memory=``, ``trajectory=``, ``inline=`` choose), with the scripted model
    registered and a temporary folder for the trajectory store; all released afterwards."""
    with scripted_model() as model, tempfile.TemporaryDirectory(prefix="agentrt-bench-") as tmp:
        chosen = variants(model, Path(tmp), **which)
        try:
            yield chosen
        finally:
            for v in chosen:
                if v.close:
                    v.close()


def measure(
    runs: int = 2000,
    rounds: int = 5,
    warmup: int = 50,
    *,
    memory: bool = True,
    trajectory: bool = True,
    inline: bool = True,
) -> list[ExecutorRow]:
    """Run every variant ``runs`` times (split over ``rounds`` interleaved rounds); one row each."""
    if runs < 1 or rounds < 1:
        raise ValueError("runs and rounds must be at least 1")
    rounds = min(rounds, runs)
    per_round = [runs // rounds + (1 if i < runs % rounds else 0) for i in range(rounds)]
    with open_variants(memory=memory, trajectory=trajectory, inline=inline) as chosen:
        for v in chosen:  # check each does the task, then warm it up
            answer = v.run()
            if answer != EXPECTED:
                raise RuntimeError(f"variant {v.name} answered {answer!r}, expected {EXPECTED!r}")
            for _ in range(warmup):
                v.run()
        times: dict[str, list[int]] = {v.name: [] for v in chosen}
        cpu: dict[str, list[int]] = {v.name: [] for v in chosen}
        round_medians: dict[str, list[float]] = {v.name: [] for v in chosen}
        clock, cpu_clock = time.perf_counter_ns, time.process_time_ns
        for r, n in enumerate(per_round):
            shift = r % len(chosen)
            for v in chosen[shift:] + chosen[:shift]:
                gc.collect()
                run = v.run
                block, cpu_block = [], []
                for _ in range(n):
                    c0 = cpu_clock()
                    t0 = clock()
                    run()
                    t1 = clock()
                    cpu_block.append(cpu_clock() - c0)
                    block.append(t1 - t0)
                times[v.name] += block
                cpu[v.name] += cpu_block
                round_medians[v.name].append(statistics.median(block))
    rows: dict[str, ExecutorRow] = {}
    for v in chosen:
        ts = sorted(times[v.name])
        med = statistics.median(ts) / 1000.0
        rm = round_medians[v.name]
        rows[v.name] = ExecutorRow(
            variant=v.name, description=v.description, runs=len(ts), run_us=med, step_us=med / STEPS_PER_RUN,
            run_us_p90=ts[min(len(ts) - 1, int(0.9 * len(ts)))] / 1000.0,
            cpu_us=statistics.median(cpu[v.name]) / 1000.0,
            round_spread=(max(rm) - min(rm)) / statistics.median(rm) if len(rm) > 1 else 0.0,
            baseline=v.baseline,
        )
    for row in rows.values():
        if row.baseline:
            base = rows[row.baseline]
            row.ratio = row.run_us / base.run_us
            row.overhead_step_us = row.step_us - base.step_us
            row.cpu_ratio = row.cpu_us / base.cpu_us if base.cpu_us > 0 else None
            memory_kind = row.baseline.endswith("+memory")
            row.ratios = {ref.variant: row.run_us / ref.run_us for ref in rows.values()
                          if ref.baseline is None and ref.variant.endswith("+memory") == memory_kind}
    return list(rows.values())


def render(rows: list[ExecutorRow], console: Any = None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    runs = rows[0].runs if rows else 0
    table = Table(title=f"Graph overhead: {runs} runs per variant, a run = {STEPS_PER_RUN} steps "
                        "(model, tools, model), zero-latency scripted model")
    for col, justify in [("variant", "left"), ("µs/run", "right"), ("p90", "right"), ("µs/step", "right"),
                         ("vs", "left"), ("ratio (wall)", "right"), ("+µs/step", "right"), ("CPU µs/run", "right"),
                         ("ratio (CPU)", "right"), ("spread", "right")]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        over = r.overhead_pct
        ratio = r.ratio_text()
        if over is not None:
            ratio = f"[{'green' if over <= TARGET_OVERHEAD * 100 else 'red'}]{ratio}[/]"
        table.add_row(
            r.variant, f"{r.run_us:,.0f}", f"{r.run_us_p90:,.0f}", f"{r.step_us:,.0f}", r.baseline or "", ratio,
            "" if r.overhead_step_us is None else f"{r.overhead_step_us:+,.0f}", f"{r.cpu_us:,.0f}",
            "" if r.cpu_ratio is None else f"{r.cpu_ratio:.2f}x", f"{r.round_spread:.0%}",
        )
    console.print(table)
    console.print(f"  medians over interleaved rounds; spread = range of the per-round medians / their median. "
                  f"Target: agentrt at most {TARGET_OVERHEAD:.0%} slower than the direct LangGraph loop "
                  "(ratio green within it, red over it). CPU = process time of all threads.")
    for r in rows:
        others = ", ".join(f"{x:.2f}x vs {name}" for name, x in r.ratios.items() if name != r.baseline)
        console.print(f"  [bold]{r.variant}[/]: {escape(r.description)}" + (f" ({others})" if others else ""))


def profile(variant: str = "agentrt", runs: int = 500, top: int = 30) -> str:
    """cProfile of one variant's runs, sorted by cumulative time: where its time goes."""
    import cProfile
    import io
    import pstats

    with open_variants() as listed:
        chosen = {v.name: v for v in listed}
        if variant not in chosen:
            raise ValueError(f"unknown variant {variant!r}; one of {', '.join(chosen)}")
        run = chosen[variant].run
        for _ in range(50):
            run()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(runs):
            run()
        prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(runs: int = 2000, rounds: int = 5, warmup: int = 50, memory: bool = True, trajectory: bool = True,
         inline: bool = True, console: Any = None) -> list[ExecutorRow]:
    from rich.console import Console

    console = console or Console()
    with console.status(f"running {runs} runs per variant in {rounds} rounds ..."):
        rows = measure(runs, rounds, warmup, memory=memory, trajectory=trajectory, inline=inline)
    render(rows, console)
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--no-memory", action="store_true", help="skip the checkpointer rows")
    parser.add_argument("--no-trajectory", action="store_true", help="skip the trajectory-recording row")
    parser.add_argument("--no-inline", action="store_true", help="skip the lean hand-written LangGraph row")
    parser.add_argument("--profile", metavar="VARIANT", help="print a cProfile of this variant instead")
    a = parser.parse_args()
    if a.profile:
        print(profile(a.profile, a.runs))
    else:
        main(a.runs, a.rounds, a.warmup, memory=not a.no_memory, trajectory=not a.no_trajectory,
             inline=not a.no_inline)
