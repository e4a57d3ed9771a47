"""The server's own records: threads, runs and API keys, in one SQLite file.

Graph state lives in LangGraph's checkpointer and run contents in the trajectory store; this
file holds only what those two do not know: who owns a thread or run, which assistant it
used, a run's lifecycle status, and the request that started it. That makes the run queue
durable: a run is "pending" from the moment it is acknowledged until a worker starts it
("running"), so after a crash the pending ones are started again (counting attempts) and only
the running ones, which may have done half their work, become "interrupted". Every write commits at once (WAL, ``synchronous=NORMAL``),
so a killed server loses nothing it acknowledged. Each call is a single indexed statement of
tens of microseconds, so the async handlers call it directly: a hop to a thread pool would cost
more than the query.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from agentrt.errors import AgentrtError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS threads (
    thread_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT NOT NULL,
    state_key TEXT NOT NULL UNIQUE,
    PRIMARY KEY (owner, thread_id)
);
CREATE INDEX IF NOT EXISTS threads_owner ON threads(owner, created_at);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    thread_id TEXT,
    owner TEXT NOT NULL,
    assistant_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    metadata TEXT NOT NULL,
    kwargs TEXT NOT NULL,
    error TEXT,
    attempt INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS runs_thread ON runs(thread_id, created_at);
CREATE INDEX IF NOT EXISTS runs_owner ON runs(owner, created_at);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    revoked_at REAL
);
"""

# Stores made before thread ids were per key: same rows, the old id as the checkpointer's key.
_PER_KEY_THREADS = """
BEGIN;
ALTER TABLE threads RENAME TO threads_global;
CREATE TABLE threads (
    thread_id TEXT NOT NULL, owner TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    status TEXT NOT NULL, metadata TEXT NOT NULL, state_key TEXT NOT NULL UNIQUE, PRIMARY KEY (owner, thread_id)
);
INSERT INTO threads SELECT thread_id, owner, created_at, updated_at, status, metadata, thread_id FROM threads_global;
DROP TABLE threads_global;
CREATE INDEX IF NOT EXISTS threads_owner ON threads(owner, created_at);
COMMIT;
"""

ANONYMOUS = "local"  # the one owner of everything on a server without API keys
ACTIVE = ("pending", "running")
MAX_ATTEMPTS = 3


class ServerStoreError(AgentrtError):
    """The server's database cannot be used; the message names the file and what to do."""


