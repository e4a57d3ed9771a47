"""Retrieval benchmark: how fast an index is built, and how fast and how right its searches are.

Two questions decide how the index is configured:

1. **Build throughput** (docs/s, embedding vs indexing time) on real passages, the pooled HotpotQA
   paragraphs: embedding dominates, which is why vectors are cached in the index.
2. **Query latency against recall** of exact (``IndexFlatIP``) vs approximate (HNSW, M=32, several
   efSearch) search at several sizes, on synthetic unit vectors (1M x 384 float32 = 1.5 GB), plus
   the real MiniLM vectors of the demo index with real HotpotQA questions when it exists.
   Latency is per single query (p50/p99 over ``queries`` searches, one at a time on one FAISS
   thread, as an agent asks and as ``VectorIndex.search`` runs) and amortised over one batched
   call on all threads. Recall@10 is the overlap with the exact top 10.

Synthetic data comes in two shapes. ``random``: isotropic Gaussian, the degenerate worst case for
HNSW (in 384 dimensions every point's neighbours are almost equidistant, top-10 cosines
~0.19-0.20, so recall collapses as the index grows: a lower bound no real corpus comes near).
``fitted`` (the default when the demo index exists): Gaussian with the mean and covariance of the
real MiniLM paragraph vectors, so the spectrum (effective dimension ~120 of 384) is realistic;
real embeddings are more clustered still, so even this is pessimistic (the ``hotpotqa`` rows show
real data). Each query is a database vector plus noise (cosine ~0.9 to it), as a real query has a
right answer.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from agentrt.retrieval.embedders import Embedder
from agentrt.retrieval.index import VectorIndex
from agentrt.retrieval.index_files import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    faiss_threads,
    new_faiss_index,
    set_ef_search,
)
from agentrt.retrieval.types import Document


class BuildResult(BaseModel):
    docs: int
    embedder: str
    embed_s: float
    index_s: float  # everything else: SQLite rows, FAISS add, BM25, atomic save
    total_s: float
    docs_per_s: float


class LatencyRow(BaseModel):
    data: str  # "random" or "hotpotqa"
    size: int
    kind: str  # "flat" or "hnsw"
    ef_search: int | None
    build_s: float
    p50_ms: float
    p99_ms: float
    batch_ms: float  # per query, when all queries go in one call
    recall_at_10: float


class _TimedEmbedder:
    """Wraps an embedder to count the seconds spent embedding (to split build time)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.seconds = inner, 0.0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: list[str]) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.seconds += time.perf_counter() - start


def measure_build(docs: list[Document], embedder: Embedder, *, hybrid: bool = True,
                  progress: Callable[[int, int], None] | None = None) -> BuildResult:
    """Build a throw-away index of ``docs`` (in a temporary folder) and time its parts."""
    timed = _TimedEmbedder(embedder)
    with tempfile.TemporaryDirectory(prefix="agentrt-bench-") as tmp:
        start = time.perf_counter()
        with VectorIndex.create(Path(tmp) / "index", timed, kind="flat", hybrid=hybrid) as index:
            index.add(docs, progress=progress)
            index.save()
        total = time.perf_counter() - start
    return BuildResult(docs=len(docs), embedder=embedder.name, embed_s=timed.seconds, index_s=total - timed.seconds,
                       total_s=total, docs_per_s=len(docs) / total if total else 0.0)


