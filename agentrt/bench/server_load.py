"""Load benchmark of ``agentrt serve`` against LangGraph's development server on the same graph.

Each client loops over thread+run cycles (``POST /threads`` then ``POST /threads/{id}/runs/wait``),
the cycle LangGraph's own load tests use, on ``graphs/react.py`` with the zero-latency
``scripted:echo`` model, so the figures measure the servers, not a model. Both servers run pinned
to one core and the load client to another (``taskset``), each server with its persistence:
agentrt's SQLite checkpointer, trajectories and run records; ``langgraph dev``'s in-memory
store. The client is aiohttp in its own process (httpx saturates a core first). After the
levels, the highest level runs again, with every thread of the earlier levels still stored, to
show whether throughput decays as threads accumulate.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

RUN_BODY = {
    "assistant_id": "react",
    "input": {"messages": [{"role": "user", "content": "ping"}]},
    "config": {"configurable": {"model": "scripted:echo"}},
}


class LoadResult(BaseModel):
    server: str
    clients: int
    cycles: int
    errors: int
    seconds: float
    threads_before: int
    p50_ms: float
    p99_ms: float

    @property
    def per_s(self) -> float:
        return self.cycles / self.seconds if self.seconds else 0.0


async def _client_loop(url: str, clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:
        start = time.perf_counter()
        measure_from, stop_at = start + warmup, start + warmup + seconds

        async def one() -> None:
            nonlocal errors
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                try:
                    async with http.post("/threads", json={}) as r:
                        thread = await r.json()
                        ok = r.status == 200
                    if ok:
                        async with http.post(f"/threads/{thread['thread_id']}/runs/wait", json=RUN_BODY) as r:
                            body = await r.json()
                            ok = r.status == 200 and "__error__" not in body and len(body.get("messages", [])) >= 2
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop_at:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1

        await asyncio.gather(*(one() for _ in range(clients)))
    latencies.sort()
    return {
        "cycles": len(latencies), "errors": errors, "seconds": seconds,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan"),
    }


def client_main(argv: list[str]) -> None:
    """``python -m agentrt.bench.server_load URL CLIENTS SECONDS WARMUP``: one load level, JSON out."""
    url, clients, seconds, warmup = argv[0], int(argv[1]), float(argv[2]), float(argv[3])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_client_loop(url, clients, seconds, warmup))))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pin(cores: str | None) -> list[str]:
    return ["taskset", "-c", cores] if cores and shutil.which("taskset") else []


def _wait_ready(url: str, proc: subprocess.Popen[bytes], path: str, timeout: float = 90.0) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(url + path, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the server at {url} was not ready after {timeout:.0f} s")


def start_agentrt(manifest: Path, data_dir: Path, core: str | None, workers: int) -> tuple[str, subprocess.Popen[bytes]]:
    port = _free_port()
    cmd = [*_pin(core), sys.executable, "-m", "agentrt", "serve", "--manifest", str(manifest), "--data",
           str(data_dir), "--port", str(port), "--workers", str(workers), "--no-require-key",
           "--allow-model", RUN_BODY["config"]["configurable"]["model"]]  # the operator allows the echo model
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc, "/ok")
    return url, proc


def start_langgraph_dev(manifest: Path, core: str | None) -> tuple[str, subprocess.Popen[bytes]]:
    exe = shutil.which("langgraph") or str(Path(sys.executable).parent / "langgraph")
    if not Path(exe).exists():
        raise RuntimeError("langgraph dev is not installed: pip install 'langgraph-cli[inmem]' (the bench extra)")
    port = _free_port()
    env = {**os.environ, "LANGSMITH_TRACING": "false", "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGCHAIN_TRACING_V2": "false"}
    cmd = [*_pin(core), exe, "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port),
           "--config", str(manifest)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=manifest.parent,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc, "/ok", timeout=180)
    return url, proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_level(url: str, clients: int, seconds: float, warmup: float, client_core: str | None) -> dict[str, Any]:
    cmd = [*_pin(client_core), sys.executable, "-m", "agentrt.bench.server_load", url, str(clients), str(seconds),
           str(warmup)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(
    levels: list[int], seconds: float, warmup: float, *, servers: list[str], manifest: Path,
    server_core: str | None = "0", client_core: str | None = "1", workers: int = 8,
    progress: Any = None,
) -> list[LoadResult]:
    results: list[LoadResult] = []
    for name in servers:
        with tempfile.TemporaryDirectory(prefix="agentrt-load-") as tmp:
            if name == "agentrt":
                url, proc = start_agentrt(manifest, Path(tmp), server_core, workers)
            else:
                url, proc = start_langgraph_dev(manifest, server_core)
            try:
                threads = 0
                for clients in [*levels, levels[-1]]:
                    row = run_level(url, clients, seconds, warmup, client_core)
                    results.append(LoadResult(server=name, clients=clients, threads_before=threads, **row))
                    threads += row["cycles"] + row["errors"]  # at least these threads exist now
                    if progress:
                        progress(results[-1])
            finally:
                _stop(proc)
    return results


if __name__ == "__main__":
    client_main(sys.argv[1:])
