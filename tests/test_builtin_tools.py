"""The built-in tools, called through ``.invoke({...})`` as the runtime calls them.

Everything runs for real: python_exec starts interpreters, http_get talks to a local HTTP
server started here (reachable only with ``allow_private=True``), read_file reads a temporary
directory. No outside network is needed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from agentrt.tools import (
    BUILTIN_TOOLS,
    calculator,
    http_get,
    make_http_get,
    make_python_exec,
    make_read_file,
    read_file,
)

from agentrt.tool import tool_timeout

# ---------------------------------------------------------------------------------- registry


def test_builtin_tools_are_registered_by_name() -> None:
    assert set(BUILTIN_TOOLS) == {"calculator", "python_exec", "http_get", "read_file", "search"}
    for name, t in BUILTIN_TOOLS.items():
        assert t.name == name
        assert t.description  # the model needs it


def test_python_exec_tool_timeout_exceeds_its_subprocess_limit() -> None:
    assert tool_timeout(make_python_exec(timeout_s=3)) > 3


# ---------------------------------------------------------------------------------- calculator


def calc(expression: str) -> str:
    return calculator.invoke({"expression": expression})


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("17 * 23 + 4", "395"),
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("2 ** 3 ** 2", "512"),  # right-associative
        ("-2 ** 2", "-4"),
        ("7 // 2", "3"),
        ("7 % 3", "1"),
        ("10 / 4", "2.5"),
        ("10 / 2", "5"),
        ("0.1 + 0.2", "0.3"),
        ("sqrt(16)", "4"),
        ("log(8, 2)", "3"),
        ("round(pi, 2)", "3.14"),
        ("abs(-3) + max(1, 2)", "5"),
        ("2^10", "1024"),
        ("3 x 4", "12"),
        ("3 × 4 =", "12"),
        ("e", "2.71828182846"),  # floats to 12 significant digits
    ],
)
def test_calculator_evaluates(expression: str, expected: str) -> None:
    assert calc(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "not an allowed function"),
        ("().__class__", "not allowed"),
        ("foo + 1", "unknown name 'foo'"),
        ("'a' * 3", "not a number"),
        ("1 / 0", "division by zero"),
        ("1 +", "cannot parse"),
        ("1,000", "thousands separators"),
        ("sqrt(-1)", "math domain error"),
        ("9**9**9", "digits"),
        ("10**999 * 10", "digits"),
        ("exp(1000)", "too large"),
        ("1" * 600, "too long"),
    ],
)
def test_calculator_refuses_clearly(expression: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        calc(expression)
    assert message in str(info.value)


def test_calculator_errors_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="Allowed: numbers"):
        calc("open('x')")


# ---------------------------------------------------------------------------------- python_exec

fast_exec = make_python_exec(timeout_s=2, memory_mb=256, max_output_chars=500)


def run(code: str) -> str:
    return fast_exec.invoke({"code": code})


def test_python_exec_returns_printed_output() -> None:
    assert run("print(17 * 23 + 4)") == "395"


def test_python_exec_reports_errors_and_exit_status() -> None:
    out = run("print('before')\n1 / 0")
    assert out.startswith("before")
    assert "ZeroDivisionError" in out
    assert "[exit status 1]" in out


def test_python_exec_runs_in_an_empty_directory_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    out = run("import os; print(os.listdir('.')); print(os.environ.get('OPENAI_API_KEY'))")
    assert out == "[]\nNone"


def test_python_exec_kills_on_timeout() -> None:
    out = run("print('started', flush=True)\nwhile True: pass")
    assert "started" in out
    assert "time limit of 2 s" in out


def test_python_exec_kills_children_on_timeout() -> None:
    marker = f"{time.time_ns() % 10**9}.25"  # a unique sleep length, to find the child on the host
    code = (
        "import subprocess, time\n"
        f"subprocess.Popen(['sleep', '{marker}'])\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    assert run(code).startswith("started")
    deadline = time.monotonic() + 2.0  # the sandbox has been killed; give the kernel a moment
    while host_processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not host_processes_with(marker)


def host_processes_with(text: str) -> list[int]:
    """Live (not zombie) processes on the host whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_python_exec_memory_limit_stops_a_2gb_allocation() -> None:
    out = run("x = bytearray(2 * 1024**3)\nprint('allocated')")
    assert "allocated" not in out
    assert "MemoryError" in out
    assert "memory limit of 256 MiB" in out


