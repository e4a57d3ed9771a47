"""Recorded runs as fine-tuning data: OpenAI lines that pass OpenAI's format rules, TRL rows that
TRL itself tokenizes with a real chat template, filters, malformed runs skipped, and the CLI.

The runs are real: a LangGraph tool agent driven by a scripted model, recorded by the runner into a
real store, then given a verdict, reward, task type and tool list the way the RFT loop does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from agentrt.tools import calculator
from langchain_core.messages import AIMessage
from typer.testing import CliRunner

from agentrt.agent import build_tool_agent, user_input
from agentrt.cli import app
from agentrt.models import registry
from agentrt.models.scripted import ScriptedChatModel, call
from agentrt.rft.export import (
    ExportFilter,
    MalformedTrajectory,
    check_openai_line,
    export,
    meta_path,
    select,
    to_openai,
    to_trl,
)
from agentrt.runner import run, run_config
from agentrt.tool import openai_schemas, tool
from agentrt.trajectory_store import TrajectoryStore


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: first
        b: second
    """
    return a + b


TOOLS = [calculator, add]
SCHEMAS = openai_schemas(TOOLS)


def _model(script: list[Any]) -> str:
    spec = f"scripted-{uuid.uuid4().hex[:8]}"
    registry.register(spec, ScriptedChatModel(spec=spec, script=script))
    return spec


def _parallel(*calls: AIMessage) -> AIMessage:
    return AIMessage(content="", tool_calls=[c.tool_calls[0] for c in calls])


def _invalid(args: str) -> AIMessage:
    return AIMessage(content="", invalid_tool_calls=[
        {"name": "add", "args": args, "id": "call_bad", "error": "could not parse the arguments", "type": "invalid_tool_call"}])


