"""Tests for agentrt.trajectory (the schema and assemble) and agentrt.trajectory_store (SQLite)."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
)

from agentrt.trajectory import (
    INPUT_NODE,
    SCHEMA_VERSION,
    UNANSWERED,
    CriticScore,
    Trajectory,
    assemble,
)
from agentrt.trajectory_store import (
    TrajectoryStore,
    TrajectoryStoreError,
    default_store_path,
)

REPO = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000.0


def dicts(*msgs) -> list[dict]:
    return [message_to_dict(m) for m in msgs]


def input_messages() -> list:
    return [SystemMessage("You are helpful.", id="sys"), HumanMessage("What is 6*7 and the weather in Oslo?", id="h1")]


def agent_turn_1() -> AIMessage:
    return AIMessage(
        "", id="ai1",
        tool_calls=[
            {"name": "calculator", "args": {"expression": "6*7"}, "id": "call_calc"},
            {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_weather"},
            {"name": "search", "args": {"q": "never answered"}, "id": "call_lost"},
        ],
        invalid_tool_calls=[{"name": "calculator", "args": '{"expression": 6*', "id": "call_bad",
                             "error": "unterminated JSON", "type": "invalid_tool_call"}],
        usage_metadata={"input_tokens": 100, "output_tokens": 20, "total_tokens": 120},
    )


def tool_replies() -> list[ToolMessage]:
    return [
        ToolMessage("Error: unterminated JSON", tool_call_id="call_bad", name="calculator", id="t0", status="error",
                    response_metadata={"latency_s": 0.0, "error": "malformed tool call"}),
        ToolMessage("42", tool_call_id="call_calc", name="calculator", id="t1",
                    response_metadata={"latency_s": 0.01, "error": None}),
        ToolMessage("Error: get_weather failed: TimeoutError: upstream", tool_call_id="call_weather",
                    name="get_weather", id="t2", status="error",
                    response_metadata={"latency_s": 2.5, "error": "TimeoutError"}),
    ]


FINAL = "6*7 is 42; the weather service failed."


def final_turn(content: str = FINAL) -> AIMessage:
    return AIMessage(content, id="ai2", usage_metadata={"input_tokens": 200, "output_tokens": 15, "total_tokens": 215})


def record_run(store: TrajectoryStore, run_id: str = "run-0001", *, graph: str = "react",
               model: str | None = "scripted", thread_id: str | None = "th-1", started_at: float = T0,
               finish: bool = True) -> None:
    """A realistic run: input, an agent step with tool calls, the tools, a final answer."""
    store.start_run(run_id=run_id, thread_id=thread_id, graph=graph, model=model,
                    input="What is 6*7 and the weather in Oslo?", metadata={"user": "ada"}, started_at=started_at)
    assert store.add_event(run_id, INPUT_NODE, {"messages": dicts(*input_messages())}, at=started_at) == 0
    assert store.add_event(run_id, "agent", {"messages": dicts(agent_turn_1()), "round": 1}, at=started_at + 1) == 1
    assert store.add_event(run_id, "tools", {"messages": dicts(*tool_replies())}, at=started_at + 3.5) == 2
    assert store.add_event(run_id, "agent", {"messages": dicts(final_turn()), "round": 2}, at=started_at + 4) == 3
    if finish:
        store.finish_run(run_id, status="completed", final_answer=FINAL, stop_reason="final_answer",
                         ended_at=started_at + 4.25)


@pytest.fixture
def store(tmp_path: Path):
    with TrajectoryStore(tmp_path / "sub" / "dir" / "traj.sqlite") as s:
        yield s


# --- assemble --------------------------------------------------------------------------------


def test_get_assembles_a_full_trajectory(store: TrajectoryStore):
    record_run(store)
    t = store.get("run-0001")
    assert t.schema_version == SCHEMA_VERSION
    assert (t.run_id, t.thread_id, t.graph, t.model, t.status) == ("run-0001", "th-1", "react", "scripted", "completed")
    assert t.input == "What is 6*7 and the weather in Oslo?" and t.metadata == {"user": "ada"}
    assert t.final_answer == "6*7 is 42; the weather service failed." and t.stop_reason == "final_answer"
    assert t.error is None and t.reward is None and t.critic_scores == []
    assert t.started_at == datetime.fromtimestamp(T0, timezone.utc) and t.started_at.tzinfo is not None
    assert t.duration_s == pytest.approx(4.25)

    # messages: OpenAI chat format, input first, in event order
    assert [m["role"] for m in t.messages] == ["system", "user", "assistant", "tool", "tool", "tool", "assistant"]
    assert t.messages[1] == {"role": "user", "content": "What is 6*7 and the weather in Oslo?"}
    calls = t.messages[2]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["calculator", "get_weather", "search"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"expression": "6*7"}
    assert t.messages[4] == {"role": "tool", "tool_call_id": "call_calc", "name": "calculator",
                             "content": "42"}
    assert t.messages[-1]["content"] == "6*7 is 42; the weather service failed."

    # tool call records: results, errors, latency, unanswered and malformed calls
    recs = {r.id: r for r in t.tool_calls}
    assert [r.id for r in t.tool_calls] == ["call_calc", "call_weather", "call_lost", "call_bad"]
    assert recs["call_calc"].model_dump() == {"id": "call_calc", "name": "calculator",
                                              "arguments": {"expression": "6*7"}, "result": "42", "error": None,
                                              "latency_s": 0.01}
    assert recs["call_weather"].error == "TimeoutError" and recs["call_weather"].latency_s == 2.5
    assert recs["call_weather"].result.startswith("Error: get_weather failed")
    assert (recs["call_lost"].result, recs["call_lost"].error, recs["call_lost"].latency_s) == (None, UNANSWERED, None)
    assert recs["call_bad"].arguments == '{"expression": 6*' and recs["call_bad"].error == "unterminated JSON"
    assert recs["call_bad"].result == "Error: unterminated JSON"

    # usage sums every AIMessage; events skip the input and list the keys each node wrote
    assert t.usage.model_dump() == {"input_tokens": 300, "output_tokens": 35, "total_tokens": 335}
    assert [(e.seq, e.node, e.keys) for e in t.events] == [
        (1, "agent", ["messages", "round"]), (2, "tools", ["messages"]), (3, "agent", ["messages", "round"])]
    assert [e.elapsed_s for e in t.events] == [1.0, 3.5, 4.0]


def test_assemble_dedups_repeated_ids_keeping_the_last():
    header = {"run_id": "r", "thread_id": None, "graph": "g", "model": None, "input": "hi", "status": "running",
              "started_at": T0, "ended_at": None, "metadata": "{}"}
    events = [
        (0, T0, INPUT_NODE, {"messages": dicts(HumanMessage("hi", id="h"))}),
        (1, T0 + 1, "agent", {"messages": dicts(AIMessage("draft", id="a"))}),
        (2, T0 + 2, "agent", {"messages": dicts(HumanMessage("hi", id="h"), AIMessage("final", id="a"))}),
        (3, T0 + 3, "other", {"count": 3}),
    ]
    t = assemble(header, events, [])
    assert t.messages == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "final"}]
    assert t.status == "running" and t.ended_at is None and t.duration_s is None
    assert t.usage.total_tokens == 0 and t.tool_calls == []
    assert [e.keys for e in t.events] == [["messages"], ["messages"], ["count"]]


def test_assemble_names_an_unreadable_event():
    header = {"run_id": "r", "graph": "g", "input": "", "status": "running", "started_at": T0}
    with pytest.raises(ValueError, match=r"event 1 \(agent\)"):
        assemble(header, [(1, T0, "agent", {"messages": [{"type": "nonsense", "data": {}}]})], [])


# --- list / get / export ---------------------------------------------------------------------


def test_list_filters_and_order(store: TrajectoryStore):
    record_run(store, "aaaa-1", graph="react", model="m1", thread_id="t1", started_at=T0)
    record_run(store, "bbbb-2", graph="plan", model="m2", thread_id="t2", started_at=T0 + 10)
    record_run(store, "cccc-3", graph="react", model="m2", thread_id="t1", started_at=T0 + 20, finish=False)
    store.finish_run("bbbb-2", status="failed", error="boom", ended_at=T0 + 11)

    def ids(**kw):
        return [s.run_id for s in store.list(**kw)]

    assert ids() == ["cccc-3", "bbbb-2", "aaaa-1"]
    assert ids(limit=2) == ["cccc-3", "bbbb-2"]
    assert ids(graph="react") == ["cccc-3", "aaaa-1"]
    assert ids(model="m2") == ["cccc-3", "bbbb-2"]
    assert ids(status="running") == ["cccc-3"] and ids(status="failed") == ["bbbb-2"]
    assert ids(thread_id="t1", model="m1") == ["aaaa-1"]
    assert ids(since=datetime.fromtimestamp(T0 + 5, timezone.utc)) == ["cccc-3", "bbbb-2"]
    assert ids(graph="nope") == []
    summary = store.list(status="failed")[0]
    assert summary.duration_s == pytest.approx(1.0) and summary.model == "m2" and summary.final_answer is None
    assert [t.run_id for t in store.iter(graph="react")] == ["cccc-3", "aaaa-1"]
    with pytest.raises(TrajectoryStoreError, match="unknown status 'done'"):
        store.list(status="done")


def test_summary_truncates_long_answers(store: TrajectoryStore):
    record_run(store, finish=False)
    store.finish_run("run-0001", status="completed", final_answer="x" * 1000)
    answer = store.list()[0].final_answer
    assert len(answer) == 200 and answer.endswith("…")
    assert store.get("run-0001").final_answer == "x" * 1000


def test_get_by_prefix(store: TrajectoryStore):
    record_run(store, "abcdef-111")
    record_run(store, "abcdxx-222")
    assert store.get("abcde").run_id == "abcdef-111"
    assert store.get("abcdx").run_id == "abcdxx-222"
    with pytest.raises(TrajectoryStoreError, match="ambiguous.*abcdef-111.*abcdxx-222"):
        store.get("abcd")
    with pytest.raises(TrajectoryStoreError, match="at least 4 characters"):
        store.get("abc")
    with pytest.raises(TrajectoryStoreError, match=r"no run 'zzzz'.*agentrt traj list shows the ids"):
        store.get("zzzz")
    with pytest.raises(TrajectoryStoreError, match="no run"):
        store.get("abcd%")  # no LIKE wildcards


def test_export_jsonl_round_trip(store: TrajectoryStore):
    record_run(store, "run-a", graph="react", started_at=T0)
    record_run(store, "run-b", graph="plan", started_at=T0 + 1)
    store.set_reward("run-a", 0.75)
    from agentrt.rft.export import ExportFilter, write_examples

    out = io.StringIO()
    assert write_examples(store, out, "jsonl", ExportFilter(status=None)).written == 2  # the one export path
    lines = out.getvalue().splitlines()
    back = [Trajectory.model_validate_json(line) for line in lines]
    assert [t.run_id for t in back] == ["run-b", "run-a"]
    assert back[1] == store.get("run-a") and back[1].reward == 0.75
    out = io.StringIO()
    assert write_examples(store, out, "jsonl", ExportFilter(status=None, graph="plan")).written == 1
    assert json.loads(out.getvalue())["graph"] == "plan"


def test_reward_and_critic_scores(store: TrajectoryStore):
    record_run(store)
    store.set_reward("run-0001", 1.0)
    at = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    store.add_critic_score("run-0001", CriticScore(critic="judge", target="round-1", score=0.4, accepted=False, at=at))
    store.add_critic_score("run-0001", CriticScore(critic="judge", target="round-2", score=0.9, accepted=True, at=at))
    store.add_critic_score("run-0001", CriticScore(critic="len", target="final", score=3))
    t = store.get("run-0001")
    assert t.reward == 1.0 and store.list()[0].reward == 1.0
    assert [(c.target, c.score, c.accepted) for c in t.critic_scores] == [
        ("round-1", 0.4, False), ("round-2", 0.9, True), ("final", 3.0, None)]
    assert t.critic_scores[0].at == at
    with pytest.raises(TrajectoryStoreError, match="finite"):
        store.set_reward("run-0001", float("nan"))
    with pytest.raises(TrajectoryStoreError, match="no run 'nope'"):
        store.set_reward("nope", 1.0)
    with pytest.raises(TrajectoryStoreError, match="no run 'nope'"):
        store.add_critic_score("nope", CriticScore(critic="c", target="t", score=1))


# --- writers ---------------------------------------------------------------------------------


def test_seq_continues_across_store_instances(tmp_path: Path):
    path = tmp_path / "t.sqlite"
    with TrajectoryStore(path) as a, TrajectoryStore(path) as b:
        a.start_run(run_id="r", thread_id=None, graph="g", model=None, input="x")
        assert [a.add_event("r", "n", {}) for _ in range(2)] == [0, 1]
        assert b.add_event("r", "n", {}) == 2  # unknown to b: counted from MAX(seq)
        assert a.add_event("r", "n", {}) == 3  # a's counter collided: recounted, nothing lost
        assert [e.seq for e in b.get("r").events] == [0, 1, 2, 3]


def test_threads_share_one_store(store: TrajectoryStore):
    store.start_run(run_id="r", thread_id=None, graph="g", model=None, input="x")
    seqs: list[int] = []

    def work():
        for i in range(50):
            seqs.append(store.add_event("r", "n", {"i": i}))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(seqs) == list(range(400))
    assert len(store.get("r").events) == 400


def test_add_event_is_fast(store: TrajectoryStore):
    store.start_run(run_id="r", thread_id=None, graph="g", model=None, input="x")
    payload = {"messages": dicts(agent_turn_1()), "round": 1}
    n = 2000
    t = time.perf_counter()
    for _ in range(n):
        store.add_event("r", "agent", payload)
    per_event = (time.perf_counter() - t) / n
    print(f"add_event: {per_event * 1e6:.1f} us/event")
    assert per_event < 1e-3  # typically ~30 us; the bound only catches a regression to a per-event fsync


def test_mark_interrupted_closes_runs_whose_process_is_gone(store: TrajectoryStore):
    record_run(store, "done-1")
    record_run(store, "live-1", finish=False, started_at=T0 + 5)
    assert store.mark_interrupted() == []  # its process (this one) still runs it
    import socket

    with store._lock:  # as if another process of this host had written it and died
        store._conn.execute("UPDATE runs SET process = ? WHERE run_id = 'live-1'", (f"{socket.gethostname()}:1:0",))
    assert store.mark_interrupted() == ["live-1"]
    t = store.get("live-1")
    assert t.status == "interrupted" and t.ended_at == datetime.fromtimestamp(T0 + 9, timezone.utc)
    assert "ended before the run finished" in t.error
    assert store.get("done-1").status == "completed"
    assert store.mark_interrupted() == []


# --- bad input -------------------------------------------------------------------------------


def test_bad_writes(store: TrajectoryStore):
    record_run(store, finish=False)
    with pytest.raises(TrajectoryStoreError, match="already exists"):
        store.start_run(run_id="run-0001", thread_id=None, graph="g", model=None, input="again")
    assert store.get("run-0001").input.startswith("What is 6*7")  # the first run is untouched
    with pytest.raises(TrajectoryStoreError, match="no run 'ghost'.*start_run"):
        store.add_event("ghost", "agent", {})
    with pytest.raises(TrajectoryStoreError, match="no run 'ghost'.*start_run"):
        store.finish_run("ghost", status="completed")
    with pytest.raises(TrajectoryStoreError, match="status must be one of"):
        store.finish_run("run-0001", status="done")
    with pytest.raises(TrajectoryStoreError, match="must be a dict"):
        store.add_event("run-0001", "agent", ["not", "a", "dict"])  # type: ignore[arg-type]
    assert store.add_event("run-0001", "agent", {"when": datetime(2024, 1, 1)}) == 4  # odd values become text


def test_path_is_a_directory(tmp_path: Path):
    with pytest.raises(TrajectoryStoreError, match="is a directory"):
        TrajectoryStore(tmp_path)


def test_not_sqlite(tmp_path: Path):
    path = tmp_path / "notes.sqlite"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(TrajectoryStoreError, match=r"is not an agentrt trajectory store or is damaged.*Move it aside"):
        TrajectoryStore(path)
    assert path.read_text().startswith("these are my notes")  # nothing written


def test_corrupt_sqlite(tmp_path: Path):
    path = tmp_path / "t.sqlite"
    with TrajectoryStore(path) as s:
        record_run(s)
    with open(path, "r+b") as f:  # keep the SQLite header, smash the page contents
        f.seek(100)
        f.write(os.urandom(8000))
    with pytest.raises(TrajectoryStoreError, match="not an agentrt trajectory store or is damaged"):
        with TrajectoryStore(path) as s:
            s.get("run-0001")


def test_someone_elses_sqlite(tmp_path: Path):
    path = tmp_path / "other.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE checkpoints (id TEXT)")
    con.commit()
    con.close()
    with pytest.raises(TrajectoryStoreError, match="not an agentrt trajectory store.*checkpoints"):
        TrajectoryStore(path)


def test_newer_schema(tmp_path: Path):
    path = tmp_path / "t.sqlite"
    TrajectoryStore(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(TrajectoryStoreError, match="made by a newer agentrt"):
        TrajectoryStore(path)


def test_store_settings_and_closed_store(tmp_path: Path):
    path = tmp_path / "t.sqlite"
    s = TrajectoryStore(path)
    assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert s._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    s.close()
    with pytest.raises(TrajectoryStoreError, match="closed"):
        s.list()


def test_default_store_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("AGENTRT_STORE", str(tmp_path / "x.sqlite"))
    assert default_store_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("AGENTRT_STORE")
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path / "home"))
    assert default_store_path() == tmp_path / "home" / "trajectories.sqlite"


# --- durability ------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, signal, sys
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage, message_to_dict
    from agentrt.trajectory_store import TrajectoryStore

    store = TrajectoryStore(sys.argv[1])
    store.start_run(run_id="crash-run", thread_id="t", graph="react", model="m", input="hi")
    store.add_event("crash-run", "__input__", {"messages": [message_to_dict(HumanMessage("hi", id="h"))]})
    ai = AIMessage("", id="a", tool_calls=[{"name": "calc", "args": {"x": 1}, "id": "c1"}],
                   usage_metadata={"input_tokens": 5, "output_tokens": 2, "total_tokens": 7})
    store.add_event("crash-run", "agent", {"messages": [message_to_dict(ai)]})
    for i in range(50):
        store.add_event("crash-run", "step", {"i": i})
    print("written", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no finish_run, no close, no atexit
""")


def test_kill_9_mid_run_loses_nothing(tmp_path: Path):
    path = tmp_path / "t.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "written"
    with TrajectoryStore(path) as store:  # opening it finds the killed process's run and closes it
        t = store.get("crash-run")
        assert t.status == "interrupted" and "ended before the run finished" in t.error
        assert t.ended_at is not None
        assert [e.seq for e in t.events] == list(range(1, 52))
        assert t.messages[0] == {"role": "user", "content": "hi"}
        assert t.messages[1]["tool_calls"][0]["function"]["name"] == "calc"
        assert t.tool_calls[0].error == UNANSWERED and t.usage.total_tokens == 7
        assert store.mark_interrupted() == []
        assert store.add_event("crash-run", "late", {}) == 52  # seq picks up after the crash
