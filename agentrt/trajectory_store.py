"""Where trajectories live: an embedded SQLite database written event by event.

A run is a header row (``runs``) plus append-only ``events``. Every write commits at once, in
WAL mode, so a process killed mid-run (kill -9, OOM, a crashed model backend) leaves every
event written before the kill readable. Each run records which process writes it (host, pid
and the process's start time, so a reused pid is not mistaken for it), and opening the store
closes as ``interrupted`` every "running" run whose process is gone: a CLI run killed mid-way
is not left "running" forever, and a live run of another process is left alone. ``synchronous=NORMAL`` keeps commits off fsync: a process crash loses nothing,
only a power loss or OS crash may drop the last few commits, which is the right trade for a
write on every graph step.

``add_event`` is on the hot path of every graph step, so it is a single INSERT: the next seq of
each run is counted in memory (initialised from ``MAX(seq)`` the first time this process sees
the run) instead of being read back from the database each time.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from agentrt.errors import AgentrtError
from agentrt.paths import home
from agentrt.processes import process_alive, this_process
from agentrt.store_schema import SCHEMA as _SCHEMA
from agentrt.store_schema import TABLES as _TABLES
from agentrt.trajectory import (
    SCHEMA_VERSION,
    STATUSES,
    CriticScore,
    Feedback,
    RunSummary,
    Trajectory,
    assemble,
    summarize,
    utc,
)

__all__ = ["TrajectoryStore", "TrajectoryStoreError", "default_store_path"]

_MIN_PREFIX = 4
_FINISHED = tuple(s for s in STATUSES if s != "running")


class TrajectoryStoreError(AgentrtError):
    """A store problem a user can act on; the message says what was wrong and what to do."""


def default_store_path() -> Path:
    """``$AGENTRT_STORE``, else ``trajectories.sqlite`` in agentrt's home folder."""
    env = os.environ.get("AGENTRT_STORE")
    if env:
        return Path(env).expanduser()
    return home() / "trajectories.sqlite"


def _dumps(value: Any) -> str:
    # default=str: an odd value in a payload is recorded as text rather than losing the event.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


