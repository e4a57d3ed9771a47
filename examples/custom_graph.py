"""Define your own agent graph in a few lines on agentrt's parts.

    python examples/custom_graph.py "How many days are in 17 weeks?"
    python examples/custom_graph.py --model llamacpp:qwen2.5-coder-0.5b "How many days are in 3 weeks?"

The graph is a plain LangGraph graph: compile it with a checkpointer, stream it, serve it. The
run is recorded like any other (see `agentrt traj list`).
"""

from __future__ import annotations

import argparse

from agentrt import (
    Budget,
    TrajectoryStore,
    build_tool_agent,
    default_store_path,
    run,
    run_config,
    tool,
    user_input,
)


@tool(timeout=2)
def days_in_weeks(weeks: int) -> int:
    """Count the days in a number of weeks.

    Args:
        weeks: how many weeks
    """
    return weeks * 7


graph = build_tool_agent(
    [days_in_weeks],
    system_prompt="Use days_in_weeks for any question about weeks and days, then answer in one sentence.",
    budget=Budget(max_steps=4),
).compile(name="weeks")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("question")
    parser.add_argument("--model", default=None, help="model spec; default: the embedded Qwen")
    args = parser.parse_args()
    with TrajectoryStore(default_store_path()) as store:
        result = run(graph, "weeks", user_input(args.question), run_config(model=args.model), store)
    print(result.answer if result.status == "completed" else f"failed: {result.error}")
    print(f"(trajectory {result.run_id}: agentrt traj show {result.run_id[:8]})")