def unit_vectors(n: int, dim: int, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """``n`` random unit vectors (float32, generated in chunks to keep the peak memory at 1x)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - start), dim), dtype=np.float32)
        out[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def fitted_vectors(n: int, reference: np.ndarray, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """``n`` unit vectors drawn from a Gaussian with the mean and covariance of ``reference``."""
    rng = np.random.default_rng(seed)
    mean = reference.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(reference, rowvar=False))
    factor = (vectors * np.sqrt(np.clip(values, 0, None))).T.astype(np.float32)
    out = np.empty((n, reference.shape[1]), dtype=np.float32)
    for start in range(0, n, chunk):
        block = mean + rng.standard_normal((min(chunk, n - start), reference.shape[1]), dtype=np.float32) @ factor
        out[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def noisy_queries(data: np.ndarray, n: int, seed: int = 1, noise: float = 0.5) -> np.ndarray:
    """``n`` queries, each a random database vector plus Gaussian noise (cosine ~0.9 to it)."""
    rng = np.random.default_rng(seed)
    rows = data[rng.choice(len(data), size=n, replace=False)]
    q = rows + rng.standard_normal(rows.shape, dtype=np.float32) * np.float32(noise / np.sqrt(data.shape[1]))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def _timed_searches(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, float, float, float]:
    """(ids of the batched search, p50 ms, p99 ms one query at a time, ms per query batched).

    Single queries run on one FAISS thread, as ``VectorIndex.search`` runs them; the batch uses all.
    """
    single = []
    with faiss_threads(1):
        index.search(queries[:1], k)  # warm-up
        for i in range(len(queries)):
            start = time.perf_counter()
            index.search(queries[i:i + 1], k)
            single.append(1000 * (time.perf_counter() - start))
    start = time.perf_counter()
    _, ids = index.search(queries, k)
    batch = 1000 * (time.perf_counter() - start) / len(queries)
    return ids, float(np.percentile(single, 50)), float(np.percentile(single, 99)), batch


def measure_latency(data: np.ndarray, queries: np.ndarray, *, label: str, k: int = 10,
                    ef_searches: tuple[int, ...] = (64, 128), m: int = HNSW_M,
                    ef_construction: int = HNSW_EF_CONSTRUCTION,
                    on_row: Callable[[LatencyRow], None] | None = None) -> list[LatencyRow]:
    """Exact search, then HNSW at each efSearch, on the same vectors and queries (the exact
    index, built first, gives the truth for recall and is freed before HNSW is built)."""
    ids = np.arange(len(data), dtype=np.int64)
    rows: list[LatencyRow] = []

    def emit(row: LatencyRow) -> None:
        rows.append(row)
        if on_row:
            on_row(row)

    start = time.perf_counter()
    flat = new_faiss_index("flat", data.shape[1])
    flat.add_with_ids(data, ids)
    build = time.perf_counter() - start
    truth, p50, p99, batch = _timed_searches(flat, queries, k)
    emit(LatencyRow(data=label, size=len(data), kind="flat", ef_search=None, build_s=build,
                    p50_ms=p50, p99_ms=p99, batch_ms=batch, recall_at_10=1.0))
    del flat
    start = time.perf_counter()
    hnsw = new_faiss_index("hnsw", data.shape[1], m, ef_construction)
    hnsw.add_with_ids(data, ids)
    build = time.perf_counter() - start
    for ef in ef_searches:
        set_ef_search(hnsw, ef)
        found, p50, p99, batch = _timed_searches(hnsw, queries, k)
        emit(LatencyRow(data=label, size=len(data), kind="hnsw", ef_search=ef, build_s=build, p50_ms=p50,
                        p99_ms=p99, batch_ms=batch, recall_at_10=recall_at(truth, found, k)))
    return rows


def recall_at(truth: np.ndarray, found: np.ndarray, k: int) -> float:
    """Mean share of each exact top-k found in the approximate top-k."""
    return float(np.mean([len(set(t[:k]) & set(f[:k])) / k for t, f in zip(truth, found)]))


def hotpotqa_vectors(index: VectorIndex, questions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The demo index's cached paragraph vectors and the embedded questions (real data)."""
    _, data = index.vectors()
    return data, index.embedder.embed(questions)


def chart(rows: list[LatencyRow], path: Path) -> Path | None:
    """Latency (p50, log scale) against recall@10, one point per configuration; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (data, size), marker in zip(sorted({(r.data, r.size) for r in rows}), "osD^v<>p"):
        group = [r for r in rows if (r.data, r.size) == (data, size)]
        ax.plot([r.recall_at_10 for r in group], [r.p50_ms for r in group], marker=marker, linestyle="",
                label=f"{data} {size:,}")
        for r in group:
            ax.annotate("exact" if r.kind == "flat" else f"ef{r.ef_search}", (r.recall_at_10, r.p50_ms),
                        textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("recall@10 (vs exact)")
    ax.set_ylabel("p50 latency per query (ms)")
    ax.set_title("FAISS exact vs HNSW (M=32), one query at a time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
