"""Run model-written Python in a separate, limited process.

The code runs in a fresh interpreter (``python -I``: no environment-driven imports, no user
site-packages) so that it cannot touch the runtime's own state, and under limits so that a
runaway snippet costs seconds, not the machine:

- wall time: the child gets its own session (process group); on timeout the whole group, its
  children included, is killed with SIGKILL;
- memory (``RLIMIT_AS``), CPU time (``RLIMIT_CPU``) and file size (``RLIMIT_FSIZE``);
- no network: a prelude replaces the ``socket`` entry points before the user code runs;
- an empty temporary working directory, removed afterwards, and an environment holding only
  ``PATH``, ``HOME``, ``TMPDIR`` and locale/threading settings, so API keys in the runtime's
  environment are not visible to the code;
- stdout and stderr are captured with a cap, so a print loop cannot flood memory or the context.

The resource limits are set by the prelude in the child rather than by ``preexec_fn``: that
runs Python between fork and exec, which can deadlock when the parent has other threads (the
runtime runs tools in worker threads and loads torch). For the limits it is equivalent: both
apply before any user code.

This is containment against accidents, not a security sandbox: code that imports ``_socket``
directly, or calls ``setsid`` and forks, can get around parts of it. Run the whole runtime in a
container when the model or its inputs are untrusted.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO

from langchain_core.tools import BaseTool

from agentrt.tool import tool

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 512
DEFAULT_MAX_OUTPUT_CHARS = 8_000
MAX_FILE_MB = 64
NETWORK_DISABLED = "network access is disabled in python_exec"

# Runs in the child before the user code: limits, no network, then the code as __main__.
# argv: script path, memory bytes, CPU seconds, file-size bytes. Wrapped in a function so
# that __main__ holds no prelude names when the user code runs.
_PRELUDE = r"""
def _agentrt_prelude():
    import resource, socket, sys, traceback

    script, memory, cpu, fsize = sys.argv[1], *map(int, sys.argv[2:5])

    def cap(kind, soft, hard):
        old_hard = resource.getrlimit(kind)[1]
        if old_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, old_hard), min(hard, old_hard)
        resource.setrlimit(kind, (soft, hard))

    cap(resource.RLIMIT_AS, memory, memory)
    cap(resource.RLIMIT_CPU, cpu, cpu + 1)
    cap(resource.RLIMIT_FSIZE, fsize, fsize)

    message = %(message)r

    def refuse(*args, **kwargs):
        raise PermissionError(message)

    class NoNetworkSocket(socket.socket):
        # A subclass, not a function, so that modules subclassing socket.socket (ssl) still
        # import; wrapping an existing descriptor stays possible (socketpair, used by asyncio).
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            if fileno is None:
                raise PermissionError(message)
            super().__init__(family, type, proto, fileno)

    socket.socket = socket.SocketType = NoNetworkSocket
    socket.create_connection = socket.getaddrinfo = refuse
    socket.gethostbyname = socket.gethostbyname_ex = socket.gethostbyaddr = refuse

    main = sys.modules["__main__"].__dict__
    del main["_agentrt_prelude"]
    main["__file__"] = script
    sys.argv = [script]
    try:
        with open(script, encoding="utf-8") as f:
            code = compile(f.read(), script, "exec")
        exec(code, main)
    except SystemExit:
        raise
    except BaseException as exc:  # print the traceback without this prelude's frame
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        sys.exit(1)