def _record(store: TrajectoryStore, script: list[Any], question: str, graph: str = "rft", *, task_type: str,
            passed: bool, difficulty: float | None = None) -> str:
    """One run through the real agent graph and runner, then what the RFT loop adds afterwards."""
    spec = _model(script)
    try:
        result = run(build_tool_agent(TOOLS).compile(), graph, user_input(question), run_config(model=spec), store)
    finally:
        registry.unregister(spec)
    store.merge_metadata(result.run_id, {
        "task_id": f"t-{question[:12]}", "task_type": task_type, "difficulty": difficulty, "tools": SCHEMAS,
        "verdict": {"passed": passed, "score": 1.0 if passed else 0.0, "reason": "checked"},
    })
    store.set_reward(result.run_id, 1.0 if passed else 0.0)
    return result.run_id


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TrajectoryStore, dict[str, str]]]:
    store = TrajectoryStore(tmp_path_factory.mktemp("rft") / "trajectories.sqlite")
    ids = {
        "single": _record(store, [call("calculator", expression="17 * 23 + 4"), "It is 395."], "What is 17 * 23 + 4?",
                          task_type="parameter_filling", passed=True, difficulty=0.25),
        "parallel": _record(store, [_parallel(call("add", a=2, b=3), call("add", a=10, b=20)), "5 and 30."],
                            "Add 2+3 and 10+20.", task_type="parallel", passed=True, difficulty=0.75),
        "no_tool": _record(store, ["Paris."], "Capital of France?", task_type="no_tool", passed=True),
        "wrong": _record(store, [call("calculator", expression="2 * 3"), call("add", a=6, b=1), "It is 8."],
                         "Double 3 then add 1.", task_type="chained", passed=False, difficulty=0.9),
        "malformed": _record(store, [_invalid("{a: 1, b"), "Sorry."], "Add one and b.", task_type="parameter_filling",
                             passed=True),
        "other_graph": _record(store, ["4."], "2+2?", graph="other", task_type="qa", passed=True),
    }
    crashed = _model([])  # runs out of responses at once: a failed run
    ids["failed"] = run(build_tool_agent(TOOLS).compile(), "rft", user_input("?"), run_config(model=crashed), store).run_id
    registry.unregister(crashed)
    yield store, ids
    store.close()


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _by_question(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {next(m["content"] for m in r["messages"] if m["role"] == "user"): r for r in rows}


# --- OpenAI ------------------------------------------------------------------------------------


def test_openai_export_lines_pass_openai_rules_and_sidecar_follows(runs, tmp_path):
    store, ids = runs
    report = export(store, tmp_path / "train.jsonl", "openai", sidecar=True)
    rows = _lines(tmp_path / "train.jsonl")
    assert report.written == len(rows) == 5  # completed runs, the malformed one left out
    for row in rows:
        assert check_openai_line(row) == [], row
        assert set(row) == {"messages", "tools"}  # nothing else may sit at the top level
        assert [t["function"]["name"] for t in row["tools"]] == ["calculator", "add"]
    by_q = _by_question(rows)
    (assistant_calls, *_rest) = [m for m in by_q["Add 2+3 and 10+20."]["messages"] if m.get("tool_calls")]
    assert [json.loads(c["function"]["arguments"]) for c in assistant_calls["tool_calls"]] == [{"a": 2, "b": 3}, {"a": 10, "b": 20}]
    assert all(c["type"] == "function" and c["id"] for c in assistant_calls["tool_calls"])
    answers = [m for m in by_q["Add 2+3 and 10+20."]["messages"] if m["role"] == "tool"]
    assert [a["tool_call_id"] for a in answers] == [c["id"] for c in assistant_calls["tool_calls"]]
    assert [a["content"] for a in answers] == ["5", "30"] and all("name" not in a for a in answers)
    assert by_q["Capital of France?"]["messages"] == [{"role": "user", "content": "Capital of France?"},
                                                      {"role": "assistant", "content": "Paris."}]
    # the sidecar: one line per example, same order, with what OpenAI's line cannot hold
    assert report.sidecar == meta_path(tmp_path / "train.jsonl") == tmp_path / "train.meta.jsonl"
    meta = _lines(report.sidecar)
    assert len(meta) == len(rows)
    by_run = {m["run_id"]: m for m in meta}
    assert by_run[ids["parallel"]] == {"run_id": ids["parallel"], "task_type": "parallel", "difficulty": 0.75}
    assert by_run[ids["no_tool"]]["difficulty"] is None
    for row, side in zip(rows, meta, strict=True):  # line n of the sidecar belongs to line n of the data
        traj = store.get(side["run_id"])
        assert row["messages"][0]["content"] == traj.input and side["task_type"] == traj.metadata["task_type"]
    assert report.tool_errors == 1 and not report.skipped  # the malformed call is a tool call gone wrong
    kept = export(store, tmp_path / "all.jsonl", "openai", ExportFilter(tool_errors=True))
    assert [s.run_id for s in kept.skipped] == [ids["malformed"]]  # kept, it still cannot be an example


GOOD = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+3?"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 3}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "5"},
        {"role": "assistant", "content": "5", "weight": 1},
    ],
    "tools": [{"type": "function", "function": {"name": "add", "description": "Add.", "parameters": {"type": "object", "properties": {}}}}],
}


def _bad(path: str, value: Any) -> dict[str, Any]:
    """GOOD with one thing changed: ``path`` like "messages.2.tool_calls.0.function.arguments"; a
    value of ... deletes the key."""
    line = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node: Any = line
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    key: Any = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return line


