"""Which process a record belongs to, and whether it still runs: so a run left "running" by a
process that was killed can be told from one another live process is still writing."""

from __future__ import annotations

import os
import socket


def _start_time(pid: int | str) -> str | None:
    """A process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_process() -> str:
    """``host:pid:start``, which names this process and no later one that reuses its pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time('self')}"


def process_alive(process: str | None) -> bool:
    """Whether the process a run recorded still runs (runs of another host are assumed to)."""
    if not process:
        return False
    host, _, rest = process.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname():
        return True
    return pid.isdigit() and _start_time(pid) == start
