"""Starting the real server process for tests: ``agentrt serve`` on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

MANIFEST = Path(__file__).parent / "manifest.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path, *args: str, manifest: Path = MANIFEST, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.data_dir, self.args, self.manifest, self.env, self.cwd = data_dir, args, manifest, env or {}, cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.banner = ""

    def start(self) -> Server:
        cmd = [sys.executable, "-m", "agentrt", "serve", "--manifest", str(self.manifest), "--data",
               str(self.data_dir), "--port", str(self.port), *self.args]
        repo = str(Path(__file__).resolve().parents[2])  # the tests' own modules, from any cwd
        path = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
        # A file, not a pipe nobody reads: a server that logs a lot would block on a full pipe.
        self.log = self.data_dir.parent / f"{self.data_dir.name}-server-{self.port}.log"
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, cwd=self.cwd,
                                     env={**os.environ, "COLUMNS": "200", "PYTHONPATH": path, **self.env})
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/ok", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start in 60 s")

    def output(self) -> str:
        """What the server printed (its log) so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> str:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.output()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@contextmanager
def running(data_dir: Path, *args: str, manifest: Path = MANIFEST, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Iterator[Server]:
    server = Server(data_dir, *args, manifest=manifest, env=env, cwd=cwd).start()
    try:
        yield server
    finally:
        if server.proc and server.proc.poll() is None:
            server.stop()
