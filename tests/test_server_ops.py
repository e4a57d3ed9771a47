"""The server as an operator sees it: API keys, load beyond capacity, kill -9 and restart, and a
schema-driven fuzz run (schemathesis) against its OpenAPI document."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from agentrt.server.store import ServerStore
from tests.server.process import MANIFEST, Server, running


def nap_run(seconds: float) -> dict:
    return {"assistant_id": "slow", "input": {"messages": [{"role": "user", "content": str(seconds)}]}}


def make_key(data: Path, name: str) -> str:
    out = subprocess.run([sys.executable, "-m", "agentrt", "keys", "create", name, "--data", str(data)],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_api_keys_scope_threads_runs_and_trajectories(tmp_path: Path) -> None:
    alice, bob = make_key(tmp_path, "alice"), make_key(tmp_path, "bob")
    with running(tmp_path) as s:
        a = httpx.Client(base_url=s.url, headers={"X-API-Key": alice}, timeout=30)
        b = httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {bob}"}, timeout=30)
        anon = httpx.Client(base_url=s.url, timeout=30)
        r = anon.post("/threads", json={})
        assert r.status_code == 401 and "agentrt keys create" in r.json()["detail"]
        r = httpx.post(s.url + "/threads", json={}, headers={"X-API-Key": "art-wrong"})
        assert r.status_code == 401 and "not valid" in r.json()["detail"]

        tid = a.post("/threads", json={}).json()["thread_id"]
        a.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "echo", "input": {"messages": [
            {"role": "user", "content": "secret"}]}})
        assert b.get(f"/threads/{tid}").status_code == 404  # a foreign thread does not exist for bob
        assert b.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "echo", "input": None}).status_code == 404
        assert tid not in [t["thread_id"] for t in b.post("/threads/search", json={}).json()]
        assert b.get("/trajectories").json() == []
        run_id = a.get("/trajectories").json()[0]["run_id"]
        assert b.get(f"/trajectories/{run_id}").status_code == 404
        assert b.get("/trajectories/export").text == ""

        from openai import AuthenticationError, OpenAI

        ok = OpenAI(base_url=s.url + "/v1", api_key=bob).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hi"}])
        assert ok.choices[0].message.content == "echo: hi"
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=s.url + "/v1", api_key="art-wrong").models.list()
    # a revoked key is refused, the others still work
    bob_id = next(k["key_id"] for k in ServerStore(tmp_path / "server.sqlite").list_keys() if k["name"] == "bob")
    subprocess.run([sys.executable, "-m", "agentrt", "keys", "revoke", bob_id, "--data", str(tmp_path)], check=True)
    with running(tmp_path) as s:
        assert httpx.get(s.url + "/threads/x", headers={"X-API-Key": bob}).status_code == 401
        assert httpx.post(s.url + "/threads", json={}, headers={"X-API-Key": alice}).status_code == 200


def test_load_beyond_capacity_gets_503_with_retry_after(tmp_path: Path) -> None:
    with running(tmp_path, "--workers", "1", "--queue-size", "1") as s:
        http = httpx.Client(base_url=s.url, timeout=30)
        statuses: list[int] = []

        def post() -> None:
            r = http.post("/runs/wait", json=nap_run(1.0))
            statuses.append(r.status_code)
            if r.status_code == 503:
                assert r.headers["Retry-After"] == "1" and "busy" in r.json()["detail"]

        clients = [threading.Thread(target=post) for _ in range(4)]
        for c in clients:
            c.start()
            time.sleep(0.05)
        for c in clients:
            c.join()
        assert sorted(statuses) == [200, 200, 503, 503]
        assert http.get("/ok").status_code == 200  # still serving


def test_kill_9_keeps_threads_and_trajectories_and_interrupted_runs_resume(tmp_path: Path) -> None:
    server = Server(tmp_path).start()
    http = httpx.Client(base_url=server.url, timeout=30)
    quick, slow = [], []
    for seconds, bucket in [(0.01, quick)] * 3 + [(3.0, slow)] * 3:
        tid = http.post("/threads", json={"metadata": {"batch": 1}}).json()["thread_id"]
        run = http.post(f"/threads/{tid}/runs", json=nap_run(seconds)).json()
        bucket.append((tid, run["run_id"]))
    for tid, run_id in quick:
        assert http.get(f"/threads/{tid}/runs/{run_id}/join").json()["messages"][-1]["content"] == "done napping"
    time.sleep(1.0)  # the slow runs are inside their tool call now
    server.kill9()

    with running(tmp_path) as again:
        http = httpx.Client(base_url=again.url, timeout=30)
        threads = {t["thread_id"]: t for t in http.post("/threads/search", json={"metadata": {"batch": 1},
                                                                                 "limit": 100}).json()}
        assert set(threads) == {tid for tid, _ in quick + slow}
        for tid, run_id in quick:
            assert http.get(f"/threads/{tid}/runs/{run_id}").json()["status"] == "success"
            traj = http.get(f"/trajectories/{run_id}").json()
            assert traj["status"] == "completed" and traj["final_answer"] == "done napping"
            assert [e["node"] for e in traj["events"]] == ["model", "tools", "model"]
        for tid, run_id in slow:
            run = http.get(f"/threads/{tid}/runs/{run_id}").json()
            assert run["status"] == "interrupted" and "resume" in run["error"]
            assert threads[tid]["status"] == "interrupted"
            assert http.get(f"/trajectories/{run_id}").json()["status"] == "interrupted"
            assert http.get(f"/threads/{tid}/state").json()["next"] == ["tools"]  # the last checkpoint
        tid, _ = slow[0]
        resumed = http.post(f"/threads/{tid}/runs/wait", json={"assistant_id": "slow", "input": None}).json()
        assert resumed["messages"][-1]["content"] == "done napping"
        assert [m["type"] for m in resumed["messages"]] == ["human", "ai", "tool", "ai"]  # nothing ran twice


def test_schemathesis_finds_no_server_errors(tmp_path: Path) -> None:
    manifest = MANIFEST.parent / "fuzz_manifest.json"
    with running(tmp_path, manifest=manifest) as s:
        server = s
        out = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", s.url + "/openapi.json", "--checks", "not_a_server_error",
             "--max-examples", "15", "--seed", "7", "--no-color", "--phases", "coverage,fuzzing",
             "--suppress-health-check", "all", "--request-timeout", "30"],
            capture_output=True, text=True, timeout=600, check=False,
        )
    summary = out.stdout[-3000:]
    assert "Server error" not in out.stdout, summary
    assert out.returncode == 0, summary
    assert "Traceback" not in server.output(), server.output()[-3000:]  # nor one after a response began
