"""How a :class:`~agentrt.retrieval.index.VectorIndex` answers a query: dense neighbours from
FAISS, BM25 from the stored texts, fused by reciprocal rank, excluded ids skipped. A mixin: the
state (``_faiss``, ``_bm25``, ``_conn``, ``_lock``) is the index's own."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import numpy as np

from agentrt.retrieval.errors import RetrievalError
from agentrt.retrieval.hybrid import BM25Ranking, reciprocal_rank_fusion
from agentrt.retrieval.index_files import (
    _SQL_CHUNK,
    faiss_threads,
    set_ef_search,
)
from agentrt.retrieval.types import ScoredDocument


class Searching:
    def search(self, query: str, k: int = 5, exclude: Collection[str] = (), *,
               hybrid: bool | None = None) -> list[ScoredDocument]:
        """The ``k`` documents most similar to ``query``, best first, none of whose ids is in ``exclude``.

        ``score`` is the cosine similarity (dense) or the reciprocal-rank-fusion score (hybrid).
        ``hybrid=None`` uses the index's setting; ``True`` on a dense-only index builds BM25 in memory.
        """
        if not isinstance(query, str) or not query.strip():
            raise RetrievalError("empty query: give some text to search for")
        if not isinstance(k, int) or k < 1:
            raise RetrievalError(f"k must be at least 1, got {k!r}")
        use_hybrid = self.manifest.hybrid if hybrid is None else hybrid
        with self._lock:
            if self._live == 0:
                return []
            banned = self._dead | self._vec_ids_of(exclude)
            vector = self.embedder.embed([query])
            if not use_hybrid:
                return self._materialise(self._dense(vector, k, banned))
            depth = max(50, 4 * k)
            dense = [v for v, _ in self._dense(vector, depth, banned)]
            sparse = self._sparse(query, depth, banned)
            return self._materialise(reciprocal_rank_fusion([dense, sparse])[:k])

    def _dense(self, vector: np.ndarray, want: int, banned: set[int]) -> list[tuple[int, float]]:
        """The best ``want`` live, allowed vectors. Over-fetches past excluded and tombstoned ids,
        widening the search until enough are found or the whole index was searched."""
        total = int(self._faiss.ntotal)
        n = min(total, want + len(banned) + 16)
        while True:
            set_ef_search(self._faiss, max(self.manifest.hnsw_ef_search, n))
            with faiss_threads(1):
                scores, ids = self._faiss.search(vector, n)
            hits = [(int(i), float(s)) for s, i in zip(scores[0], ids[0]) if i >= 0 and int(i) not in banned]
            if len(hits) >= want or n >= total:
                return hits[:want]
            n = min(total, n * 4)

    def _sparse(self, query: str, want: int, banned: set[int]) -> list[int]:
        """Vector ids of the best BM25 matches (only documents sharing a word with the query)."""
        self._ensure_bm25()
        return self._bm25.rank(query, want, banned) if self._bm25 is not None else []

    def _ensure_bm25(self) -> None:
        """A BM25 of the current documents (bm25s indexes are static: rebuilt after changes)."""
        if self._bm25 is not None and not self._bm25_stale:
            return
        rows = self._conn.execute("SELECT vec_id, title, text FROM documents ORDER BY vec_id")
        self._bm25 = BM25Ranking.build((v, f"{title} {text}") for v, title, text in rows)
        self._bm25_stale, self._bm25_saved = False, ""

    def _vec_ids_of(self, doc_ids: Collection[str]) -> set[int]:
        ids = list(dict.fromkeys(doc_ids))
        out: set[int] = set()
        for i in range(0, len(ids), _SQL_CHUNK):
            part = ids[i:i + _SQL_CHUNK]
            q = f"SELECT vec_id FROM documents WHERE id IN ({','.join('?' * len(part))})"
            out.update(r[0] for r in self._conn.execute(q, part))
        return out

    def _materialise(self, hits: list[tuple[int, float]]) -> list[ScoredDocument]:
        if not hits:
            return []
        rows: dict[int, tuple[Any, ...]] = {}
        vec_ids = [v for v, _ in hits]
        for i in range(0, len(vec_ids), _SQL_CHUNK):
            part = vec_ids[i:i + _SQL_CHUNK]
            q = f"SELECT vec_id, id, title, text, metadata FROM documents WHERE vec_id IN ({','.join('?' * len(part))})"
            rows.update((r[0], r) for r in self._conn.execute(q, part))
        return [
            ScoredDocument(id=r[1], title=r[2], text=r[3], metadata=json.loads(r[4]), score=score)
            for v, score in hits if (r := rows.get(v)) is not None
        ]

    # ----- changing ----------------------------------------------------------------------------