class TrajectoryStore:
    """A trajectory database shared by the threads of one process (and readable by others)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._next_seq: dict[str, int] = {}
        if self.path.is_dir():
            raise TrajectoryStoreError(f"{self.path} is a directory, not a trajectory store file. "
                                       "Pass a file path, e.g. --store ~/runs/trajectories.sqlite")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrajectoryStoreError(f"cannot create the folder for trajectory store {self.path}: {exc}. "
                                       "Pass another --store") from exc
        try:
            self._conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise TrajectoryStoreError(f"cannot open trajectory store {self.path}: {exc}. "
                                       "Check the path and its permissions, or pass another --store") from exc
        try:
            self._init_schema()
            self.mark_interrupted()
        except TrajectoryStoreError:
            self._conn.close()
            raise
        except sqlite3.OperationalError as exc:
            self._conn.close()
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise self._damaged(exc) from exc
            raise TrajectoryStoreError(f"cannot open trajectory store {self.path}: {exc}. "
                                       "Check the path and its permissions, or pass another --store") from exc
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise self._damaged(exc) from exc

    def _damaged(self, exc: BaseException) -> TrajectoryStoreError:
        return TrajectoryStoreError(f"{self.path} is not an agentrt trajectory store or is damaged: {exc}. "
                                    "Move it aside or pass another --store")

    def _init_schema(self) -> None:
        c = self._conn
        version = c.execute("PRAGMA user_version").fetchone()[0]  # reads the header: fails on non-SQLite
        if version > SCHEMA_VERSION:
            raise TrajectoryStoreError(
                f"{self.path} was made by a newer agentrt (store schema {version}, this agentrt reads "
                f"up to {SCHEMA_VERSION}). Upgrade agentrt, or pass another --store")
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        foreign = tables - set(_TABLES) - {"sqlite_sequence", "sqlite_stat1"}
        if version == 0 and foreign:  # someone else's database: do not write our tables into it
            other = ", ".join(sorted(foreign))
            raise self._damaged(ValueError(f"it is an SQLite database with other tables ({other})"))
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        if "runs" in tables and "process" not in {r[1] for r in c.execute("PRAGMA table_info(runs)")}:
            c.execute("ALTER TABLE runs ADD COLUMN process TEXT")  # stores made before runs recorded it
        if version < SCHEMA_VERSION or not set(_TABLES) <= tables:
            c.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        c.execute("CREATE INDEX IF NOT EXISTS runs_status ON runs(status)")

    # --- writes --------------------------------------------------------------------------------

    def _error(self, doing: str, exc: sqlite3.Error) -> TrajectoryStoreError:
        """A sqlite3 error as a store error that says what to do."""
        if isinstance(exc, sqlite3.ProgrammingError):
            return TrajectoryStoreError(f"trajectory store {self.path} is closed ({exc})")
        if isinstance(exc, sqlite3.OperationalError):
            return TrajectoryStoreError(f"cannot {doing} trajectory store {self.path}: {exc}")
        return self._damaged(exc)

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run one statement under the lock; returns the rowcount. IntegrityError is left to the caller."""
        with self._lock:
            try:
                return self._conn.execute(sql, params).rowcount
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:
                raise self._error("write to", exc) from exc

    def start_run(self, *, run_id: str, thread_id: str | None, graph: str, model: str | None, input: str,
                  metadata: dict[str, Any] | None = None, started_at: float | None = None) -> None:
        """Record the header of a new run with status "running"."""
        if not run_id:
            raise TrajectoryStoreError("start_run needs a non-empty run_id (use uuid4().hex)")
        try:
            self._write(
                "INSERT INTO runs (run_id, schema_version, thread_id, graph, model, input, status, started_at,"
                " metadata, process) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                (run_id, SCHEMA_VERSION, thread_id, graph, model, input,
                 time.time() if started_at is None else started_at, _dumps(metadata or {}), this_process()),
            )
        except sqlite3.IntegrityError as exc:
            raise TrajectoryStoreError(f"a run with id {run_id!r} already exists in {self.path}; "
                                       "every run needs a new id (use uuid4().hex)") from exc
        self._next_seq[run_id] = 0

    def add_event(self, run_id: str, node: str, payload: dict[str, Any], at: float | None = None) -> int:
        """Append one event to a run and commit it; returns its seq (0, 1, 2, ...)."""
        if not isinstance(payload, dict):
            raise TrajectoryStoreError(f"add_event payload must be a dict, not {type(payload).__name__}")
        data = _dumps(payload)
        when = time.time() if at is None else at
        with self._lock:
            for _attempt in range(3):
                try:
                    seq = self._next_seq.get(run_id)
                    if seq is None:
                        seq = self._seq_from_db(run_id)
                    self._conn.execute("INSERT INTO events (run_id, seq, at, node, payload) VALUES (?, ?, ?, ?, ?)",
                                       (run_id, seq, when, node, data))
                    self._next_seq[run_id] = seq + 1
                    return seq
                except sqlite3.IntegrityError:  # another process appended to this run: recount, retry
                    self._next_seq.pop(run_id, None)
                except sqlite3.Error as exc:
                    raise self._error("write to", exc) from exc
        raise TrajectoryStoreError(f"could not append an event to run {run_id!r}: its seq kept colliding with "
                                   "another writer. Write each run from one process")

    def _seq_from_db(self, run_id: str) -> int:
        """The next seq of a run this process has not written to yet (caller holds the lock)."""
        row = self._conn.execute(
            "SELECT EXISTS(SELECT 1 FROM runs WHERE run_id = ?), (SELECT MAX(seq) FROM events WHERE run_id = ?)",
            (run_id, run_id)).fetchone()
        if not row[0]:
            raise TrajectoryStoreError(f"no run {run_id!r} in {self.path}: call start_run before add_event")
        return 0 if row[1] is None else row[1] + 1

    def finish_run(self, run_id: str, *, status: str, final_answer: str | None = None,
                   stop_reason: str | None = None, error: str | None = None, ended_at: float | None = None) -> None:
        """Close a run: its final status, answer, why it stopped, and any error."""
        if status not in _FINISHED:
            raise TrajectoryStoreError(f"finish_run status must be one of {', '.join(_FINISHED)}, not {status!r}")
        n = self._write("UPDATE runs SET status = ?, final_answer = ?, stop_reason = ?, error = ?, ended_at = ?"
                        " WHERE run_id = ?",
                        (status, final_answer, stop_reason, error, time.time() if ended_at is None else ended_at,
                         run_id))
        if n == 0:
            raise TrajectoryStoreError(f"no run {run_id!r} in {self.path}: call start_run before finish_run")
        self._next_seq.pop(run_id, None)  # long-lived servers must not keep a counter per run forever

    def set_reward(self, run_id: str, reward: float) -> None:
        if not isinstance(reward, (int, float)) or not math.isfinite(reward):
            raise TrajectoryStoreError(f"reward must be a finite number, not {reward!r}")
        if self._write("UPDATE runs SET reward = ? WHERE run_id = ?", (float(reward), run_id)) == 0:
            raise TrajectoryStoreError(f"no run {run_id!r} in {self.path} (agentrt traj list shows the ids)")

    def merge_metadata(self, run_id: str, patch: dict[str, Any]) -> None:
        """Add keys to a run's metadata (a verifier's verdict, a task's difficulty) after the fact."""
        try:
            patch_json = json.dumps(patch)
        except (TypeError, ValueError) as exc:
            raise TrajectoryStoreError(f"metadata must be JSON: {exc}") from exc
        if self._write("UPDATE runs SET metadata = json_patch(metadata, ?) WHERE run_id = ?", (patch_json, run_id)) == 0:
            raise TrajectoryStoreError(f"no run {run_id!r} in {self.path} (agentrt traj list shows the ids)")

    def add_critic_score(self, run_id: str, score: CriticScore) -> None:
        n = self._write(
            "INSERT INTO critic_scores (run_id, critic, target, score, accepted, at)"
            " SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ?)",
            (run_id, score.critic, score.target, score.score, score.accepted, score.at.timestamp(), run_id))
        if n == 0:
            raise TrajectoryStoreError(f"no run {run_id!r} in {self.path} (agentrt traj list shows the ids)")

    def add_feedback(self, run_id: str, feedback: Feedback) -> None:
        """Record a judgement of a whole run (a key such as ``correct``, a score, a comment)."""
        if not math.isfinite(feedback.score):
            raise TrajectoryStoreError(f"a feedback score must be a finite number, not {feedback.score!r}")
        n = self._write(
            "INSERT INTO feedback (run_id, key, score, comment, source, at)"
            " SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ?)",
            (run_id, feedback.key, float(feedback.score), feedback.comment, feedback.source, feedback.at.timestamp(),
             run_id))
        if n == 0:
            raise TrajectoryStoreError(f"no run {run_id!r} in {self.path} (agentrt traj list shows the ids)")

    def mark_interrupted(self) -> builtins.list[str]:
        """Every "running" run whose process is gone becomes "interrupted"; returns their ids.

        Opening the store calls it. A run's process is gone when it ran on this host and no live
        process has its pid and start time; runs of other hosts are left alone, and runs recorded
        before processes were (no ``process``) count as gone. The end time is the run's last
        event (when we last heard of it).
        """
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                rows = self._conn.execute("SELECT run_id, process FROM runs WHERE status = 'running'").fetchall()
                ids = [run_id for run_id, process in rows if not process_alive(process)]
                for run_id in ids:
                    self._conn.execute(
                        "UPDATE runs SET status = 'interrupted',"
                        " ended_at = COALESCE((SELECT MAX(at) FROM events WHERE events.run_id = runs.run_id),"
                        " started_at),"
                        " error = COALESCE(error, 'the process running it ended before the run finished')"
                        " WHERE run_id = ?", (run_id,))
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise TrajectoryStoreError(f"cannot mark interrupted runs in {self.path}: {exc}") from exc
        for run_id in ids:
            self._next_seq.pop(run_id, None)
        return ids

    # --- reads ---------------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> builtins.list[dict[str, Any]]:
        with self._lock:
            try:
                cur = self._conn.execute(sql, params)
                names = [d[0] for d in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            except sqlite3.Error as exc:
                raise self._error("read", exc) from exc

    def _resolve(self, run_id: str) -> str:
        if self._query("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)):
            return run_id
        if len(run_id) < _MIN_PREFIX:
            raise TrajectoryStoreError(f"no run {run_id!r} in {self.path}; give the full id or at least "
                                       f"{_MIN_PREFIX} characters of it (agentrt traj list shows the ids)")
        rows = self._query("SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? ORDER BY run_id LIMIT 11",
                           (run_id, run_id + "\U0010ffff"))
        if not rows:
            raise TrajectoryStoreError(f"no run {run_id!r} in {self.path} (agentrt traj list shows the ids)")
        if len(rows) > 1:
            shown = ", ".join(r["run_id"] for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
            raise TrajectoryStoreError(f"run id prefix {run_id!r} is ambiguous; it matches {shown}. "
                                       "Give more characters")
        return rows[0]["run_id"]

    def node_updates(self, run_id: str) -> list[tuple[str, dict[str, Any]]]:
        """What each node of a run wrote, in order, as recorded: (node, update). Graph-specific
        records live here, e.g. SIM-RAG's ``rounds`` and CR-Planner's ``plan_steps``."""
        run_id = self._resolve(run_id)
        rows = self._query("SELECT node, payload FROM events WHERE run_id = ? ORDER BY seq", (run_id,))
        return [(r["node"], json.loads(r["payload"])) for r in rows]

    def _load(self, run_id: str) -> Trajectory:
        header = self._query("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        if not header:
            raise TrajectoryStoreError(f"no run {run_id!r} in {self.path} (agentrt traj list shows the ids)")
        events = self._query("SELECT seq, at, node, payload FROM events WHERE run_id = ? ORDER BY seq", (run_id,))
        scores = self._query("SELECT critic, target, score, accepted, at FROM critic_scores WHERE run_id = ?"
                             " ORDER BY id", (run_id,))
        feedback = self._query("SELECT key, score, comment, source, at FROM feedback WHERE run_id = ? ORDER BY id",
                               (run_id,))
        try:
            return assemble(
                header[0],
                [(e["seq"], e["at"], e["node"], json.loads(e["payload"])) for e in events],
                [CriticScore(critic=s["critic"], target=s["target"], score=s["score"],
                             accepted=None if s["accepted"] is None else bool(s["accepted"]), at=utc(s["at"]))
                 for s in scores],
                [Feedback(key=f["key"], score=f["score"], comment=f["comment"], source=f["source"], at=utc(f["at"]))
                 for f in feedback],
            )
        except (ValueError, TypeError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
            raise TrajectoryStoreError(f"run {run_id!r} in {self.path} cannot be read: {exc}") from exc

    def get(self, run_id: str) -> Trajectory:
        """The trajectory of a run, by full id or a unique prefix of at least 4 characters."""
        return self._load(self._resolve(run_id))

    def _where(self, graph: str | None, model: str | None, status: str | None, since: datetime | None,
               thread_id: str | None, owner: str | None = None) -> tuple[str, tuple[Any, ...]]:
        if status is not None and status not in STATUSES:
            raise TrajectoryStoreError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("graph", graph), ("model", model), ("status", status), ("thread_id", thread_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if owner is not None:  # the API key a server run was made with
            clauses.append("json_extract(metadata, '$.owner') = ?")
            params.append(owner)
        if since is not None:  # a naive datetime means local time, as datetime.timestamp() reads it
            clauses.append("started_at >= ?")
            params.append(since.timestamp())
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)

    def list(self, *, limit: int = 50, graph: str | None = None, model: str | None = None, status: str | None = None,
             since: datetime | None = None, thread_id: str | None = None,
             owner: str | None = None) -> builtins.list[RunSummary]:
        """Summaries of matching runs, newest first."""
        where, params = self._where(graph, model, status, since, thread_id, owner)
        rows = self._query(
            "SELECT run_id, thread_id, graph, model, status, started_at, ended_at, final_answer, stop_reason,"
            f" reward FROM runs{where} ORDER BY started_at DESC, rowid DESC LIMIT ?", params + (limit,))
        return [summarize(r) for r in rows]

    def iter(self, *, graph: str | None = None, model: str | None = None, status: str | None = None,
             since: datetime | None = None, thread_id: str | None = None,
             owner: str | None = None) -> Iterator[Trajectory]:
        """Every matching trajectory, newest first, loaded one at a time (the lock is not held between)."""
        where, params = self._where(graph, model, status, since, thread_id, owner)
        ids = [r["run_id"] for r in self._query(f"SELECT run_id FROM runs{where} ORDER BY started_at DESC, rowid DESC",
                                                params)]
        for run_id in ids:
            yield self._load(run_id)


    # --- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
