"""Attacks on a served agentrt, each run against the real server process and the real tools; a
test fails if its attack succeeds.

The attacker holds a valid API key and controls what the model does (here a scripted model that
passes the user's message to a tool, as a steered model would). The operator's secrets sit
where they would: API keys in the server's environment, a ``.env`` in its working folder.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.process import MANIFEST, Server, running
from tests.test_server_ops import make_key

SECURITY_MANIFEST = MANIFEST.parent / "security_manifest.json"
OPERATOR_KEY = "art-operator-secret-4242"
OPENAI_KEY = "sk-operator-openai-4242"
DOTENV_SECRET = "DB_PASSWORD=dotenv-secret-4242"


class Recorder:
    """A loopback TCP/HTTP listener that records who connected: the attacker's "own server", and
    the place a sandbox escape would reach. Answers like an OpenAI-compatible endpoint."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.requests.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                                          "body": body})
                reply = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                    "choices": [{"index": 0, "finish_reason": "stop",
                                                 "message": {"role": "assistant", "content": "attacker says hi"}}],
                                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def do_GET(self) -> None:
                recorder.requests.append({"path": self.path, "authorization": self.headers.get("Authorization")})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def attacker() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, attacker: Recorder) -> Iterator[tuple[Server, httpx.Client]]:
    """The server with keys on, secrets in its environment and working folder, and the attacker's
    endpoint allowed for one graph only (``react``), as an operator might for a model server."""
    home = tmp_path_factory.mktemp("operator")
    (home / ".env").write_text(DOTENV_SECRET + "\n")
    files = home / "files"
    files.mkdir()
    (files / "notes.txt").write_text("public notes\n")
    (files / "escape").symlink_to(home / ".env")
    data = home / "data"
    key = make_key(data, "mallory")
    env = {"AGENTRT_API_KEY": OPERATOR_KEY, "OPENAI_API_KEY": OPENAI_KEY, "AGENTRT_FILES_ROOT": str(files)}
    env.pop("AGENTRT_API_BASE", None)
    with running(data, manifest=SECURITY_MANIFEST, env=env, cwd=home) as s:
        with httpx.Client(base_url=s.url, headers={"X-API-Key": key}, timeout=60) as client:
            yield s, client


def run(client: httpx.Client, graph: str, text: str, **config: Any) -> httpx.Response:
    body: dict[str, Any] = {"assistant_id": graph, "input": {"messages": [{"role": "user", "content": text}]}}
    if config:
        body["config"] = {"configurable": config}
    return client.post("/runs/wait", json=body)


