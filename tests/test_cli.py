"""The command line as a user meets it: clear errors, trajectories listed, shown and exported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agentrt.tools import calculator

from agentrt.agent import build_tool_agent, user_input
from agentrt.models.scripted import call
from agentrt.runner import run, run_config


def agentrt(*args: str, home: Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTRT_HOME": str(home), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "agentrt", *args], capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_unknown_model_spec_is_a_clear_error(tmp_path):
    proc = agentrt("run", "hello", "--model", "local:gpt-9", home=tmp_path)
    assert proc.returncode == 2
    assert "unknown local model 'gpt-9'" in proc.stderr and "Traceback" not in proc.stderr
    proc = agentrt("run", "hello", "--model", "nonsense", home=tmp_path)
    assert proc.returncode == 2 and "unknown model spec 'nonsense'" in proc.stderr


def test_bad_arguments_are_clear_errors(tmp_path):
    proc = agentrt("run", "   ", home=tmp_path)
    assert proc.returncode == 2 and "give a question" in proc.stderr
    proc = agentrt("run", "--resume", home=tmp_path)
    assert proc.returncode == 2 and "--resume needs --thread" in proc.stderr
    proc = agentrt("run", "hi", "--graph", "nope", home=tmp_path)
    assert proc.returncode == 2 and "no graph named 'nope'" in proc.stderr and "react" in proc.stderr


def test_corrupt_store_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    proc = agentrt("traj", "list", "--store", str(bad), home=tmp_path)
    assert proc.returncode == 2 and "not an agentrt trajectory store" in proc.stderr
    assert bad.read_bytes() == b"this is not a database" * 100  # untouched


def test_traj_list_show_export(tmp_path, scripted):
    from agentrt.trajectory_store import TrajectoryStore

    db = tmp_path / "t.sqlite"
    with TrajectoryStore(db) as store:
        spec = scripted([call("calculator", expression="17 * 23 + 4"), "395"])
        result = run(build_tool_agent([calculator]).compile(), "react", user_input("What is 17 * 23 + 4?"), run_config(model=spec), store)
    listed = agentrt("traj", "list", "--store", str(db), home=tmp_path, check=True)
    assert result.run_id[:8] in listed.stdout and "completed" in listed.stdout
    shown = agentrt("traj", "show", result.run_id[:8], "--store", str(db), home=tmp_path, check=True)
    assert "calculator" in shown.stdout and "395" in shown.stdout
    out = tmp_path / "export.jsonl"
    agentrt("traj", "export", "--format", "jsonl", "--out", str(out), "--store", str(db), home=tmp_path, check=True)
    (line,) = out.read_text().splitlines()
    record = json.loads(line)
    assert record["run_id"] == result.run_id and record["final_answer"] == "395"
    assert record["tool_calls"][0]["name"] == "calculator" and record["tool_calls"][0]["result"] == "395"
    missing = agentrt("traj", "show", "zzzz", "--store", str(db), home=tmp_path)
    assert missing.returncode == 2 and "no run" in missing.stderr


def test_models_lists_specs(tmp_path):
    proc = agentrt("models", home=tmp_path, check=True)
    for spec in ("local:qwen2.5-coder-0.5b", "llamacpp:qwen2.5-coder-0.5b", "local:smollm2-135m", "openai:MODEL"):
        assert spec in proc.stdout
