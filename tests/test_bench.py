"""The benchmarks run and report sane rows (no timing targets: those belong to the benchmark)."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from agentrt.bench import backends as backends_bench
from agentrt.bench import executor as executor_bench
from agentrt.bench.cli import bench_app
from agentrt.models import registry


def test_executor_rows_are_complete_and_sane() -> None:
    rows = executor_bench.measure(runs=20, rounds=2, warmup=2)
    by = {r.variant: r for r in rows}
    assert set(by) == {"langgraph", "langgraph-inline", "agentrt", "agentrt+trajectory", "langgraph+memory",
                       "agentrt+memory"}
    for r in rows:
        assert r.runs == 20
        assert 0 < r.run_us <= r.run_us_p90
        assert r.cpu_us > 0 and r.round_spread >= 0
        assert r.step_us == pytest.approx(r.run_us / executor_bench.STEPS_PER_RUN)
    assert by["langgraph"].baseline is None and by["langgraph"].ratio is None
    assert set(by["agentrt"].ratios) == {"langgraph", "langgraph-inline"}
    assert set(by["agentrt+memory"].ratios) == {"langgraph+memory"}
    for name, base in [("agentrt", "langgraph"), ("agentrt+trajectory", "langgraph"),
                       ("agentrt+memory", "langgraph+memory")]:
        row = by[name]
        assert row.baseline == base
        assert row.ratio == pytest.approx(row.run_us / by[base].run_us)
        assert row.ratio > 0 and row.cpu_ratio is not None and row.cpu_ratio > 0
        assert row.ratio_text().endswith("%")
    assert not registry.is_loaded(executor_bench.SPEC)  # the scripted model is unregistered afterwards


def test_executor_variants_can_be_left_out_and_render() -> None:
    rows = executor_bench.measure(runs=5, rounds=5, warmup=0, memory=False, trajectory=False, inline=False)
    assert [r.variant for r in rows] == ["langgraph", "agentrt"]
    out = io.StringIO()
    executor_bench.render(rows, Console(file=out, width=200))
    text = out.getvalue()
    assert "agentrt" in text and "langgraph" in text and "build_tool_agent([add])" in text


def test_executor_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        executor_bench.measure(runs=0)


def test_both_graphs_answer_the_task() -> None:
    from agentrt.agent import final_answer, user_input

    with executor_bench.scripted_model() as model:
        lg = executor_bench.langgraph_graph(model).invoke(user_input(executor_bench.QUESTION))
        ag = executor_bench.agentrt_graph().invoke(user_input(executor_bench.QUESTION),
                                                   {"configurable": {"model": executor_bench.SPEC}})
    for state in (lg, ag):
        assert [type(m).__name__ for m in state["messages"]] == ["HumanMessage", "AIMessage", "ToolMessage",
                                                                 "AIMessage"]
        assert final_answer(state) == executor_bench.EXPECTED


def test_cli_executor_json() -> None:
    result = CliRunner().invoke(bench_app, ["executor", "--runs", "4", "--rounds", "1", "--warmup", "0",
                                            "--no-memory", "--no-trajectory", "--no-inline", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["variant"] for r in rows] == ["langgraph", "agentrt"]


# ---------------------------------------------------------------------------------- backends
# Measuring needs model weights and minutes; here only what runs without them.


def test_generated_paragraphs_are_deterministic() -> None:
    assert backends_bench._generated_paragraphs(3) == backends_bench._generated_paragraphs(3)
    assert len(backends_bench._generated_paragraphs(5)) == 5


def test_backend_rows_render_with_ratio_and_failures() -> None:
    t = backends_bench.BackendRow(backend="transformers", spec="local:m", load_s=4.0, prompt_tokens=1500, ttft_s=3.0,
                                  prompt_tok_s=500.0, completion_tokens=128, decode_tok_s=10.0, reuse_cold_s=3.0,
                                  reuse_warm_s=3.0, reuse_shared_tokens=1480, reuse_prompt_tokens=1500)
    ll = t.model_copy(update={"backend": "llama.cpp", "spec": "llamacpp:m", "prompt_tok_s": 1000.0,
                              "decode_tok_s": 40.0, "reuse_warm_s": 0.1})
    failed = backends_bench.BackendRow(backend="llama.cpp", spec="llamacpp:m", ok=False, note="crashed with SIGSEGV")
    out = io.StringIO()
    backends_bench.render([t, ll], Console(file=out, width=200))
    text = out.getvalue()
    assert "llama.cpp / transformers" in text and "2.00x" in text and "4.00x" in text
    assert ll.reuse_speedup == pytest.approx(30.0)
    out = io.StringIO()
    backends_bench.render([t, failed], Console(file=out, width=200))
    assert "SIGSEGV" in out.getvalue() and "llama.cpp / transformers" not in out.getvalue()


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError):
        backends_bench.measure(backends=["vllm"])


def test_server_load_bench_drives_the_real_server(tmp_path) -> None:
    """`agentrt bench server` starts the server, loads it with aiohttp clients, reports per level
    (and the last level again after the threads piled up)."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "agentrt", "bench", "server", "--no-peer", "--clients", "1", "--clients", "4",
         "--seconds", "1", "--warmup", "0.2", "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    rows = json.loads(out.stdout)
    assert [r["clients"] for r in rows] == [1, 4, 4]
    assert all(r["server"] == "agentrt" and r["cycles"] > 0 and r["errors"] == 0 for r in rows)
    assert rows[2]["threads_before"] >= rows[0]["cycles"] + rows[1]["cycles"]