def state_key(owner: str, thread_id: str) -> str:
    """The thread's key in LangGraph's checkpointer. Thread ids are per API key (two keys may
    both have a thread "t1", and neither can learn of the other's), so the checkpointer's key
    carries the owner; without keys it is the thread id itself."""
    return thread_id if owner == ANONYMOUS else f"{owner}:{thread_id}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ServerStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'threads'").fetchone() and "state_key" not in {
                    r[1] for r in self._db.execute("PRAGMA table_info(threads)")}:
                self._db.executescript(_PER_KEY_THREADS)
            self._db.executescript(_SCHEMA)
            if "attempt" not in {r[1] for r in self._db.execute("PRAGMA table_info(runs)")}:
                self._db.execute("ALTER TABLE runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1")
        except sqlite3.DatabaseError as exc:
            raise ServerStoreError(
                f"{self.path} is not a usable agentrt server database ({exc}); move it aside or pass another --data-dir"
            ) from exc

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, params)

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [_decode(dict(r)) for r in self._db.execute(sql, params).fetchall()]

    # threads
    def create_thread(self, owner: str, metadata: dict[str, Any], thread_id: str | None = None) -> dict[str, Any]:
        now = time.time()
        thread_id = thread_id or str(uuid.uuid4())
        key = state_key(owner, thread_id)
        self._exec("INSERT INTO threads VALUES (?, ?, ?, ?, 'idle', ?, ?)",
                   (thread_id, owner, now, now, json.dumps(metadata), key))
        return {"thread_id": thread_id, "created_at": now, "updated_at": now, "status": "idle", "metadata": metadata,
                "state_key": key}

    def get_thread(self, thread_id: str, owner: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM threads WHERE thread_id = ? AND owner = ?", (thread_id, owner))
        return rows[0] if rows else None

    def search_threads(self, owner: str, *, status: str | None, metadata: dict[str, Any] | None,
                       limit: int, offset: int) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM threads WHERE owner = ?", [owner]
        if status:
            sql += " AND status = ?"
            params.append(status)
        for key, value in (metadata or {}).items():
            sql += " AND json_extract(metadata, ?) = json_extract(?, '$')"
            params += [f"$.{json.dumps(key)}", json.dumps(value)]
        sql += " ORDER BY created_at DESC LIMIT ? OFFSET ?"
        return self._rows(sql, (*params, limit, offset))

    def delete_thread(self, thread_id: str, owner: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM threads WHERE thread_id = ? AND owner = ?", (thread_id, owner))
            if cur.rowcount:
                self._db.execute("DELETE FROM runs WHERE thread_id = ? AND owner = ?", (thread_id, owner))
            return bool(cur.rowcount)

    # runs
    def begin_run(self, *, run_id: str, thread_id: str | None, owner: str, assistant_id: str,
                  metadata: dict[str, Any], kwargs: dict[str, Any]) -> None:
        """The run's row and its thread marked busy (and bound to the run's graph), in one
        commit: this is on the path of every request that starts a run."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT INTO runs VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, NULL, 1)",
                    (run_id, thread_id, owner, assistant_id, now, now, json.dumps(metadata),
                     json.dumps(kwargs, default=str)),
                )
                if thread_id:
                    self._db.execute(
                        "UPDATE threads SET status = 'busy', updated_at = ?, metadata = json_set(metadata, "
                        "'$.graph_id', ?) WHERE thread_id = ? AND owner = ?", (now, assistant_id, thread_id, owner))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def end_run(self, run_id: str, status: str, error: str | None, thread_id: str | None,
                thread_status: str) -> None:
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("UPDATE runs SET status = ?, error = ?, updated_at = ? WHERE run_id = ?",
                             (status, error, now, run_id))
            if thread_id:
                self._db.execute("UPDATE threads SET status = ?, updated_at = ? WHERE thread_id = ? AND owner = "
                                 "(SELECT owner FROM runs WHERE run_id = ?)", (thread_status, now, thread_id, run_id))
            self._db.execute("COMMIT")

    def get_run(self, run_id: str, owner: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE run_id = ? AND owner = ?", (run_id, owner))
        return rows[0] if rows else None

    def list_runs(self, owner: str, *, thread_id: str | None = None, status: str | None = None,
                  limit: int = 10, offset: int = 0) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM runs WHERE owner = ?", [owner]
        if thread_id:
            sql += " AND thread_id = ?"
            params.append(thread_id)
        if status:
            sql += " AND status = ?"
            params.append(status)
        sql += " ORDER BY created_at DESC LIMIT ? OFFSET ?"
        return self._rows(sql, (*params, limit, offset))

    def set_running(self, run_id: str) -> None:
        """A worker took the run: from now on a crash interrupts it instead of starting it again."""
        self._exec("UPDATE runs SET status = 'running', updated_at = ? WHERE run_id = ? AND status = 'pending'",
                   (time.time(), run_id))

    def recover(self) -> list[dict[str, Any]]:
        """After a crash: runs a worker had started are interrupted, and their threads too (a
        new run with no input resumes from the last checkpoint); runs still queued are returned,
        their attempt counted, to be started again, except those that have used up
        :data:`MAX_ATTEMPTS`, which fail saying so."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                running = self._db.execute(
                    "SELECT run_id, thread_id, owner FROM runs WHERE status = 'running'").fetchall()
                for r in running:
                    self._db.execute(
                        "UPDATE runs SET status = 'interrupted', error = ?, updated_at = ? WHERE run_id = ?",
                        ("the server stopped during this run; resume it with a new run on its thread", now,
                         r["run_id"]))
                    if r["thread_id"]:
                        self._db.execute("UPDATE threads SET status = 'interrupted', updated_at = ? "
                                         "WHERE thread_id = ? AND owner = ?", (now, r["thread_id"], r["owner"]))
                self._db.execute(
                    "UPDATE runs SET status = 'error', updated_at = ?, error = 'the server stopped ' || attempt || "
                    "' times while this run waited in its queue; it was not started again' "
                    "WHERE status = 'pending' AND attempt >= ?", (now, MAX_ATTEMPTS))
                self._db.execute("UPDATE threads SET status = 'error', updated_at = ? WHERE status = 'busy' AND NOT "
                                 "EXISTS (SELECT 1 FROM runs WHERE runs.status = 'pending' AND runs.thread_id = "
                                 "threads.thread_id AND runs.owner = threads.owner)", (now,))
                self._db.execute("UPDATE runs SET attempt = attempt + 1, updated_at = ? WHERE status = 'pending'",
                                 (now,))
                pending = [dict(r) for r in self._db.execute(
                    "SELECT * FROM runs WHERE status = 'pending' ORDER BY created_at").fetchall()]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return [{**_decode(dict(r)), "owner": r["owner"]} for r in pending]

    # API keys
    def create_key(self, name: str) -> tuple[str, str]:
        """A new key, returned once in clear; only its SHA-256 is kept."""
        key = "art-" + secrets.token_urlsafe(32)
        key_id = "key_" + uuid.uuid4().hex[:12]
        self._exec("INSERT INTO api_keys VALUES (?, ?, ?, ?, NULL)", (key_id, name, hash_key(key), time.time()))
        return key_id, key

    def revoke_key(self, key_id: str) -> bool:
        return bool(self._exec("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                               (time.time(), key_id)).rowcount)

    def list_keys(self) -> list[dict[str, Any]]:
        return self._rows("SELECT key_id, name, created_at, revoked_at FROM api_keys ORDER BY created_at")

    def key_owner(self, key: str) -> str | None:
        rows = self._rows("SELECT key_id FROM api_keys WHERE hash = ? AND revoked_at IS NULL", (hash_key(key),))
        return rows[0]["key_id"] if rows else None

    def has_keys(self) -> bool:
        return bool(self._rows("SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1"))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("metadata", "kwargs"):
        if key in row and isinstance(row[key], str):
            row[key] = json.loads(row[key])
    row.pop("owner", None)
    return row
