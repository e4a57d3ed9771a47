"""Runs become correct training data: what served runs record (every input form, the system
prompt and tools offered, human edits, tool errors), feedback on runs, and exports checked
message by message, through the real server process and the official clients."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.process import Server, running

CALC_SYSTEM = "You are a calculator."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("collect")) as s:
        yield s


def export(server: Server, *args: str) -> tuple[list[dict[str, Any]], str]:
    out = server.data_dir / f"export-{len(list(server.data_dir.glob('export-*')))}.jsonl"
    done = subprocess.run([sys.executable, "-m", "agentrt", "traj", "export", "--store",
                           str(server.data_dir / "trajectories.sqlite"), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=120, env={"COLUMNS": "400", "PATH": "/usr/bin"})
    lines = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return lines, " ".join(done.stderr.split())


def example_of(server: Server, run_id: str, *args: str) -> dict[str, Any]:
    """The one OpenAI example of ``run_id`` (runs are exported newest first, each with its run id
    in the sidecar)."""
    rows, said = export(server, "--format", "openai", "--sidecar", *args)
    meta = [json.loads(line) for line in sorted(server.data_dir.glob("export-*.meta.jsonl"))[-1].read_text().splitlines()]
    found = [row for row, m in zip(rows, meta, strict=True) if m["run_id"] == run_id]
    assert found, (run_id, said)
    return found[0]


CALC_TOOL = "calculator"


def assert_calc_example(example: dict[str, Any], expression: str, result: str) -> None:
    messages = example["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert messages[0] == {"role": "system", "content": CALC_SYSTEM}
    assert messages[1] == {"role": "user", "content": expression}
    (call,) = messages[2]["tool_calls"]
    assert call["function"]["name"] == CALC_TOOL and json.loads(call["function"]["arguments"]) == {"expression": expression}
    assert isinstance(call["function"]["arguments"], str)
    assert messages[3] == {"role": "tool", "tool_call_id": call["id"], "content": result}
    assert messages[4] == {"role": "assistant", "content": f"result: {result}"}
    assert [t["function"]["name"] for t in example["tools"]] == [CALC_TOOL]
    assert "expression" in example["tools"][0]["function"]["parameters"]["properties"]


def test_every_input_form_records_the_users_messages(server: Server) -> None:
    from langgraph_sdk import get_sync_client
    from openai import OpenAI

    sdk = get_sync_client(url=server.url, api_key=None)
    thread = sdk.threads.create()
    on_thread = sdk.runs.wait(thread["thread_id"], "calc", input={"messages": [{"role": "user", "content": "2+3"}]})
    assert on_thread["messages"][-1]["content"] == "result: 5"
    sdk.runs.wait(None, "calc", input={"messages": [{"role": "user", "content": "7-4"}]})  # stateless
    OpenAI(base_url=server.url + "/v1", api_key="unused").chat.completions.create(
        model="calc", messages=[{"role": "user", "content": "6*7"}])
    httpx.post(server.url + "/runs/wait", json={"assistant_id": "calc", "input": {  # curl-style LangChain dicts
        "messages": [{"type": "human", "content": "9/3"}]}}, timeout=30)
    by_question = {}
    for t in httpx.get(server.url + "/trajectories", params={"graph": "calc", "limit": 100}).json():
        messages = httpx.get(f"{server.url}/trajectories/{t['run_id']}").json()["messages"]
        by_question[messages[0]["content"]] = t["run_id"]
    for expression, result in [("2+3", "5"), ("7-4", "3"), ("6*7", "42"), ("9/3", "3")]:
        assert_calc_example(example_of(server, by_question[expression]), expression, result)


def test_trl_rows_carry_the_tools_and_the_chat_template_renders_them(server: Server) -> None:
    from agentrt.models import weights

    httpx.post(server.url + "/runs/wait", json={"assistant_id": "calc", "input": {
        "messages": [{"role": "user", "content": "1+1"}]}}, timeout=30)
    rows, _ = export(server, "--format", "trl", "--graph", "calc")
    row = next(r for r in rows if r["messages"][1]["content"] == "1+1")
    assert row["messages"][0] == {"role": "system", "content": CALC_SYSTEM}
    assert row["tools"][0]["function"]["name"] == CALC_TOOL
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(weights.tokenizer_dir("qwen2.5-coder-0.5b"))
    text = tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)
    assert '"name": "calculator"' in text and CALC_SYSTEM in text and "<tool_call>" in text


def test_human_edits_are_recorded_apart_from_what_the_model_wrote(server: Server) -> None:
    http = httpx.Client(base_url=server.url, timeout=30)
    tid = http.post("/threads", json={}).json()["thread_id"]
    http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "calc", "input": {"messages": [
        {"role": "user", "content": "2+2"}]}, "config": {"configurable": {"approve_tools": True}}})
    done = http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "calc", "command": {
        "resume": {"action": "edit", "args": {"expression": "2*2*2"}}}}).json()
    assert done["messages"][-1]["content"] == "result: 8"
    run_id = http.get(f"/threads/{tid}/runs").json()[0]["run_id"]  # the resumed run
    traj = http.get(f"/trajectories/{run_id}").json()
    edited = next(n for n in traj["annotations"] if n and n.get("review"))
    assert edited["review"]["action"] == "edit" and edited["model_tool_calls"][0]["args"] == {"expression": "2+2"}
    as_run = example_of(server, run_id)
    assert as_run["messages"][1] == {"role": "user", "content": "2+2"}  # the thread's question is in the record
    assert json.loads(as_run["messages"][2]["tool_calls"][0]["function"]["arguments"]) == {"expression": "2*2*2"}
    model_only = example_of(server, run_id, "--edits", "model")
    assert json.loads(model_only["messages"][-1]["tool_calls"][0]["function"]["arguments"]) == {"expression": "2+2"}
    assert [m["role"] for m in model_only["messages"]] == ["system", "user", "assistant"]  # ends with its own turn
    rows, said = export(server, "--format", "openai", "--edits", "skip", "--graph", "calc")
    assert "had turns a human edited, emitted not at all" in said


def test_runs_whose_tools_went_wrong_are_not_exported_as_successes(server: Server) -> None:
    """calc's scripted model sends the user's text as the expression: "2+" fails in the tool, and
    the run still completes with an answer. A default export leaves it out and says so."""
    r = httpx.post(server.url + "/runs/wait", json={"assistant_id": "calc", "input": {
        "messages": [{"role": "user", "content": "2+"}]}}, timeout=30).json()
    run_id = httpx.get(server.url + "/trajectories", params={"graph": "calc", "limit": 1}).json()[0]["run_id"]
    traj = httpx.get(f"{server.url}/trajectories/{run_id}").json()
    assert traj["status"] == "completed" and r["messages"][-1]["content"].startswith("result: Error")
    assert traj["tool_summary"]["failed"] + traj["tool_summary"]["invalid"] == 1
    assert traj["tool_summary"]["answered_after_success"] is False
    _, said = export(server, "--format", "openai", "--graph", "calc")
    assert "whose tool calls went wrong" in said
    kept, _ = export(server, "--format", "openai", "--graph", "calc", "--tool-errors")
    assert any(row["messages"][1]["content"] == "2+" for row in kept)


def test_feedback_per_key_and_its_errors(tmp_path: Path) -> None:
    from tests.test_server_ops import make_key

    alice, bob = make_key(tmp_path, "alice"), make_key(tmp_path, "bob")
    with running(tmp_path) as s:
        a = httpx.Client(base_url=s.url, headers={"X-API-Key": alice}, timeout=30)
        b = httpx.Client(base_url=s.url, headers={"X-API-Key": bob}, timeout=30)
        tid = a.post("/threads", json={}).json()["thread_id"]
        a.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "echo", "input": {"messages": [
            {"role": "user", "content": "hi"}]}})
        run_id = a.get(f"/threads/{tid}/runs").json()[0]["run_id"]
        r = a.post(f"/runs/{run_id}/feedback", json={"key": "correct", "score": 1, "comment": "right"})
        assert r.status_code == 200 and r.json()["score"] == 1.0 and r.json()["source"]
        assert a.post(f"/runs/{run_id}/feedback", json={"key": "thumbs", "score": True}).json()["score"] == 1.0
        assert b.post(f"/runs/{run_id}/feedback", json={"key": "correct", "score": 0}).status_code == 404
        assert a.post("/runs/no-such-run/feedback", json={"key": "correct", "score": 1}).status_code == 404
        for bad in ({"key": "correct", "score": "great"}, {"key": "correct"}, {"key": "no spaces", "score": 1},
                    {"key": "correct", "score": [1]}):
            r = a.post(f"/runs/{run_id}/feedback", json=bad)
            assert r.status_code == 422, (bad, r.text)
        traj = a.get(f"/trajectories/{run_id}").json()
        assert [(f["key"], f["score"], f["comment"]) for f in traj["feedback"]] == [
            ("correct", 1.0, "right"), ("thumbs", 1.0, None)]
        assert traj["thread_id"] == tid  # the id alice knows, not the checkpointer's key
    store = str(tmp_path / "trajectories.sqlite")
    cli = [sys.executable, "-m", "agentrt", "traj"]
    done = subprocess.run([*cli, "feedback", run_id[:8], "--score", "0", "--store", store], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "recorded" in done.stderr
    done = subprocess.run([*cli, "feedback", "nope", "--score", "1", "--store", store], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "no run 'nope'" in done.stderr and "Traceback" not in done.stderr
    out = tmp_path / "none.jsonl"
    done = subprocess.run([*cli, "export", "--format", "openai", "--min-feedback", "1", "--store", store, "--out",
                           str(out)], capture_output=True, text=True, timeout=60, env={"COLUMNS": "300", "PATH": "/usr/bin"})
    assert done.returncode == 1 and "no trajectories matched" in done.stderr and not out.exists()  # latest is 0


def test_an_older_store_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    from agentrt.trajectory import Feedback
    from agentrt.trajectory_store import TrajectoryStore, TrajectoryStoreError

    path = tmp_path / "v1.sqlite"
    db = sqlite3.connect(path)  # a version-1 store, as agentrt wrote it before feedback existed
    db.executescript("""
        CREATE TABLE runs (run_id TEXT PRIMARY KEY, schema_version INTEGER NOT NULL, thread_id TEXT, graph TEXT NOT NULL,
            model TEXT, input TEXT NOT NULL, status TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL,
            final_answer TEXT, stop_reason TEXT, error TEXT, reward REAL, metadata TEXT NOT NULL DEFAULT '{}');
        CREATE TABLE events (run_id TEXT NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, node TEXT NOT NULL,
            payload TEXT NOT NULL, PRIMARY KEY (run_id, seq));
        CREATE TABLE critic_scores (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, critic TEXT NOT NULL,
            target TEXT NOT NULL, score REAL NOT NULL, accepted INTEGER, at REAL NOT NULL);
        INSERT INTO runs VALUES ('old-run', 1, NULL, 'g', 'm', 'q', 'completed', 1.0, 2.0, 'a', 'answered', NULL,
            NULL, '{}');
        PRAGMA user_version = 1;
    """)
    db.close()
    with TrajectoryStore(path) as store:
        store.add_feedback("old-run", Feedback(key="correct", score=1))
        assert store.get("old-run").feedback[0].key == "correct"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(TrajectoryStoreError, match="newer agentrt \\(store schema 99"):
        TrajectoryStore(path)


SMOLLM_MANIFEST = Path(__file__).parent / "server" / "smollm_manifest.json"


@pytest.mark.model
def test_from_served_runs_to_a_served_adapter_on_smollm2(tmp_path: Path) -> None:
    """The whole loop on the real 135M model: serve an agent, run it through the SDK, give
    feedback, export, fine-tune from the store, serve the adapter, answer with it."""
    from langgraph_sdk import get_sync_client

    env = {"AGENTRT_HOME": str(tmp_path / "home")}
    data = tmp_path / "data"
    questions = ["What is the capital of France?", "What color is the sky?", "How many legs has a cat?",
                 "What is 2 plus 2?"]
    with running(data, manifest=SMOLLM_MANIFEST, env=env) as s:
        sdk = get_sync_client(url=s.url, api_key=None)
        for q in questions:
            out = sdk.runs.wait(None, "chat", input={"messages": [{"role": "user", "content": q}]})
            assert out["messages"][-1]["type"] == "ai" and out["messages"][-1]["content"].strip()
        runs = httpx.get(s.url + "/trajectories", params={"graph": "chat", "limit": 10}).json()
        assert len(runs) == 4
        for i, run in enumerate(runs):  # three judged right, one wrong
            r = httpx.post(f"{s.url}/runs/{run['run_id']}/feedback", json={"key": "correct", "score": int(i < 3)})
            assert r.status_code == 200
    store = str(data / "trajectories.sqlite")
    exported = tmp_path / "train.jsonl"
    done = subprocess.run([sys.executable, "-m", "agentrt", "traj", "export", "--format", "openai", "--store", store,
                           "--min-feedback", "1", "--out", str(exported)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert len(lines) == 3 and all(line["messages"][0] == {"role": "system", "content": "Answer in a few words."}
                                   for line in lines)
    done = subprocess.run([sys.executable, "-m", "agentrt", "rft", "train", "--name", "served-e2e", "--model",
                           "local:smollm2-135m", "--store", store, "--min-feedback", "1", "--epochs", "1",
                           "--max-length", "128"], capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, **env, "COLUMNS": "300"})
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3 of 3 matching runs kept" in said and "registered served-e2e@v1" in said
    spec = "local:smollm2-135m+served-e2e"
    with running(data, "--allow-model", spec, manifest=SMOLLM_MANIFEST, env=env) as s:
        sdk = get_sync_client(url=s.url, api_key=None)
        out = sdk.runs.wait(None, "chat", input={"messages": [{"role": "user", "content": questions[0]}]},
                            config={"configurable": {"model": spec}})
        assert out["messages"][-1]["content"].strip()
        latest = httpx.get(s.url + "/trajectories", params={"graph": "chat", "limit": 1}).json()[0]
        assert latest["model"] == spec and latest["status"] == "completed"
        refused = httpx.post(s.url + "/runs/wait", json={"assistant_id": "chat", "input": {"messages": [
            {"role": "user", "content": "hi"}]}, "config": {"configurable": {"model": spec + "@v9"}}})
        assert refused.status_code == 403


# --------------------------------------------------------------------------- in process, scripted model


def test_each_input_form_is_recorded_as_messages(scripted, store) -> None:
    from langchain_core.messages import HumanMessage

    from agentrt.agent import build_tool_agent
    from agentrt.runner import run, run_config

    graph = build_tool_agent([], system_prompt="Be brief.").compile()
    for form in ({"messages": [HumanMessage("hello")]}, {"messages": [{"role": "user", "content": "hello"}]},
                 {"messages": [("user", "hello")]}, {"messages": "hello"}, {"messages": [{"type": "human",
                                                                                         "content": "hello"}]}):
        spec = scripted(["hi!"])
        traj = store.get(run(graph, "g", form, run_config(model=spec), store).run_id)
        assert traj.messages == [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi!"}], form
        assert traj.prompts[0].system == "Be brief." and traj.prompt_of(1) == traj.prompts[0]


def test_unknown_tool_arguments_are_an_error_the_model_sees(scripted, store) -> None:
    from agentrt.tools import calculator

    from agentrt.agent import build_tool_agent, user_input
    from agentrt.models.scripted import call
    from agentrt.runner import run, run_config

    spec = scripted([call("calculator", expression="2+2", type="string"), "it is 4"])
    result = run(build_tool_agent([calculator]).compile(), "g", user_input("2+2?"), run_config(model=spec), store)
    traj = store.get(result.run_id)
    (record,) = traj.tool_calls
    assert record.error == "invalid arguments" and "unknown argument(s) 'type'" in record.result
    assert "expression (string)" in record.result  # and what is expected
    assert traj.status == "completed" and not traj.tool_summary.clean and traj.tool_summary.invalid == 1