_agentrt_prelude()
""" % {"message": NETWORK_DISABLED}


def make_python_exec(
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
) -> BaseTool:
    """A ``python_exec`` tool with these limits (wall seconds, address space MiB, output chars)."""

    # The agentrt timeout is a backstop: the subprocess limit should fire first and report.
    @tool(timeout=timeout_s + 5.0)
    def python_exec(code: str) -> str:
        """Run a Python 3 program in a fresh, isolated process and return what it printed.

        Use it for computation, data manipulation or checking code. Only printed output comes
        back, so print() what you need. Each call starts from scratch (no state is kept
        between calls) in an empty temporary directory. Time and memory are limited and
        network access is disabled.

        Args:
            code: The complete Python program to run.
        """
        return run_python(
            code, timeout_s=timeout_s, memory_mb=memory_mb, max_output_chars=max_output_chars
        )

    return python_exec


def run_python(code: str, *, timeout_s: float, memory_mb: int, max_output_chars: int) -> str:
    """Run ``code`` in a limited subprocess; its output and outcome as text for the model."""
    with tempfile.TemporaryDirectory(prefix="agentrt-pyexec-", ignore_cleanup_errors=True) as base:
        script = Path(base, "main.py")  # outside the working directory, which starts empty
        script.write_text(code, encoding="utf-8")
        workdir = Path(base, "work")
        workdir.mkdir()
        cpu_s = math.ceil(timeout_s) + 1  # wall time normally fires first; this catches threads
        limits = [memory_mb * 2**20, cpu_s, MAX_FILE_MB * 2**20]
        argv = [sys.executable, "-I", "-c", _PRELUDE, str(script), *map(str, limits)]
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=_child_env(workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so we can kill its children too
        )
        assert proc.stdout is not None and proc.stderr is not None
        # Keep the start of stdout and the end of stderr (where a traceback's last line is).
        out = _Capture(proc.stdout, max_output_chars * 4, keep="head")
        err = _Capture(proc.stderr, max_output_chars * 4, keep="tail")
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc.pid)  # also reaps children left running after a normal exit
            returncode = proc.wait()
            out.join(timeout=2.0)
            err.join(timeout=2.0)
    return _report(out, err, returncode, timed_out, timeout_s, memory_mb, cpu_s, max_output_chars)


def _child_env(workdir: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        # Numeric libraries reserve memory per thread; one thread keeps them under RLIMIT_AS.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


class _Capture(threading.Thread):
    """Drain a pipe in the background, keeping at most ``limit`` bytes (its head or tail)."""

    def __init__(self, stream: IO[bytes], limit: int, keep: str) -> None:
        super().__init__(daemon=True)
        self.stream, self.limit, self.keep = stream, limit, keep
        self.data = bytearray()
        self.total = 0
        self.start()

    def run(self) -> None:
        with self.stream:
            while chunk := self.stream.read1(65536):  # type: ignore[attr-defined]
                self.total += len(chunk)
                if self.keep == "head":
                    self.data += chunk[: max(0, self.limit - len(self.data))]
                else:
                    self.data += chunk
                    del self.data[: max(0, len(self.data) - self.limit)]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _report(
    out: _Capture,
    err: _Capture,
    returncode: int,
    timed_out: bool,
    timeout_s: float,
    memory_mb: int,
    cpu_s: int,
    max_output_chars: int,
) -> str:
    stdout, stderr = out.text(), err.text()
    dropped = (out.total - len(out.data)) + (err.total - len(err.data))
    # Share the character budget; stderr keeps at least half when both are long.
    if len(stdout) + len(stderr) > max_output_chars:
        err_budget = min(len(stderr), max(max_output_chars // 2, max_output_chars - len(stdout)))
        out_budget = max_output_chars - err_budget
        dropped += len(stdout) - min(len(stdout), out_budget) + len(stderr) - err_budget
        stdout, stderr = stdout[:out_budget], stderr[len(stderr) - err_budget :]

    parts = [stdout.rstrip("\n")] if stdout else []
    if stderr:
        parts.append("[stderr]\n" + stderr.rstrip("\n"))
    if dropped:
        parts.append(f"[output truncated: about {dropped} more characters were not shown]")
    if timed_out:
        parts.append(f"[killed: the time limit of {timeout_s:g} s was exceeded]")
    elif returncode == -signal.SIGXCPU:
        parts.append(f"[killed: the CPU time limit of {cpu_s} s was exceeded]")
    elif returncode == -signal.SIGXFSZ:
        parts.append(f"[killed: a file grew beyond the limit of {MAX_FILE_MB} MiB]")
    elif returncode < 0:
        parts.append(f"[killed by signal {_signal_name(-returncode)}]")
    elif returncode:
        if "MemoryError" in stderr:
            parts.append(f"[the memory limit of {memory_mb} MiB was exceeded]")
        parts.append(f"[exit status {returncode}]")
    return "\n".join(parts) if parts else "(no output)"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


python_exec = make_python_exec()
