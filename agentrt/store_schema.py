"""The trajectory store's tables: a run header, its append-only events, critic scores and
feedback. Version 2 (``trajectory.SCHEMA_VERSION``) added the ``process`` column and ``feedback``;
the store migrates a version-1 file when it opens it."""

TABLES = ("runs", "events", "critic_scores", "feedback")
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    schema_version INTEGER NOT NULL,
    thread_id TEXT,
    graph TEXT NOT NULL,
    model TEXT,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    final_answer TEXT,
    stop_reason TEXT,
    error TEXT,
    reward REAL,
    metadata TEXT NOT NULL DEFAULT '{}',
    process TEXT
);
CREATE INDEX IF NOT EXISTS runs_started_at ON runs(started_at);
CREATE INDEX IF NOT EXISTS runs_graph ON runs(graph);
CREATE INDEX IF NOT EXISTS runs_thread_id ON runs(thread_id);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    node TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS critic_scores (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    critic TEXT NOT NULL,
    target TEXT NOT NULL,
    score REAL NOT NULL,
    accepted INTEGER,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS critic_scores_run ON critic_scores(run_id);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    score REAL NOT NULL,
    comment TEXT,
    source TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_run ON feedback(run_id);
"""