@pytest.mark.parametrize(("line", "problem"), [
    ([1, 2], "must be a JSON object"),
    (_bad("task_type", "parallel"), "unknown top-level key 'task_type'"),
    (_bad("messages", []), "messages must be a non-empty list"),
    (_bad("messages.1.role", "human"), "unknown role 'human'"),
    (_bad("messages.1.content", ...), "missing content"),
    (_bad("messages.1.content", 5), "content must be a string"),
    (_bad("messages.3.name", "add"), "key 'name' is not allowed in a tool message"),
    (_bad("messages.1.weight", 1), "key 'weight' is not allowed in a user message"),
    (_bad("messages.4.weight", 2), "weight must be 0 or 1"),
    (_bad("messages.4.content", ""), "empty content"),
    (_bad("messages.2.tool_calls.0.function.arguments", {"a": 2, "b": 3}), "arguments must be a JSON string"),
    (_bad("messages.2.tool_calls.0.function.arguments", "{a: 2"), "arguments are not valid JSON"),
    (_bad("messages.2.tool_calls.0.function.arguments", "[2, 3]"), "arguments must encode a JSON object"),
    (_bad("messages.2.tool_calls.0.id", ...), "missing id"),
    (_bad("messages.2.tool_calls.0.type", "tool"), "type must be 'function'"),
    (_bad("messages.2.tool_calls.0.function.name", "add numbers"), "function name must match"),
    (_bad("messages.2.tool_calls", []), "tool_calls must be a non-empty list"),
    (_bad("messages.3.tool_call_id", "c9"), "answers no open tool call"),
    (_bad("messages.3.tool_call_id", ...), "missing tool_call_id"),
    (_bad("messages.3", {"role": "user", "content": "hm"}), "are not answered before this message"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant message"),
    (_bad("tools", {"add": {}}), "tools must be a list"),
    (_bad("tools.0.type", "retrieval"), "type must be 'function'"),
    (_bad("tools.0.function.name", "add!"), "function name must match"),
    (_bad("tools.0.function.parameters", "a, b"), "parameters must be a JSON schema object"),
    (_bad("tools.0.function.examples", []), "unknown function key 'examples'"),
    (_bad("tools.0.extra", 1), "unknown key 'extra'"),
])
def test_checker_catches_each_kind_of_bad_line(line, problem):
    assert check_openai_line(GOOD) == []
    problems = check_openai_line(line)
    assert any(problem in p for p in problems), problems


def test_checker_accepts_documented_variants():
    assert check_openai_line({**GOOD, "parallel_tool_calls": False}) == []
    no_tools = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello", "weight": 0}]}
    assert check_openai_line(no_tools) == []
    ends_on_call = {"messages": GOOD["messages"][:3], "tools": GOOD["tools"]}  # the call is what is learned
    assert check_openai_line(ends_on_call) == []


# --- TRL -----------------------------------------------------------------------------------------


def _qwen_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from agentrt.models import weights

    if not weights.installed("qwen2.5-coder-0.5b"):
        pytest.skip("the Qwen2.5-Coder-0.5B weight packages are not installed")
    weights.offline()
    return AutoTokenizer.from_pretrained(weights.tokenizer_dir("qwen2.5-coder-0.5b"))


@pytest.mark.model  # the tokenizer comes out of the model's GGUF (assembled on first use)
def test_trl_rows_are_tokenized_by_trl_with_qwen_chat_template(runs, tmp_path):
    import datasets
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl import SFTConfig, SFTTrainer

    store, ids = runs
    report = export(store, tmp_path / "train.jsonl", "trl")
    assert report.written == 5 and report.tool_errors == 1  # the malformed run
    tokenizer = _qwen_tokenizer()
    data = datasets.load_dataset("json", data_files=str(tmp_path / "train.jsonl"), split="train",
                                 cache_dir=str(tmp_path / "hf"))
    tiny = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    config = SFTConfig(output_dir=str(tmp_path / "out"), max_length=2048, assistant_only_loss=True, report_to=[],
                       max_steps=1, per_device_train_batch_size=5, use_cpu=True, save_strategy="no", bf16=False)
    trainer = SFTTrainer(model=tiny, args=config, train_dataset=data, processing_class=tokenizer)
    prepared = trainer.train_dataset
    assert {"input_ids", "labels", "task_type", "difficulty"} <= set(prepared.column_names)
    texts = {row["task_type"]: tokenizer.decode(row["input_ids"]) for row in prepared}
    trained = {row["task_type"]: tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label != -100])
               for row in prepared}
    # the tools were rendered into the prompt, the calls with their arguments into the assistant turns
    assert '"name": "add"' in texts["parallel"] and "<tools>" in texts["parallel"]
    assert '{"name": "add", "arguments": {"a": 2, "b": 3}}' in trained["parallel"]
    assert '{"name": "add", "arguments": {"a": 10, "b": 20}}' in trained["parallel"]
    assert '{"name": "calculator", "arguments": {"expression": "17 * 23 + 4"}}' in trained["parameter_filling"]
    assert "<tool_response>\n5\n</tool_response>" in texts["parallel"] and "<tool_response>" not in trained["parallel"]
    assert "Paris." in trained["no_tool"] and "Capital of France?" not in trained["no_tool"]
    assert trainer.train().global_step == 1  # the collator takes the rows, extra columns included


