"""A persistent cache of model calls, behind LangChain's own cache interface.

Evaluations run many settings that share their first steps: with greedy decoding, single-round
RAG, fixed N-round RAG and SIM-RAG make the very same first calls and differ only in where they
stop. With this cache each distinct call is computed once. It is keyed by LangChain on the full
prompt and the model's identifying parameters (spec, sampling parameters, tools), and only
greedy calls should go through it (see :func:`cached_models`). Each cached message keeps the
``latency_s`` of the call that computed it, so cost can still be reported honestly.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core._api import LangChainBetaWarning
from langchain_core.caches import BaseCache
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.load import dumps, loads
from langchain_core.outputs import Generation


class SQLiteModelCache(BaseCache):
    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def _key(prompt: str, llm_string: str) -> str:
        return hashlib.sha256(f"{llm_string}\x00{prompt}".encode()).hexdigest()

    def lookup(self, prompt: str, llm_string: str) -> Sequence[Generation] | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM calls WHERE key = ?", (self._key(prompt, llm_string),)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        with warnings.catch_warnings():  # `loads` is marked beta; the format is LangChain's own
            warnings.simplefilter("ignore", LangChainBetaWarning)
            return loads(row[0], allowed_objects="core")

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO calls VALUES (?, ?)", (self._key(prompt, llm_string), dumps(list(return_val))))
            self._conn.commit()

    def clear(self, **kwargs: Any) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM calls")
            self._conn.commit()


@contextlib.contextmanager
def cached_models(path: str | Path | None) -> Iterator[SQLiteModelCache | None]:
    """Within the block, every LangChain chat model call goes through the cache at ``path``
    (``None``: no cache). Use it only for greedy (temperature 0) runs."""
    if path is None:
        yield None
        return
    previous = get_llm_cache()
    cache = SQLiteModelCache(path)
    set_llm_cache(cache)
    try:
        yield cache
    finally:
        set_llm_cache(previous)
