"""The examples a user copies keep working."""

from __future__ import annotations

import runpy
from pathlib import Path

from agentrt.agent import user_input
from agentrt.models.scripted import call
from agentrt.runner import run, run_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_custom_graph_example_runs_and_records(scripted, store):
    graph = runpy.run_path(str(EXAMPLES / "custom_graph.py"))["graph"]
    spec = scripted([call("days_in_weeks", weeks=17), "There are 119 days in 17 weeks."])
    result = run(graph, "weeks", user_input("How many days are in 17 weeks?"), run_config(model=spec), store)
    assert result.answer == "There are 119 days in 17 weeks."
    assert store.get(result.run_id).tool_calls[0].result == "119"


def test_custom_graph_budget_applies(scripted, store):
    graph = runpy.run_path(str(EXAMPLES / "custom_graph.py"))["graph"]
    spec = scripted([call("days_in_weeks", weeks=1)], cycle=True)
    result = run(graph, "weeks", user_input("loop"), run_config(model=spec), store)
    assert result.stop_reason == "max_steps" and "7" in result.answer
