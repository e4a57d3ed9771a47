"""Run model-written Python in a sandbox made of Linux namespaces (bubblewrap), not in-process tricks.

The code is untrusted: the model wrote it, and a prompt or a page it read may have steered it.
So it runs under ``bwrap`` (Debian's ``bubblewrap``), which builds the sandbox from kernel
mechanisms the code cannot undo from inside:

- no network: its own network namespace, with nothing in it but a loopback that refuses;
- its own PID namespace: it cannot see or signal the runtime (``/proc`` shows only the
  sandbox), and everything it starts dies with it (``--die-with-parent``; killing the sandbox
  kills its PID namespace);
- a minimal filesystem: ``/usr`` read-only, a private writable ``/tmp`` (a size-capped tmpfs,
  gone afterwards) as its working folder, and nothing else of the host: no home, no project
  folder, no ``.env``;
- an empty environment (``--clearenv``), so the runtime's API keys are not there to read;
- no root: it runs as ``nobody`` in its own user namespace with every capability dropped, and
  when the runtime itself is root, bwrap is started as ``nobody`` too (``setpriv``), so that
  the process-count limit applies (the kernel exempts root from it);
- limits (``prlimit``): processes, address space, CPU seconds, file size and open files; and
  a wall-clock limit enforced from outside by killing the sandbox.

The interpreter is the system's ``/usr/bin/python3`` (standard library only; install Debian's
``python3-numpy`` and the like to offer more), or ``$AGENTRT_SANDBOX_PYTHON``. Where bubblewrap
is missing or the kernel will not make namespaces (some containers), the tool refuses to run and
says why: it never falls back to running unconfined.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO

from langchain_core.tools import BaseTool

from agentrt.errors import AgentrtError
from agentrt.tool import tool

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 512
DEFAULT_MAX_OUTPUT_CHARS = 8_000
MAX_FILE_MB = 64
MAX_PROCESSES = 32
MAX_OPEN_FILES = 256
TMP_MB = 128
PYTHON_ENV_VAR = "AGENTRT_SANDBOX_PYTHON"
SANDBOX_UID = 65534  # nobody
SCRIPT = "/sandbox/main.py"
WORKDIR = "/tmp/work"


class SandboxUnavailable(AgentrtError, RuntimeError):
    """This host cannot isolate the code, so it is not run; the message says what to install or allow."""


def make_python_exec(
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
) -> BaseTool:
    """A ``python_exec`` tool with these limits (wall seconds, address space MiB, output chars)."""

    # The agentrt timeout is a backstop: the sandbox's own wall limit should fire first and report.
    @tool(timeout=timeout_s + 5.0)
    def python_exec(code: str) -> str:
        """Run a Python 3 program in a fresh, isolated sandbox and return what it printed.

        Use it for computation, data manipulation or checking code. Only printed output comes
        back, so print() what you need. Each call starts from scratch (no state is kept
        between calls) in an empty temporary directory, with the standard library only. Time,
        memory and processes are limited and there is no network.

        Args:
            code: The complete Python program to run.
        """
        return run_python(
            code, timeout_s=timeout_s, memory_mb=memory_mb, max_output_chars=max_output_chars
        )

    return python_exec


def run_python(code: str, *, timeout_s: float, memory_mb: int, max_output_chars: int) -> str:
    """Run ``code`` in the sandbox; its output and outcome as text for the model."""
    check_sandbox()
    cpu_s = math.ceil(timeout_s) + 1  # wall time normally fires first; this catches threads
    argv = sandbox_argv(python=sandbox_python(), memory_mb=memory_mb, cpu_s=cpu_s)
    script = os.memfd_create("agentrt-main.py")  # bwrap copies it in (--file), no host path shared
    try:
        os.write(script, code.encode("utf-8", "surrogateescape"))
        os.lseek(script, 0, os.SEEK_SET)
        argv[argv.index("SCRIPT_FD")] = str(script)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(script,),
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
    finally:
        os.close(script)
    assert proc.stdout is not None and proc.stderr is not None
    # Keep the start of stdout and the end of stderr (where a traceback's last line is).
    out = _Capture(proc.stdout, max_output_chars * 4, keep="head")
    err = _Capture(proc.stderr, max_output_chars * 4, keep="tail")
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)  # before reaping, so the pid is still bwrap's; its PID namespace dies with it
    finally:
        returncode = proc.wait()  # bwrap ending (normally too) ends every process in the sandbox
        out.join(timeout=2.0)
        err.join(timeout=2.0)
    return _report(out, err, returncode, timed_out, timeout_s, memory_mb, cpu_s, max_output_chars)


def sandbox_python() -> str:
    python = os.environ.get(PYTHON_ENV_VAR) or "/usr/bin/python3"
    if not Path(python).is_file():
        raise SandboxUnavailable(
            f"python_exec is disabled: the sandbox's interpreter {python} does not exist. Install "
            f"Debian's python3 (apt-get install python3) or set {PYTHON_ENV_VAR} to an interpreter")
    return python


def sandbox_argv(*, python: str, memory_mb: int, cpu_s: int) -> list[str]:
    """The command line: [setpriv to nobody, when root] bwrap ... prlimit ... python main.py."""
    prefix = os.path.realpath(Path(python).parent.parent)
    binds = ["--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
             "--symlink", "usr/bin", "/bin"]
    if not prefix.startswith("/usr"):  # an interpreter installed elsewhere: its own folder, read-only
        binds += ["--ro-bind", prefix, prefix]
    drop = (["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--inh-caps=-all",
             "--"] if os.geteuid() == 0 else [])
    return [
        *drop, "bwrap", "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
        "--cap-drop", "ALL", *binds, "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
        "--size", str(TMP_MB * 2**20), "--tmpfs", "/tmp", "--dir", WORKDIR, "--chdir", WORKDIR,
        "--file", "SCRIPT_FD", SCRIPT, "--remount-ro", "/",
        "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", WORKDIR, "--setenv", "TMPDIR", "/tmp",
        "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONIOENCODING", "utf-8", "--setenv", "PYTHONDONTWRITEBYTECODE",
        "1", "--setenv", "OMP_NUM_THREADS", "1", "--setenv", "OPENBLAS_NUM_THREADS", "1",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--",
        "/usr/bin/prlimit", f"--nproc={MAX_PROCESSES}", f"--as={memory_mb * 2**20}", f"--cpu={cpu_s}:{cpu_s + 1}",
        f"--fsize={MAX_FILE_MB * 2**20}", f"--nofile={MAX_OPEN_FILES}", "--",
        python, "-I", SCRIPT,
    ]


_works = False


def _probe() -> str | None:
    """Why this host cannot run the sandbox, or None if it can (a success is remembered for the
    process; a failure is checked again next call, since it may have been passing, e.g. a timeout)."""
    global _works
    if _works:
        return None
    reason = _probe_once()
    _works = reason is None
    return reason


def _probe_once() -> str | None:
    for program, package in (("bwrap", "bubblewrap"), ("prlimit", "util-linux"), *(
            [("setpriv", "util-linux")] if os.geteuid() == 0 else [])):
        if shutil.which(program) is None:
            return (f"python_exec is disabled: {program} is not installed, and the code would run unconfined "
                    f"without it. Install it (apt-get install {package}).")
    try:
        argv = sandbox_argv(python=sandbox_python(), memory_mb=DEFAULT_MEMORY_MB, cpu_s=5)
    except SandboxUnavailable as exc:
        return str(exc)
    read, write = os.pipe()
    try:
        os.close(write)  # an empty script
        argv[argv.index("SCRIPT_FD")] = str(read)
        done = subprocess.run(argv, pass_fds=(read,), capture_output=True, timeout=30, check=False,
                              env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"python_exec is disabled: the sandbox could not start ({exc})."
    finally:
        os.close(read)
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        return (f"python_exec is disabled: this host cannot build its sandbox ({why[0]}). It needs user and "
                "network namespaces (in a container: allow them, or run the runtime outside it).")
    return None


def check_sandbox() -> None:
    """Raise :class:`SandboxUnavailable` (the tool's error, which the model sees) where isolation fails."""
    reason = _probe()
    if reason:
        raise SandboxUnavailable(reason)


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
