"""Hybrid retrieval: BM25 over the same documents, fused with the dense ranking by reciprocal rank fusion.

Dense vectors blur exact strings (part numbers, rare names, codes): a query ``KX80417`` lands
nearer a passage about ``KX-80417`` than the one that contains the exact token. BM25 matches the
token. Reciprocal rank fusion (Cormack, Clarke & Buettcher, SIGIR 2009) combines the two rankings
by rank alone, so cosine similarities and BM25 scores, which live on unrelated scales, never have
to be calibrated against each other.

A ``bm25s`` index is static (no add, no remove): its owner builds a new one when the documents
change, which takes about a second per 10,000 passages.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import numpy as np

RRF_K = 60
_WORD = re.compile(r"\w+")


def bm25_tokens(text: str) -> list[str]:
    """Lower-cased words without English stop words (no stemming: exact names are what BM25 adds)."""
    from bm25s.stopwords import STOPWORDS_EN

    stop = set(STOPWORDS_EN)
    return [w for w in _WORD.findall(text.lower()) if w not in stop]


def reciprocal_rank_fusion(rankings: Iterable[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Items by ``sum(1 / (k + rank))`` over the rankings (rank from 1), best first."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: -kv[1])


class BM25Ranking:
    """A BM25 index over texts keyed by integer ids (the vector ids of a ``VectorIndex``)."""

    def __init__(self, bm25: Any, ids: np.ndarray) -> None:
        self._bm25, self.ids = bm25, ids

    @classmethod
    def build(cls, rows: Iterable[tuple[int, str]]) -> BM25Ranking | None:
        """An index of ``(id, text)`` rows; None when there are none."""
        import bm25s

        rows = list(rows)
        if not rows:
            return None
        bm25 = bm25s.BM25()
        bm25.index([bm25_tokens(text) for _, text in rows], show_progress=False)
        return cls(bm25, np.array([i for i, _ in rows], dtype=np.int64))

    @classmethod
    def load(cls, folder: Path) -> BM25Ranking:
        import bm25s

        return cls(bm25s.BM25.load(str(folder), show_progress=False), np.load(folder / "ids.npy"))

    def save(self, folder: Path) -> None:
        """Written to ``folder.tmp`` and renamed, so ``folder`` is complete or absent."""
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self._bm25.save(str(tmp), show_progress=False)
        np.save(tmp / "ids.npy", self.ids)
        os.replace(tmp, folder)

    def __len__(self) -> int:
        return len(self.ids)

    def rank(self, query: str, want: int, banned: Collection[int] = ()) -> list[int]:
        """Ids of the best ``want`` matches, best first: only texts sharing a word with the query."""
        token_ids = self._bm25.get_tokens_ids(bm25_tokens(query))
        if not token_ids or want < 1:
            return []
        scores = np.asarray(self._bm25.get_scores_from_ids(token_ids), dtype=np.float32)
        if banned:
            scores[np.isin(self.ids, np.fromiter(banned, dtype=np.int64))] = 0.0
        want = min(want, len(scores))
        top = np.argpartition(-scores, want - 1)[:want]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [int(self.ids[i]) for i in top if scores[i] > 0]