def test_python_exec_has_no_network() -> None:
    out = run("import socket\nsocket.create_connection(('example.com', 80))")
    assert "name resolution" in out and "[exit status 1]" in out
    out = run("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)")
    assert "Network is unreachable" in out


def test_python_exec_still_allows_asyncio_and_ssl_imports() -> None:
    assert run("import asyncio, ssl\nasyncio.run(asyncio.sleep(0))\nprint('ok')") == "ok"


def test_python_exec_truncates_long_output() -> None:
    out = run("for i in range(100_000): print(i)")
    assert out.startswith("0\n1\n2\n")
    assert "[output truncated" in out
    assert len(out) < 700


# ---------------------------------------------------------------------------------- http_get


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        port = self.server.server_address[1]
        if self.path == "/page":
            self._send(200, "text/html; charset=utf-8", "<p>héllo from the test server</p>".encode())
        elif self.path == "/big":
            self._send(200, "text/plain", b"a" * 1_000_000)
        elif self.path == "/image":
            self._send(200, "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
        elif self.path == "/redirect-same-host":
            self._redirect("/page")
        elif self.path == "/redirect-other-host":
            self._redirect(f"http://localhost:{port}/page")
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: that is what truncation does

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8080/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0/",
        "http://2130706433/",  # 127.0.0.1 written as one number
    ],
)
def test_http_get_refuses_private_addresses(url: str) -> None:
    with pytest.raises(PermissionError, match="non-public address"):
        http_get.invoke({"url": url})


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/file.txt", "gopher://example.com/"])
def test_http_get_refuses_other_schemes(url: str) -> None:
    with pytest.raises(PermissionError, match="only http:// and https://"):
        http_get.invoke({"url": url})


def test_http_get_refuses_the_local_server_by_default(server: str) -> None:
    with pytest.raises(PermissionError):
        http_get.invoke({"url": server + "/page"})


def test_http_get_fetches_a_page(server: str) -> None:
    out = make_http_get(allow_private=True).invoke({"url": server + "/page"})
    assert out.startswith("HTTP 200 OK")
    assert "Content-Type: text/html; charset=utf-8" in out
    assert "<p>héllo from the test server</p>" in out


def test_http_get_returns_error_statuses(server: str) -> None:
    out = make_http_get(allow_private=True).invoke({"url": server + "/missing"})
    assert out.startswith("HTTP 404")


def test_http_get_truncates_a_large_body(server: str) -> None:
    out = make_http_get(allow_private=True, max_bytes=1000).invoke({"url": server + "/big"})
    assert "a" * 1000 in out
    assert "a" * 1001 not in out
    assert "truncated" in out


def test_http_get_describes_binary_content(server: str) -> None:
    out = make_http_get(allow_private=True).invoke({"url": server + "/image"})
    assert "image/png" in out
    assert "binary content" in out
    assert "PNG" not in out


def test_http_get_follows_redirects_within_policy(server: str) -> None:
    fetch = make_http_get(allow_private=True, allowed_hosts={"127.0.0.1"})
    out = fetch.invoke({"url": server + "/redirect-same-host"})
    assert "héllo" in out
    assert "/page" in out  # the final URL is reported


def test_http_get_rechecks_every_redirect_hop(server: str) -> None:
    fetch = make_http_get(allow_private=True, allowed_hosts={"127.0.0.1"})
    with pytest.raises(PermissionError, match="'localhost' is not in the list of allowed hosts"):
        fetch.invoke({"url": server + "/redirect-other-host"})


def test_http_get_allowlist_refuses_other_hosts() -> None:
    fetch = make_http_get(allowed_hosts={"example.org"})
    with pytest.raises(PermissionError, match="not in the list of allowed hosts"):
        fetch.invoke({"url": "https://example.com/"})


# ---------------------------------------------------------------------------------- read_file


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n", encoding="utf-8")
    (root / "sub" / "b.md").write_text("# béta\n", encoding="utf-8")
    (root / "blob.bin").write_bytes(b"\x00\x01\x02\xff" * 100)
    (tmp_path / "secret.txt").write_text("do not read\n", encoding="utf-8")
    return root


def test_read_file_reads_below_root(files: Path) -> None:
    reader = make_read_file(files)
    assert reader.invoke({"path": "a.txt"}) == "alpha\n"
    assert reader.invoke({"path": "sub/b.md"}) == "# béta\n"
    assert reader.invoke({"path": "sub/../a.txt"}) == "alpha\n"
    assert reader.invoke({"path": str(files / "a.txt")}) == "alpha\n"  # absolute, but inside