def tool_output(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["messages"][-1]["content"]


# --------------------------------------------------------------------------- models a client names


@pytest.mark.parametrize("model", [
    "http://127.0.0.1:{port}/v1#m",  # a model server the attacker runs: it would decide every tool call
    "openai:gpt-4o",  # the operator's OpenAI key
    "local:qwen2.5-coder-0.5b+../../../tmp/evil",  # weights from any folder
    "/etc",  # a path spec
])
def test_a_client_cannot_choose_a_model_the_operator_did_not_allow(served, attacker: Recorder, model: str) -> None:
    _, client = served
    before = len(attacker.requests)
    r = run(client, "echo", "hi", model=model.format(port=attacker.port))
    assert r.status_code == 403, r.text
    assert "scripted:echo" in r.json()["detail"] and "scripted:exec" in r.json()["detail"]  # the allowed list
    assert len(attacker.requests) == before
    assert run(client, "echo", "hi", model="scripted:exec").status_code == 200  # the manifest's `models`


def test_a_null_model_keeps_the_graphs_own(served) -> None:
    """``"model": null`` must not unset the operator's model and fall back to a built-in default."""
    _, client = served
    r = run(client, "echo", "hi", model=None)
    assert r.status_code == 200 and r.json()["messages"][-1]["content"] == "echo: hi"


def test_a_client_cannot_name_paths_in_other_settings(served) -> None:
    _, client = served
    for key, value in [("critic", "/etc"), ("subgoal_critic", "../../.agentrt/critics/x"), ("index", "~/.ssh")]:
        r = run(client, "echo", "hi", **{key: value})
        assert r.status_code == 403 and "registered names" in r.json()["detail"], r.text
    assert "filesystem" not in run(client, "echo", "hi", critic="/definitely/not/there").text.replace(
        "filesystem paths", "")  # the refusal says nothing about what exists


def test_operator_keys_go_only_to_their_own_endpoint(tmp_path: Path, attacker: Recorder) -> None:
    """Even a model endpoint the operator allowed gets no key unless the key is configured for it."""
    data = tmp_path / "data"
    spec = f"{attacker.url}#m"
    for base, expected in [(None, None), (attacker.url, f"Bearer {OPERATOR_KEY}")]:
        env = {"AGENTRT_API_KEY": OPERATOR_KEY, **({"AGENTRT_API_BASE": base} if base else {})}
        with running(data, "--allow-model", spec, manifest=SECURITY_MANIFEST, env=env) as s:
            before = len(attacker.requests)
            r = run(httpx.Client(base_url=s.url, timeout=60), "react", "hi", model=spec)
            assert r.status_code == 200, r.text
            sent = attacker.requests[before:]
            assert sent and all(req["authorization"] in (expected, "Bearer not-needed") for req in sent)
            assert all(OPERATOR_KEY not in (req["authorization"] or "") for req in sent) or expected


def test_loaded_models_are_bounded() -> None:
    from agentrt.models import registry

    registry.set_max_loaded(2)
    try:
        for port in range(1, 6):
            registry.load_model(f"http://127.0.0.1:{port}/v1#m")
        assert [registry.is_loaded(f"http://127.0.0.1:{p}/v1#m") for p in range(1, 6)] == [False] * 3 + [True] * 2
    finally:
        registry.set_max_loaded(None)


def test_adapters_are_named_never_paths(tmp_path: Path) -> None:
    from agentrt.models import adapters
    from agentrt.models.base import ModelError

    (tmp_path / "adapter_config.json").write_text("{}")
    for ref in (str(tmp_path), "../x", "a/b", "~"):  # refused by its form, before any file is looked at
        with pytest.raises(ModelError, match="must be letters, digits"):
            adapters.resolve(ref)


# --------------------------------------------------------------------------- python_exec


def escape(client: httpx.Client, code: str) -> str:
    return tool_output(run(client, "exec", code))


def test_python_exec_has_no_network_by_any_route(served, attacker: Recorder) -> None:
    _, client = served
    before = len(attacker.requests)
    port = attacker.port
    attempts = [
        f"import _socket; s = _socket.socket(); s.connect(('127.0.0.1', {port})); print('CONNECTED')",
        f"import importlib, socket; importlib.reload(socket); socket.create_connection(('127.0.0.1', {port}));"
        " print('CONNECTED')",
        f"import subprocess; print(subprocess.run(['python3', '-c', \"import socket; "
        f"socket.create_connection(('127.0.0.1', {port})); print('CONNECTED')\"], capture_output=True, text=True))",
        "import ctypes, struct; libc = ctypes.CDLL(None); fd = libc.socket(2, 1, 0); "
        f"addr = struct.pack('!HH4s8x', 2, {port}, bytes([127, 0, 0, 1])); "
        "r = libc.connect(fd, addr, 16); print('CONNECTED' if r == 0 else 'refused')",
        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/v1/x', timeout=2); print('CONNECTED')",
    ]
    for code in attempts:
        assert "CONNECTED" not in escape(client, code).replace("print('CONNECTED')", ""), code
    assert len(attacker.requests) == before  # nothing reached the host's loopback


def test_python_exec_cannot_read_or_write_the_host(served, tmp_path: Path) -> None:
    server, client = served
    outside = tmp_path / "host-file.txt"
    outside.write_text("host secret\n")
    out = escape(client, f"print(open({str(outside)!r}).read())")
    assert "host secret" not in out and "No such file" in out
    out = escape(client, "print(open('.env').read())")  # the server's working folder is not there
    assert "dotenv-secret" not in out
    out = escape(client, f"open({str(tmp_path / 'planted')!r}, 'w').write('x'); print('WROTE')")
    assert not (tmp_path / "planted").exists()
    out = escape(client, "import os\nfor p in os.listdir('/proc'):\n    try: print(open(f'/proc/{p}/environ').read())\n"
                         "    except Exception: pass")
    assert OPERATOR_KEY not in out and OPENAI_KEY not in out
    out = escape(client, "import os; print(sorted(os.environ))")
    assert "AGENTRT" not in out and "OPENAI" not in out
    for where in ("/dev/shm/fill", "/dev/fill", "/x"):  # only the size-capped /tmp is writable
        out = escape(client, f"open({where!r}, 'wb').write(b'x' * 1024); print('WROTE')")
        assert "WROTE" not in out.replace("print('WROTE')", "") and "Read-only file system" in out, (where, out)
    out = escape(client, "import os; print(os.getuid(), os.geteuid())")
    assert out.split("] ", 1)[1].strip() == "65534 65534"


def test_python_exec_cannot_signal_the_server_or_outlive_its_call(served) -> None:
    server, client = served
    assert server.proc is not None
    out = escape(client, f"import os, signal\nfor pid in ({server.proc.pid}, {os.getpid()}, 1):\n"
                         "    try: os.kill(pid, signal.SIGKILL); print('killed', pid)\n"
                         "    except ProcessLookupError: print('no such process', pid)")
    assert f"no such process {server.proc.pid}" in out
    assert server.proc.poll() is None and client.get("/ok").status_code == 200
    marker = f"{time.time_ns() % 10**9}.75"
    escape(client, f"import subprocess\nsubprocess.Popen(['setsid', 'sleep', '{marker}'], start_new_session=True)\n"
                   "print('left behind')")
    time.sleep(0.5)
    assert not host_processes_with(marker)


def test_python_exec_limits_processes(served) -> None:
    _, client = served
    out = escape(client, "import os\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
                         "            import time; time.sleep(5); os._exit(0)\n        n += 1\n"
                         "except OSError as e: print('stopped after', n, e.strerror)")
    assert "stopped after" in out and int(out.split("stopped after ")[1].split()[0]) < 64


def test_python_exec_refuses_to_run_without_its_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module("agentrt.tools.python_exec")  # the module, not the tool `tools` exports

    monkeypatch.setattr(module, "_works", False)  # as on a host where the probe has not passed yet
    monkeypatch.setattr(module.shutil, "which", lambda name: None if name == "bwrap" else "/usr/bin/" + name)
    with pytest.raises(module.SandboxUnavailable, match="bubblewrap"):
        module.run_python("print(1)", timeout_s=2, memory_mb=128, max_output_chars=100)


def host_processes_with(text: str) -> list[int]:
    from tests.test_builtin_tools import host_processes_with as find

    return find(text)


# --------------------------------------------------------------------------- read_file


def test_read_file_stays_in_its_folder(served) -> None:
    _, client = served
    assert "public notes" in tool_output(run(client, "files", "notes.txt"))
    for path in ("../.env", "escape", "/etc/passwd", "files/../../.env", str(Path.cwd() / ".env")):
        out = tool_output(run(client, "files", path))
        assert out.startswith("[error]") and "dotenv-secret" not in out and "root:" not in out, (path, out)


def test_read_file_survives_a_symlink_swapped_in_during_the_call(tmp_path: Path) -> None:
    from agentrt.tools.read_file import read_below

    root, secret = tmp_path / "root", tmp_path / "secret.txt"
    root.mkdir()
    secret.write_text("TOP SECRET")
    (root / "sub").mkdir()
    (root / "sub" / "f.txt").write_text("fine")
    stop = threading.Event()

    def swap() -> None:  # flip root/dir between a real folder and a link to outside
        real, link = root / "dir", root / "dir.link"
        while not stop.is_set():
            try:
                os.symlink(tmp_path, link)
                os.replace(link, real)  # dir is now a link to the folder holding secret.txt
                os.unlink(real)
                os.symlink(root / "sub", link)
                os.replace(link, real)
                os.unlink(real)
                (root / "dir").mkdir()
                (root / "dir" / "secret.txt").write_text("inside")
                (root / "dir" / "secret.txt").unlink()
                (root / "dir").rmdir()
            except OSError:
                pass

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    leaks = 0
    try:
        for _ in range(3000):
            try:
                leaks += "TOP SECRET" in read_below(root, "dir/secret.txt", 1000)
            except (ValueError, PermissionError):
                pass
    finally:
        stop.set()
        swapper.join()
    assert leaks == 0


# --------------------------------------------------------------------------- http_get


def test_http_get_refuses_tunnelled_private_addresses() -> None:
    from ipaddress import ip_address

    from agentrt.tools.http_get import is_public

    for private in ["::ffff:127.0.0.1", "2002:7f00:1::1", "2002:a00:1::", "2001:0:4136:e378:8000:63bf:f5ff:fffe",
                    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "::127.0.0.1", "fd00::1", "169.254.169.254"]:
        assert not is_public(ip_address(private)), private
    for public in ["93.184.216.34", "2606:4700::1111", "2002:5db8:d822::1", "64:ff9b::5db8:d822"]:
        assert is_public(ip_address(public)), public


def test_http_get_connects_to_the_address_it_checked(monkeypatch: pytest.MonkeyPatch, attacker: Recorder) -> None:
    """DNS rebinding: the name resolves to a public address when checked, then to loopback. The
    tool looks it up once and connects there, so the loopback server never sees a request."""
    module = importlib.import_module("agentrt.tools.http_get")

    real, lookups = socket.getaddrinfo, []

    def rebinding(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        address = "192.0.2.1" if len(lookups) == 1 else "127.0.0.1"  # TEST-NET: public-looking, unroutable
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(module, "is_public", lambda a: str(a) == "192.0.2.1")
    before = len(attacker.requests)
    with pytest.raises(ValueError):
        module.fetch(f"http://rebind.test:{attacker.port}/v1/x", allow_private=False, max_bytes=1000, timeout_s=1.5,
                     allowed_hosts=None)
    assert lookups == ["rebind.test"] and len(attacker.requests) == before


def test_http_get_has_one_deadline_for_a_trickling_server() -> None:
    """A server that sends one header line every 0.5 s never trips a per-read timeout."""
    from agentrt.tools.http_get import make_http_get

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def trickle() -> None:
        conn, _ = listener.accept()
        conn.recv(4096)
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            for i in range(100):
                conn.sendall(f"X-Slow-{i}: 1\r\n".encode())
                time.sleep(0.5)
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(ValueError, match="timed out"):
        make_http_get(allow_private=True, timeout_s=2.0).func(f"http://127.0.0.1:{port}/")  # type: ignore[attr-defined]
    assert time.monotonic() - started < 3.5
    listener.close()


def test_http_get_through_the_server_cannot_reach_loopback(served, attacker: Recorder) -> None:
    _, client = served
    before = len(attacker.requests)
    for url in (f"http://127.0.0.1:{attacker.port}/v1/x", f"http://[::ffff:127.0.0.1]:{attacker.port}/",
                f"http://localhost:{attacker.port}/", "http://169.254.169.254/latest/meta-data/"):
        out = tool_output(run(client, "fetch", url))
        assert out.startswith("[error]") and "non-public" in out, (url, out)
    assert len(attacker.requests) == before


# --------------------------------------------------------------------------- crashes and bad requests


def test_damaged_store_files_are_named_at_start_up(tmp_path: Path) -> None:
    for name in ("server.sqlite", "trajectories.sqlite", "checkpoints.sqlite"):
        data = tmp_path / name.split(".")[0]
        data.mkdir()
        (data / name).write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
        out = subprocess.run([sys.executable, "-m", "agentrt", "serve", "--manifest", str(MANIFEST), "--data",
                              str(data), "--port", "1"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "COLUMNS": "300"})
        assert out.returncode == 2, out.stderr
        assert str(data / name) in " ".join(out.stderr.split()) and "Traceback" not in out.stderr
        assert "Move it aside" in out.stderr


def test_another_keys_thread_id_is_simply_yours(tmp_path: Path) -> None:
    alice, bob = make_key(tmp_path, "alice"), make_key(tmp_path, "bob")
    with running(tmp_path) as s:
        a = httpx.Client(base_url=s.url, headers={"X-API-Key": alice}, timeout=30)
        b = httpx.Client(base_url=s.url, headers={"X-API-Key": bob}, timeout=30)
        echo = {"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "alice's"}]}}
        assert a.post("/threads/shared-name/runs/wait", json={**echo, "if_not_exists": "create"}).status_code == 200
        r = b.post("/threads/shared-name/runs/wait", json={**echo, "if_not_exists": "create",
                                                          "input": {"messages": [{"role": "user", "content": "bob's"}]}})
        assert r.status_code == 200 and [m["content"] for m in r.json()["messages"]] == ["bob's", "echo: bob's"]
        assert b.post("/threads", json={"thread_id": "shared-name"}).status_code == 409  # bob's own now
        assert a.post("/threads", json={"thread_id": "other"}).status_code == 200
        assert b.post("/threads", json={"thread_id": "other"}).status_code == 200  # no hint that alice has one
        state = a.get("/threads/shared-name/state").json()
        assert [m["content"] for m in state["values"]["messages"]] == ["alice's", "echo: alice's"]
        assert state["checkpoint"]["thread_id"] == "shared-name"
        bad = b.post("/threads/no spaces!/runs/wait", json={**echo, "if_not_exists": "create"})
        assert bad.status_code == 422 and "letters, digits" in bad.json()["detail"]


def test_hostile_bodies_get_4xx_and_nothing_stored_breaks_a_read(tmp_path: Path) -> None:
    deep: dict[str, Any] = {}
    cur = deep
    for _ in range(900):
        cur["a"] = {}
        cur = cur["a"]
    with running(tmp_path, "--max-body-bytes", "20000") as s:
        http = httpx.Client(base_url=s.url, timeout=30)
        surrogate = '{"metadata": {"note": "x\\ud800y", "\\udfff": "k"}}'
        r = http.post("/threads", content=surrogate, headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        tid = r.json()["thread_id"]
        assert http.get(f"/threads/{tid}").json()["metadata"] == {"note": "x\ufffdy", "\ufffd": "k"}
        assert http.post("/threads/search", json={}).status_code == 200
        r = http.post("/threads", json={"metadata": deep})
        assert r.status_code == 422 and "64 levels" in r.text
        assert http.post("/threads/search", json={"limit": 100}).status_code == 200
        # chunked (no Content-Length) and over the limit: 413, not a 400 or a 500
        r = http.post("/threads", content=iter([b'{"metadata": {"x": "' + b"a" * 30000 + b'"}}']),
                      headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "limit of 20000 bytes" in r.json()["detail"]
        # the OpenAI face: a lone surrogate in a message, streamed and not
        body = ('{"model": "echo", "messages": [{"role": "user", "content": "hi \\udc80 there"}], '
                '"stream": %s}')
        r = http.post("/v1/chat/completions", content=body % "false", headers={"Content-Type": "application/json"})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "echo: hi \ufffd there"
        r = http.post("/v1/chat/completions", content=body % "true", headers={"Content-Type": "application/json"})
        assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
        for hostile in ['{"assistant_id": "echo", "config": {"configurable": "x"}, "input": {}}',
                        '{"assistant_id": "echo", "config": {"configurable": {"model": ["a"]}}, "input": {}}',
                        '{"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "\\u0000"}]}}',
                        '[1, 2, 3]', '{"assistant_id": 5}', "{" * 5000]:
            r = http.post("/runs/wait", content=hostile, headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500 or r.status_code == 200, (hostile[:60], r.status_code, r.text[:300])
        # found by review: NaN/Infinity (Python's json reads them; SQLite's JSON functions then fail),
        # a non-object config.metadata, a list as graph_id, a non-string checkpoint id
        for path, body in [("/threads/search", '{"metadata": {"a": NaN}}'), ("/threads", '{"metadata": {"a": Infinity}}'),
                           ("/runs/wait", '{"assistant_id": "echo", "input": {}, "config": {"configurable": {"x": NaN}}}'),
                           ("/runs/wait", '{"assistant_id": "echo", "input": {}, "config": {"metadata": "x"}}')]:
            r = http.post(path, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (path, body, r.status_code, r.text[:200])
        tid = http.post("/threads", json={"metadata": {"graph_id": ["x"]}}).json()["thread_id"]
        assert http.get(f"/threads/{tid}").status_code == 200 and http.get(f"/threads/{tid}/state").status_code == 200
        r = http.post(f"/threads/{tid}/history", json={"before": {"checkpoint_id": {}}})
        assert r.status_code == 422
        assert http.get("/trajectories/export").status_code == 200  # every record stays readable
        assert "Traceback" not in s.output(), s.output()[-3000:]


def test_a_slow_client_gets_408_when_its_headers_do_not_arrive(tmp_path: Path) -> None:
    with running(tmp_path, "--header-timeout", "1") as s:
        conn = socket.create_connection(("127.0.0.1", s.port))
        conn.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
        started, received = time.monotonic(), b""
        conn.settimeout(0.3)
        while time.monotonic() - started < 6:
            try:
                conn.sendall(b"X-Trickle: 1\r\n")
                chunk = conn.recv(4096)
                if not chunk:
                    break
                received += chunk
            except TimeoutError:
                continue
            except OSError:
                break
        assert received.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 3
        assert httpx.get(s.url + "/ok").status_code == 200


def test_kill_9_loses_no_queued_run(tmp_path: Path) -> None:
    server = Server(tmp_path, "--workers", "1").start()
    http = httpx.Client(base_url=server.url, timeout=30)
    acked = []
    for seconds in [3.0] + [0.01] * 8:
        tid = http.post("/threads", json={}).json()["thread_id"]
        r = http.post(f"/threads/{tid}/runs", json={"assistant_id": "slow", "input": {
            "messages": [{"role": "user", "content": str(seconds)}]}})
        assert r.status_code == 200
        acked.append((tid, r.json()["run_id"]))
    time.sleep(0.5)  # the first is inside its tool call; the other eight wait in the queue
    server.kill9()
    with running(tmp_path) as again:
        http = httpx.Client(base_url=again.url, timeout=30)
        first_tid, first = acked[0]
        assert http.get(f"/threads/{first_tid}/runs/{first}").json()["status"] == "interrupted"
        for tid, run_id in acked[1:]:
            joined = http.get(f"/threads/{tid}/runs/{run_id}/join").json()
            assert joined["messages"][-1]["content"] == "done napping", joined
            run = http.get(f"/threads/{tid}/runs/{run_id}").json()
            assert run["status"] == "success"
            assert [m["type"] for m in joined["messages"]] == ["human", "ai", "tool", "ai"]


def test_sigterm_marks_runs_in_progress_and_exits_promptly(tmp_path: Path) -> None:
    server = Server(tmp_path, "--graceful-timeout", "1").start()
    http = httpx.Client(base_url=server.url, timeout=30)
    tid = http.post("/threads", json={}).json()["thread_id"]
    run_id = http.post(f"/threads/{tid}/runs", json={"assistant_id": "slow", "input": {
        "messages": [{"role": "user", "content": "25"}]}}).json()["run_id"]
    time.sleep(0.5)
    assert server.proc is not None
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=15)
    assert time.monotonic() - started < 6
    with running(tmp_path) as again:
        run = httpx.get(f"{again.url}/threads/{tid}/runs/{run_id}").json()
        assert run["status"] == "interrupted"
        assert httpx.get(f"{again.url}/trajectories/{run_id}").json()["status"] == "interrupted"