def test_trl_rows_shape(runs):
    store, ids = runs
    row = to_trl(store.get(ids["parallel"]))
    assert set(row) == {"messages", "tools", "task_type", "difficulty"}
    assert row["task_type"] == "parallel" and row["difficulty"] == 0.75
    assistant = row["messages"][1]
    assert assistant["tool_calls"] == [
        {"type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 3}}},
        {"type": "function", "function": {"name": "add", "arguments": {"a": 10, "b": 20}}},
    ]
    assert row["messages"][2:4] == [{"role": "tool", "name": "add", "content": "5"},
                                    {"role": "tool", "name": "add", "content": "30"}]
    for tool_schema in row["tools"]:
        assert set(tool_schema["function"]) == {"name", "description", "parameters"}


# --- filters -----------------------------------------------------------------------------------


def _selected(store: TrajectoryStore, **fields: Any) -> set[str]:
    return {t.run_id for t in select(store, ExportFilter(**fields))}


def test_filters(runs):
    store, ids = runs
    completed_rft = {ids[k] for k in ("single", "parallel", "no_tool", "wrong", "malformed")}
    assert _selected(store) == completed_rft | {ids["other_graph"]}  # completed runs only, by default
    assert _selected(store, status=None) == completed_rft | {ids["other_graph"], ids["failed"]}
    assert _selected(store, graph="rft") == completed_rft
    assert _selected(store, graph="other") == {ids["other_graph"]}
    assert _selected(store, graph="rft", verdict="failed") == {ids["wrong"]}
    assert _selected(store, graph="rft", verdict="passed") == completed_rft - {ids["wrong"]}
    assert _selected(store, status=None, verdict="failed") == {ids["wrong"]}  # no verdict: neither passed nor failed
    assert _selected(store, min_reward=0.5, task_types=["parallel", "chained"]) == {ids["parallel"]}
    assert _selected(store, task_types=["no_tool"]) == {ids["no_tool"]}
    now = datetime.now(timezone.utc)
    assert _selected(store, until=now - timedelta(days=1)) == set()
    assert _selected(store, since=now - timedelta(hours=1), until=now.replace(tzinfo=None)) == _selected(store)
    with pytest.raises(ValueError):
        ExportFilter(task_types=["bogus"])


# --- malformed runs -----------------------------------------------------------------------------


def test_malformed_tool_calls_are_skipped_and_reported(runs, tmp_path):
    store, ids = runs
    with pytest.raises(MalformedTrajectory, match=r"malformed tool call 'add' \(id call_bad\).*not a JSON object"):
        to_openai(store.get(ids["malformed"]))
    with TrajectoryStore(tmp_path / "other.sqlite") as other:
        array_args = _record(other, [_invalid("[1, 2]"), "Hm."], "Array arguments?", task_type="other", passed=True)
        report = export(other, tmp_path / "t.jsonl", "trl", ExportFilter(tool_errors=True))
    assert report.written == 0 and [s.run_id for s in report.skipped] == [array_args]
    assert "'[1, 2]' are not a JSON object" in report.skipped[0].reason
    assert not (tmp_path / "t.jsonl").exists()  # nothing to write: no file
    # the same kinds of damage in the messages themselves (e.g. a store written by another tool)
    good = store.get(ids["parallel"])
    for damage, reason in [("not json", "not valid JSON"), ("[2, 3]", "not an object"), (None, "NoneType")]:
        messages = json.loads(json.dumps(good.messages))
        messages[1]["tool_calls"][0]["function"]["arguments"] = damage
        with pytest.raises(MalformedTrajectory, match=reason):
            to_trl(good.model_copy(update={"messages": messages}))
    orphan = json.loads(json.dumps(good.messages))
    orphan[2]["tool_call_id"] = "call_nobody_made"
    with pytest.raises(MalformedTrajectory, match="no earlier assistant message made"):
        to_openai(good.model_copy(update={"messages": orphan}))
    with pytest.raises(MalformedTrajectory, match="no assistant message"):
        to_openai(good.model_copy(update={"messages": good.messages[:1]}))
    twice = good.model_copy(update={"metadata": {**good.metadata, "tools": SCHEMAS + SCHEMAS[:1]}})
    with pytest.raises(MalformedTrajectory, match="'calculator' is listed twice"):
        to_openai(twice)  # every line written is one check_openai_line accepts


def test_interrupted_export_leaves_no_file(runs, tmp_path, monkeypatch):
    store, _ids = runs
    out = tmp_path / "train.jsonl"
    out.write_text("the previous export\n")
    import agentrt.rft.export as module

    real, calls = module.to_openai, []

    def dies_on_second(traj, edits="as-run"):
        calls.append(traj.run_id)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C halfway through
        return real(traj, edits)

    monkeypatch.setattr(module, "to_openai", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        export(store, out, "openai", sidecar=True)
    assert out.read_text() == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.jsonl"]  # no partial file, no sidecar


def test_empty_selection_writes_no_file_and_says_so(runs, tmp_path):
    store, _ids = runs
    (tmp_path / "kept.jsonl").write_text("an earlier export\n")
    for name in ("none.jsonl", "kept.jsonl"):
        report = export(store, tmp_path / name, "openai", ExportFilter(graph="no-such-graph"))
        assert report.written == 0 and not report.skipped
        assert "no trajectories matched the filters; no file was written" in report.summary()
    assert not (tmp_path / "none.jsonl").exists()
    assert (tmp_path / "kept.jsonl").read_text() == "an earlier export\n"  # not replaced by an empty one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.jsonl"]


# --- command line ------------------------------------------------------------------------------


def _cli(store: TrajectoryStore, tmp_path: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, ["traj", "export", "--store", str(store.path), *args],
                                env={"AGENTRT_HOME": str(tmp_path), "COLUMNS": "400"})
    result.said = " ".join(result.stderr.split())
    return result


def test_cli_exports_openai_and_trl(runs, tmp_path):
    store, ids = runs
    out = tmp_path / "o.jsonl"
    result = _cli(store, tmp_path, "--format", "openai", "--out", str(out), "--graph", "rft", "--verdict", "passed",
                  "--sidecar")
    assert result.exit_code == 0, result.output
    rows = _lines(out)
    assert len(rows) == 3 and all(check_openai_line(r) == [] for r in rows)
    assert "left out 1 whose tool calls went wrong" in result.said and "exported 3 openai examples" in result.said
    assert len(_lines(tmp_path / "o.meta.jsonl")) == 3

    out = tmp_path / "t.jsonl"
    result = _cli(store, tmp_path, "--format", "trl", "--out", str(out), "--min-reward", "1",
                  "--task-type", "parallel,no_tool", "--task-type", "qa")
    assert result.exit_code == 0, result.output
    assert sorted(r["task_type"] for r in _lines(out)) == ["no_tool", "parallel", "qa"]

    result = _cli(store, tmp_path, "--format", "trl", "--task-type", "chained", "--until", "2999-01-01")
    assert result.exit_code == 0 and [json.loads(x)["task_type"] for x in result.stdout.splitlines()] == ["chained"]


def test_cli_jsonl_keeps_whole_trajectories_and_takes_the_new_filters(runs, tmp_path):
    store, ids = runs
    out = tmp_path / "all.jsonl"
    result = _cli(store, tmp_path, "--format", "jsonl", "--out", str(out))
    assert result.exit_code == 0 and len(_lines(out)) == 7  # every status, as before
    result = _cli(store, tmp_path, "--out", str(out), "--verdict", "failed")
    (record,) = _lines(out)
    assert record["run_id"] == ids["wrong"] and record["tool_calls"][0]["name"] == "calculator"


def test_cli_empty_selection_and_errors(runs, tmp_path):
    store, _ids = runs
    out = tmp_path / "none.jsonl"
    result = _cli(store, tmp_path, "--format", "openai", "--out", str(out), "--graph", "nope")
    assert result.exit_code == 1 and not out.exists()
    assert "no trajectories matched the filters; no file was written" in result.said
    for args, message in [
        (["--format", "csv"], "unknown format 'csv': use one of jsonl, openai, trl"),
        (["--format", "openai", "--verdict", "maybe"], "unknown verdict 'maybe'"),
        (["--format", "openai", "--task-type", "poetry"], "--task-type: Input should be"),
        (["--format", "openai", "--status", "done"], "--status: Input should be"),
        (["--format", "openai", "--since", "yesterday"], "--since: Input should be a valid datetime"),
        (["--format", "openai", "--min-reward", "lots"], "--min-reward: Input should be a valid number"),
        (["--format", "openai", "--sidecar"], "--sidecar needs --out"),
        (["--format", "trl", "--sidecar", "--out", str(out)], "--sidecar is for --format openai"),
        (["--format", "openai", "--out", str(tmp_path)], "is a directory"),
    ]:
        result = _cli(store, tmp_path, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.said and "Traceback" not in result.output, (args, result.said)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