def test_read_file_refuses_dotdot_escape(files: Path) -> None:
    with pytest.raises(PermissionError, match="outside the files directory"):
        make_read_file(files).invoke({"path": "../secret.txt"})


def test_read_file_refuses_symlink_pointing_outside(files: Path) -> None:
    (files / "link.txt").symlink_to(files.parent / "secret.txt")
    (files / "linkdir").symlink_to(files.parent)
    reader = make_read_file(files)
    with pytest.raises(PermissionError):
        reader.invoke({"path": "link.txt"})
    with pytest.raises(PermissionError):
        reader.invoke({"path": "linkdir/secret.txt"})


def test_read_file_refuses_absolute_paths_outside(files: Path) -> None:
    reader = make_read_file(files)
    for path in (str(files.parent / "secret.txt"), "/etc/passwd"):
        with pytest.raises(PermissionError):
            reader.invoke({"path": path})


def test_read_file_lists_a_directory_instead_of_reading_it(files: Path) -> None:
    with pytest.raises(ValueError, match="is a directory") as info:
        make_read_file(files).invoke({"path": "."})
    assert "a.txt" in str(info.value) and "sub/" in str(info.value)


def test_read_file_refuses_binary_and_missing_files(files: Path) -> None:
    reader = make_read_file(files)
    with pytest.raises(ValueError, match="binary"):
        reader.invoke({"path": "blob.bin"})
    with pytest.raises(ValueError, match="no such file"):
        reader.invoke({"path": "nope.txt"})


def test_read_file_caps_size(files: Path) -> None:
    (files / "long.txt").write_text("é" * 1000, encoding="utf-8")  # 2000 bytes
    out = make_read_file(files, max_bytes=101).invoke({"path": "long.txt"})
    assert out.startswith("é" * 50)  # the character split at byte 101 is dropped, not garbled
    assert "\ufffd" not in out
    assert "[truncated: showing the first 101 of 2000 bytes]" in out


def test_default_read_file_uses_env_root_at_call_time(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRT_FILES_ROOT", str(files))
    assert read_file.invoke({"path": "a.txt"}) == "alpha\n"
    monkeypatch.delenv("AGENTRT_FILES_ROOT")
    monkeypatch.chdir(files / "sub")
    assert read_file.invoke({"path": "b.md"}) == "# béta\n"
    with pytest.raises(PermissionError):
        read_file.invoke({"path": "../a.txt"})


# ---------------------------------------------------------------------------------- search


def test_search_tool_returns_titled_passages_and_the_evaluation_reads_them(monkeypatch, scripted) -> None:
    """The plain tool-calling agent over an index: the search tool's JSON passages are what the
    QA evaluation counts as retrieval calls and supporting-document recall."""
    import json

    from agentrt.tools import make_search
    from langchain_core.messages import HumanMessage

    from agentrt.agent import build_tool_agent
    from agentrt.models.scripted import call
    from agentrt.qa.data import QATask
    from agentrt.qa.evaluation import measure
    from agentrt.retrieval import shared
    from agentrt.runner import run, run_config
    from tests.test_sim_rag import WordOverlap

    monkeypatch.setitem(shared._retrievers, "mem", WordOverlap())
    search = make_search(index="mem", k=2)
    found = json.loads(search.invoke({"query": "Eiffel Tower Paris"}))
    assert [p["title"] for p in found] == ["Eiffel Tower", "Paris"] and "1889" in found[0]["text"]
    with pytest.raises(Exception, match="empty query"):
        search.invoke({"query": " "})
    with pytest.raises(ValueError, match="k must be at least 1"):
        make_search(k=0)

    graph = build_tool_agent([search]).compile()
    spec = scripted([call("search", query="Eiffel Tower"), "Paris"])
    result = run(graph, "rag_agent", {"messages": [HumanMessage("Where is the Eiffel Tower?")]}, run_config(model=spec), None)
    task = QATask(id="q", question="Where is the Eiffel Tower?", answers=["Paris"], supporting_titles=["Eiffel Tower"])
    measured = measure("tool-calling agent", task, result)
    assert (measured.em, measured.retrieval_calls, measured.support_recall, measured.model_calls) == (1.0, 1, 1.0, 2)
