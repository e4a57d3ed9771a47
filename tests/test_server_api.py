"""The HTTP server, driven as a real process: with httpx, LangGraph's SDK client and the
official openai client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.process import Server, running

ECHO = {"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "ping"}]}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("server")) as s:
        yield s


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def new_thread(http: httpx.Client) -> str:
    r = http.post("/threads", json={"metadata": {"user": "ada"}})
    assert r.status_code == 200, r.text
    return r.json()["thread_id"]


def sse(response: httpx.Response) -> list[tuple[str, object]]:
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events


def test_assistants_come_from_the_manifest_with_schemas(http: httpx.Client) -> None:
    found = {a["assistant_id"]: a for a in http.post("/assistants/search", json={}).json()}
    assert set(found) == {"echo", "calc", "slow", "react"}
    assert found["echo"]["config"] == {"configurable": {"model": "scripted:echo"}}
    schemas = http.get("/assistants/calc/schemas").json()
    assert "messages" in schemas["input_schema"]["properties"]
    assert http.get("/assistants/nope").status_code == 404


def test_thread_lifecycle_state_and_history(http: httpx.Client) -> None:
    tid = new_thread(http)
    out = http.post(f"/threads/{tid}/runs/wait", json=ECHO).json()
    assert [m["content"] for m in out["messages"]] == ["ping", "echo: ping"]
    thread = http.get(f"/threads/{tid}").json()
    assert thread["status"] == "idle" and thread["metadata"]["graph_id"] == "echo"
    assert thread["values"]["messages"][-1]["content"] == "echo: ping"
    state = http.get(f"/threads/{tid}/state").json()
    assert state["next"] == [] and state["checkpoint"]["thread_id"] == tid
    history = http.post(f"/threads/{tid}/history", json={"limit": 10}).json()
    assert len(history) >= 2 and history[-1]["values"].get("messages", []) == []
    # a second run continues the conversation on the same thread
    http.post(f"/threads/{tid}/runs/wait", json={**ECHO, "input": {"messages": [{"role": "user", "content": "2"}]}})
    assert len(http.get(f"/threads/{tid}/state").json()["values"]["messages"]) == 4
    assert tid in [t["thread_id"] for t in http.post("/threads/search", json={"metadata": {"user": "ada"}}).json()]
    runs = http.get(f"/threads/{tid}/runs").json()
    assert len(runs) == 2 and {r["status"] for r in runs} == {"success"}
    assert http.delete(f"/threads/{tid}").status_code == 204
    assert http.get(f"/threads/{tid}").status_code == 404


def test_stream_modes_values_updates_messages(http: httpx.Client) -> None:
    tid = new_thread(http)
    body = {**ECHO, "stream_mode": ["values", "updates", "messages"]}
    with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse(r)
    kinds = [e for e, _ in events]
    assert kinds[0] == "metadata" and {"values", "updates", "messages"} <= set(kinds)
    updates = [d for e, d in events if e == "updates"]
    assert any("model" in u for u in updates)
    tokens = "".join(d[0]["content"] for e, d in events if e == "messages")
    assert tokens == "echo: ping"
    assert events[-1][1]["messages"][-1]["content"] == "echo: ping"  # last values event: final state


def test_background_run_status_join_and_cancel(http: httpx.Client) -> None:
    tid = new_thread(http)
    slow = {"assistant_id": "slow", "input": {"messages": [{"role": "user", "content": "0.3"}]}}
    run = http.post(f"/threads/{tid}/runs", json=slow).json()
    assert run["status"] in ("pending", "running")
    busy = http.post(f"/threads/{tid}/runs", json=slow)
    assert busy.status_code == 409 and "in progress" in busy.json()["detail"]
    joined = http.get(f"/threads/{tid}/runs/{run['run_id']}/join").json()
    assert joined["messages"][-1]["content"] == "done napping"
    assert http.get(f"/threads/{tid}/runs/{run['run_id']}").json()["status"] == "success"

    run = http.post(f"/threads/{tid}/runs", json={**slow, "input": {"messages": [{"role": "user", "content": "5"}]}}).json()
    time.sleep(0.3)
    assert http.post(f"/threads/{tid}/runs/{run['run_id']}/cancel", params={"wait": True}).status_code == 204
    got = http.get(f"/threads/{tid}/runs/{run['run_id']}").json()
    assert got["status"] == "interrupted" and got["error"] == "cancelled"
    assert http.post(f"/threads/{tid}/runs/{run['run_id']}/cancel").status_code == 409  # nothing to cancel now
    assert http.get(f"/threads/{tid}").json()["status"] == "idle"


def test_join_stream_of_a_background_run_replays_from_the_start(http: httpx.Client) -> None:
    tid = new_thread(http)
    run = http.post(f"/threads/{tid}/runs", json={"assistant_id": "slow", "stream_mode": ["updates"],
                                                  "input": {"messages": [{"role": "user", "content": "0.3"}]}}).json()
    with http.stream("GET", f"/threads/{tid}/runs/{run['run_id']}/stream") as r:
        nodes = [next(iter(d)) for e, d in sse(r) if e == "updates"]
    assert nodes == ["model", "tools", "model"]


@pytest.mark.parametrize("action,expected", [
    ({"action": "approve"}, "result: 5"),
    ({"action": "edit", "args": {"expression": "2*3"}}, "result: 6"),
    ({"action": "reject", "reason": "no math today"}, "no math today"),
])
def test_human_approval_before_a_tool_call(http: httpx.Client, action: dict, expected: str) -> None:
    tid = new_thread(http)
    first = http.post(f"/threads/{tid}/runs/wait", json={
        "assistant_id": "calc", "input": {"messages": [{"role": "user", "content": "2+3"}]},
        "config": {"configurable": {"approve_tools": ["calculator"]}}}).json()
    pending = first["__interrupt__"][0]["value"]
    assert pending["tool_calls"][0]["args"] == {"expression": "2+3"}
    assert http.get(f"/threads/{tid}").json()["status"] == "interrupted"
    assert http.get(f"/threads/{tid}/state").json()["next"] == ["tools"]
    done = http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "calc", "command": {"resume": action}}).json()
    assert expected in done["messages"][-1]["content"]
    assert "__interrupt__" not in done


def test_a_bad_resume_value_pauses_again_saying_what_is_expected(http: httpx.Client) -> None:
    tid = new_thread(http)
    http.post(f"/threads/{tid}/runs/wait", json={
        "assistant_id": "calc", "input": {"messages": [{"role": "user", "content": "1+1"}]},
        "config": {"configurable": {"approve_tools": True}}})
    bad = http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "calc", "command": {"resume": {"action": "maybe"}}})
    assert "'approve'|'edit'|'reject'" in bad.json()["__interrupt__"][0]["value"]["error"]
    assert http.get(f"/threads/{tid}").json()["status"] == "interrupted"
    ok = http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "calc", "command": {"resume": "approve"}}).json()
    assert ok["messages"][-1]["content"] == "result: 2"


def test_stateless_runs(http: httpx.Client) -> None:
    assert http.post("/runs/wait", json=ECHO).json()["messages"][-1]["content"] == "echo: ping"
    with http.stream("POST", "/runs/stream", json={**ECHO, "stream_mode": "updates"}) as r:
        assert any(e == "updates" for e, _ in sse(r))
    r = http.post("/runs/wait", json={"assistant_id": "echo"})
    assert r.status_code == 422 and "input" in r.json()["detail"]


def test_trajectories_of_runs_list_fetch_and_export(http: httpx.Client) -> None:
    tid = new_thread(http)
    http.post(f"/threads/{tid}/runs/wait", json=ECHO)
    listed = http.get("/trajectories", params={"thread_id": tid}).json()
    assert len(listed) == 1 and listed[0]["final_answer"] == "echo: ping"
    traj = http.get(f"/trajectories/{listed[0]['run_id']}").json()
    assert traj["messages"][-1]["content"] == "echo: ping" and traj["metadata"]["assistant_id"] == "echo"
    lines = http.get("/trajectories/export", params={"thread_id": tid}).text.strip().splitlines()
    assert [json.loads(x)["run_id"] for x in lines] == [listed[0]["run_id"]]
    assert http.get("/trajectories/not-a-run").status_code == 404
    assert http.get("/trajectories", params={"status": "bogus"}).status_code == 422


def test_bad_requests_get_4xx_naming_the_problem(http: httpx.Client) -> None:
    r = http.post("/threads/x/runs/wait", json={"assistant_id": 3})
    assert r.status_code == 422 and "body.assistant_id" in r.json()["detail"]
    r = http.post(f"/threads/{new_thread(http)}/runs/wait", json={**ECHO, "assistant_id": "nope"})
    assert r.status_code == 404 and "echo" in r.json()["detail"]  # lists the assistants there are
    r = http.post("/threads/not-a-thread/runs/wait", json=ECHO)
    assert r.status_code == 404 and "not-a-thread" in r.json()["detail"]
    r = http.post("/threads", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = http.post("/threads", content=b"x" * 2_000_000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    r = http.post("/threads/search", json={"limit": 0})
    assert r.status_code == 422 and "limit" in r.json()["detail"]
    tid = new_thread(http)
    http.post(f"/threads/{tid}/runs/wait", json=ECHO)
    r = http.post(f"/threads/{tid}/runs/wait", json={**ECHO, "assistant_id": "calc"})
    assert r.status_code == 409 and "new thread" in r.json()["detail"]


def test_openapi_document_is_served_and_lists_the_api(http: httpx.Client) -> None:
    doc = http.get("/openapi.json").json()
    paths = doc["paths"]
    for p in ("/threads", "/threads/{thread_id}/runs/stream", "/threads/{thread_id}/runs/{run_id}/join",
              "/v1/chat/completions", "/v1/models", "/trajectories/export"):
        assert p in paths, p
    assert "RunCreate" in doc["components"]["schemas"]


def test_langgraph_sdk_client(server: Server) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server.url, api_key=None)
    assert {a["assistant_id"] for a in client.assistants.search()} == {"echo", "calc", "slow", "react"}
    thread = client.threads.create(metadata={"via": "sdk"})
    out = client.runs.wait(thread["thread_id"], "echo", input={"messages": [{"role": "user", "content": "hi"}]})
    assert out["messages"][-1]["content"] == "echo: hi"
    parts = list(client.runs.stream(thread["thread_id"], "echo", input={"messages": [{"role": "user", "content": "yo"}]},
                                    stream_mode=["updates", "values"]))
    assert parts[0].event == "metadata" and parts[-1].data["messages"][-1]["content"] == "echo: yo"
    assert client.threads.get_state(thread["thread_id"])["values"]["messages"][-1]["content"] == "echo: yo"
    run = client.runs.create(thread["thread_id"], "echo", input={"messages": [{"role": "user", "content": "bg"}]})
    assert client.runs.join(thread["thread_id"], run["run_id"])["messages"][-1]["content"] == "echo: bg"
    assert client.runs.get(thread["thread_id"], run["run_id"])["status"] == "success"
    # human in the loop through the SDK: interrupt, then resume with a Command
    t2 = client.threads.create()
    first = client.runs.wait(t2["thread_id"], "calc", input={"messages": [{"role": "user", "content": "4+4"}]},
                             config={"configurable": {"approve_tools": True}})
    assert first["__interrupt__"]
    done = client.runs.wait(t2["thread_id"], "calc", command={"resume": {"action": "approve"}})
    assert done["messages"][-1]["content"] == "result: 8"


def test_openai_client_against_an_agent(server: Server) -> None:
    from openai import NotFoundError, OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key="unused")
    assert {m.id for m in client.models.list()} == {"echo", "calc", "slow", "react"}
    reply = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content == "echo: hello" and reply.usage.completion_tokens > 0
    # the whole agent runs: the calc graph calls its tool, then answers
    reply = client.chat.completions.create(model="calc", messages=[{"role": "user", "content": "6*7"}])
    assert reply.choices[0].message.content == "result: 42"
    chunks = list(client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: hi"
    assert chunks[-1].choices[0].finish_reason == "stop"
    with pytest.raises(NotFoundError, match="no assistant"):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.model
def test_real_model_behind_the_openai_endpoint(tmp_path: Path) -> None:
    """The react graph on the embedded Qwen model, served, called with the openai client."""
    from openai import OpenAI

    with running(tmp_path) as s:
        client = OpenAI(base_url=s.url + "/v1", api_key="unused", timeout=300)
        reply = client.chat.completions.create(model="react", messages=[{"role": "user", "content": "What is 17 * 23 + 4?"}],
                                               temperature=0)
        assert "395" in reply.choices[0].message.content


@pytest.mark.parametrize("error,status", [("ModelError", 502), ("TrajectoryStoreError", 503), ("ManifestError", 400)])
def test_user_fixable_errors_map_to_a_status_with_their_message(error: str, status: int) -> None:
    import asyncio

    from starlette.requests import Request

    from agentrt.manifest import ManifestError
    from agentrt.models.base import ModelError
    from agentrt.server.app import _agentrt_error
    from agentrt.trajectory_store import TrajectoryStoreError

    exc = {"ModelError": ModelError, "TrajectoryStoreError": TrajectoryStoreError, "ManifestError": ManifestError}[error]
    request = Request({"type": "http", "path": "/threads", "headers": [], "method": "GET"})
    response = asyncio.run(_agentrt_error(request, exc("what went wrong, and what to do")))
    assert response.status_code == status
    assert json.loads(response.body)["detail"] == "what went wrong, and what to do"
