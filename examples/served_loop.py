"""The closed loop, measured: serve an agent, run it through LangGraph's SDK, judge each run by its
answer (feedback), fine-tune a LoRA adapter on the runs judged right, serve the adapter, and ask
again, base against tuned, on the training questions and on questions it never saw.

    python examples/served_loop.py                  # react on the embedded Qwen 0.5B, ~10 minutes on 2 cores
    python examples/served_loop.py --name my-calc   # adapter name (each run adds a version)

Everything lives in a scratch folder (--work), so the user's own store and adapters are untouched.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from langgraph_sdk import get_sync_client

TRAIN = [("What is 17 * 23 + 4?", "395"), ("What is 2**20?", "1048576"), ("What is 123 * 456?", "56088"),
         ("What is 99 squared?", "9801"), ("What is 7 factorial?", "5040"), ("What is 1000 / 8?", "125"),
         ("What is 3 to the power 7?", "2187"), ("What is 12 * 12 * 12?", "1728")]
UNSEEN = [("What is 45 * 67?", "3015"), ("What is 5000 / 4?", "1250"), ("What is 2 to the power 16?", "65536"),
          ("What is 81 squared?", "6561")]


def serve(work: Path, env: dict[str, str], *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "agentrt", "serve", "--data", str(work / "data"), "--port", str(port),
                             *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/ok", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def ask(url: str, questions: list[tuple[str, str]], model: str | None, feedback: bool) -> tuple[int, int]:
    """(right answers, invalid tool calls); with ``feedback``, each run is judged ``correct`` 1 or 0."""
    sdk = get_sync_client(url=url, api_key=None)
    right = invalid = 0
    for question, answer in questions:
        config = {"configurable": {"model": model}} if model else None
        out = sdk.runs.wait(None, "react", input={"messages": [{"role": "user", "content": question}]}, config=config)
        ok = answer in str(out["messages"][-1]["content"]).replace(",", "")
        run = httpx.get(url + "/trajectories", params={"graph": "react", "limit": 1}).json()[0]
        invalid += httpx.get(f"{url}/trajectories/{run['run_id']}").json()["tool_summary"]["invalid"]
        if feedback:
            httpx.post(f"{url}/runs/{run['run_id']}/feedback", json={"key": "correct", "score": int(ok)})
        right += ok
    return right, invalid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("served-loop"))
    parser.add_argument("--name", default="react-calc")
    parser.add_argument("--base", default="local:qwen2.5-coder-0.5b")
    args = parser.parse_args()
    env = {**os.environ, "AGENTRT_HOME": str(args.work / "home")}
    proc, url = serve(args.work, env)
    try:
        right, invalid = ask(url, TRAIN, None, feedback=True)
    finally:
        proc.terminate()
        proc.wait()
    print(f"collected {len(TRAIN)} runs: {right} judged correct, {invalid} invalid tool calls")
    started = time.time()
    subprocess.run([sys.executable, "-m", "agentrt", "rft", "train", "--name", args.name, "--model", args.base,
                    "--store", str(args.work / "data" / "trajectories.sqlite"), "--graph", "react",
                    "--min-feedback", "1"], env=env, check=True)
    print(f"fine-tuning took {time.time() - started:.0f} s")
    tuned = f"{args.base}+{args.name}"
    proc, url = serve(args.work, env, "--allow-model", tuned)
    try:
        print(f"{'':8} {'train questions':>16} {'unseen questions':>17} {'invalid tool calls':>19}")
        for label, model in (("base", None), ("tuned", tuned)):
            seen, bad_seen = ask(url, TRAIN, model, feedback=False)
            unseen, bad_unseen = ask(url, UNSEEN, model, feedback=False)
            print(f"{label:8} {seen:>10}/{len(TRAIN):<5} {unseen:>11}/{len(UNSEEN):<5} {bad_seen + bad_unseen:>19}")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
