"""What an index is on disk, apart from the index object: its manifest, the SQLite table of
documents, FAISS index construction and threads, and writing files so that a crash never leaves
half of one (checksums, fsync, atomic renames)."""

from __future__ import annotations

import json
import os
import sqlite3
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
from pydantic import BaseModel, ValidationError

from agentrt.retrieval.embedders import Embedder
from agentrt.retrieval.errors import RetrievalError
from agentrt.retrieval.types import Document

FORMAT = "agentrt-vector-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "documents.sqlite"
AUTO_HNSW_FROM = 50_000
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 40, 64
COMPACT_FRACTION = 0.2
_SQL_CHUNK = 500  # ids per "IN (...)": under SQLite's variable limit

Kind = Literal["auto", "flat", "hnsw"]
ProgressFn = Callable[[int, int], None]  # (documents done, documents in all)


class EmbedderInfo(BaseModel):
    name: str
    dim: int
    spec: str


class IndexManifest(BaseModel):
    """``manifest.json``: read first on open, so an incompatible folder is refused before loading."""

    format: Literal["agentrt-vector-index"] = FORMAT
    format_version: int = FORMAT_VERSION
    embedder: EmbedderInfo
    kind: Kind
    hybrid: bool
    hnsw_m: int = HNSW_M
    hnsw_ef_construction: int = HNSW_EF_CONSTRUCTION
    hnsw_ef_search: int = HNSW_EF_SEARCH
    generation: int = 0
    effective_kind: Literal["flat", "hnsw"] = "flat"
    files: dict[str, str] = {}
    counts: dict[str, int] = {}
    created_at: str = ""
    updated_at: str = ""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    vec_id INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tombstones (vec_id INTEGER PRIMARY KEY);
"""


def embed_text(doc: Document) -> str:
    """What gets embedded: the title matters (entity questions name it), so it leads the text."""
    return f"{doc.title}: {doc.text}" if doc.title else doc.text


def new_faiss_index(kind: Literal["flat", "hnsw"], dim: int, m: int = HNSW_M,
                    ef_construction: int = HNSW_EF_CONSTRUCTION) -> faiss.IndexIDMap2:
    """An empty id-mapped FAISS index on inner product (= cosine on unit vectors)."""
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    else:
        inner = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = ef_construction
    return faiss.IndexIDMap2(inner)


@contextmanager
def faiss_threads(n: int) -> Iterator[None]:
    """FAISS's OpenMP thread count for the calling thread, within the block.

    One query gains nothing from a thread team: ``IndexIDMap``'s label translation alone opens a
    parallel region, and when another process keeps a core busy every region waits for it (measured:
    an HNSW query 0.06 ms on one thread, 8-15 ms at p50 on two with the other core loaded).
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def set_ef_search(index: faiss.IndexIDMap2, ef: int) -> None:
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = ef


def _crc32(path: Path) -> str:
    """Checksum of a file (~1 GB/s): a damaged vector file is refused instead of returning wrong
    neighbours; 15 ms for the demo index, about 1.5 s for a million 384-d vectors."""
    crc = 0
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _no_index(folder: Path) -> RetrievalError:
    return RetrievalError(f"no index at {folder}: build one with `agentrt index build CORPUS.jsonl --out {folder}`")


def read_manifest(folder: Path) -> IndexManifest:
    """The folder's manifest, refused with a clear message when missing, corrupt or incompatible."""
    path = folder / MANIFEST
    if not path.is_file():
        raise _no_index(folder)
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RetrievalError(f"the index manifest {path} is unreadable ({exc}): build the index again") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise RetrievalError(f"{path} is not an agentrt index manifest: build the index again")
    if raw.get("format_version") != FORMAT_VERSION:
        raise RetrievalError(
            f"the index at {folder} has format version {raw.get('format_version')!r}, but this agentrt reads "
            f"version {FORMAT_VERSION}: build it again with `agentrt index build CORPUS.jsonl --out {folder}`"
        )
    try:
        return IndexManifest.model_validate(raw)
    except ValidationError as exc:
        raise RetrievalError(f"the index manifest {path} is corrupt: {exc}") from exc


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def _check_embedder(folder: Path, manifest: IndexManifest, embedder: Embedder) -> None:
    want = manifest.embedder
    if embedder.name != want.name or embedder.dim != want.dim:
        raise RetrievalError(
            f"the index at {folder} was built with the embedder {want.name} (dim {want.dim}), not "
            f"{embedder.name} (dim {embedder.dim}): search it with the same embedder, or build it again"
        )


def _check_vectors(vectors: np.ndarray, n: int, dim: int) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (n, dim):
        raise RetrievalError(f"the embedder returned vectors of shape {vectors.shape}, expected {(n, dim)}")
    return vectors


def _write_faiss(index: faiss.Index, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(tmp))
    _fsync(tmp)
    os.replace(tmp, path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(path.parent)
