"""Is an SQLite file usable? Asked before a server starts on it, so that a damaged file is named
with what to do, instead of a traceback from deep inside the first query that touches the bad
page (which may come hours later, mid-run)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agentrt.errors import AgentrtError


class DamagedDatabase(AgentrtError):
    """An SQLite file is not a database, or fails SQLite's own consistency check."""


def quick_check(path: Path, what: str) -> None:
    """Raise :class:`DamagedDatabase` naming ``path`` (``what`` it holds) if SQLite's
    ``PRAGMA quick_check`` finds it damaged. A missing file is fine: it will be created."""
    if not path.exists():
        return
    fix = (f"Move it aside (mv {path} {path}.damaged) to start with an empty one, or restore it from a "
           f"backup; `sqlite3 {path} .recover` may save what is left")
    try:
        conn = sqlite3.connect(path, timeout=10.0)
    except sqlite3.Error as exc:
        raise DamagedDatabase(f"{path} ({what}) cannot be opened: {exc}. {fix}") from None
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise DamagedDatabase(f"{path} ({what}) is not a usable SQLite database: {exc}. {fix}") from None
    finally:
        conn.close()
    if rows != ["ok"]:
        raise DamagedDatabase(f"{path} ({what}) is damaged; SQLite's check says: {'; '.join(rows)}. {fix}")
