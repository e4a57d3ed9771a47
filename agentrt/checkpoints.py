"""Durable graph state: LangGraph's own SQLite checkpointer, in agentrt's data folder."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from langgraph.checkpoint.sqlite import SqliteSaver

from agentrt.paths import home


def sqlite_checkpointer(path: str | Path | None = None) -> SqliteSaver:
    """A checkpointer writing to ``path`` (default ``home()/checkpoints.sqlite``) in WAL mode,
    shareable across threads, so runs can be resumed by thread id after a crash.

    ``synchronous=NORMAL``: commits skip fsync, which cut a served run from 3.7 to 2.3 ms. A
    killed process loses nothing committed; only a power loss or OS crash may drop the last
    few checkpoints (the same trade as the trajectory store)."""
    path = Path(path) if path else home() / "checkpoints.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    saver = SqliteSaver(conn)
    saver.setup()
    return saver
