"""``VectorIndex``: a FAISS index and its documents, in one folder, safe to crash in.

Folder layout::

    manifest.json          what the folder is: format version, embedder (name, dim, spec), kind, counts
    documents.sqlite       the documents, their cached vectors (float32 bytes), tombstones, and which
                           generation of the files below is current
    vectors.<gen>.faiss    ``IndexIDMap2`` over ``IndexFlatIP`` (exact) or ``IndexHNSWFlat`` (approximate)
    bm25.<gen>/            the BM25 index of the same documents (hybrid indexes only)

Why it is built this way:

- **ids**: FAISS holds int64 ids that are SQLite row ids (``AUTOINCREMENT``: never reused), so
  ``add``/``delete`` work without rebuilding. Re-adding an existing document id replaces it (a new
  row, a new vector id; the vector is reused when the text did not change).
- **HNSW cannot remove vectors.** A deleted or replaced vector of an HNSW index stays in the graph;
  its id goes into a tombstone set (kept in SQLite) and searches filter it out. ``save`` rebuilds
  the graph from the cached vectors once tombstones pass 20% of it. Flat indexes remove for real.
- **Vectors are cached** in the SQLite rows, so rebuilding FAISS (a kind change, compaction,
  ``open(..., repair=True)``) never re-embeds: embedding is the slow part (~35 paragraphs/s on 2 cores).
- **Changes are kept by ``save()`` only**, atomically: ``add``/``delete`` run inside one open SQLite
  transaction; ``save`` writes the FAISS (and BM25) files of a new generation under new names, then
  commits the transaction that makes them current (the single commit point), then rewrites the
  manifest through a temporary file and removes the previous generation. A crash at any moment
  leaves the previous generation or the new one, never a mix; ``close()`` without ``save()`` drops
  the changes.
- **Hybrid**: BM25 (``bm25s``) over the same documents, fused with the dense ranking by reciprocal
  rank fusion (k=60). A bm25s index is static, so it is rebuilt from the stored texts when the
  documents changed (lazily before a hybrid search, and on ``save``): fine for corpora that fit one
  machine (~1 s per 10k passages).
- ``kind="auto"``: exact search below 50,000 vectors (at that size it is a few ms per query and
  always right), HNSW above; decided at each ``save``.

An index object is safe to share between threads (graphs call tools from worker threads): every
operation holds one lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
from pydantic import BaseModel, ValidationError

from agentrt.retrieval.embedders import Embedder, load_embedder, spec_of
from agentrt.retrieval.errors import RetrievalError
from agentrt.retrieval.hybrid import BM25Ranking, reciprocal_rank_fusion
from agentrt.retrieval.types import Document, ScoredDocument

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


class VectorIndex:
    """Dense (optionally hybrid) retrieval over documents; implements the ``Retriever`` protocol.

    Make one with ``VectorIndex.create(folder, embedder, kind=..., hybrid=...)`` or load one with
    ``VectorIndex.open(folder)``; ``add``, ``delete``, ``save``, ``search``.
    """

    def __init__(self, folder: Path, conn: sqlite3.Connection, manifest: IndexManifest,
                 embedder: Embedder | None) -> None:
        self.folder, self._conn, self.manifest, self._embedder = folder, conn, manifest, embedder
        self._lock = threading.RLock()
        self._faiss: faiss.IndexIDMap2 = new_faiss_index("flat", manifest.embedder.dim)
        self._kind: Literal["flat", "hnsw"] = "flat"
        self._dead: set[int] = set()
        self._live = 0
        self._generation = 0
        self._files: dict[str, str] = {}
        self._dirty = False
        self._bm25: BM25Ranking | None = None
        self._bm25_stale = True
        self._bm25_saved = ""  # the folder that holds the saved BM25 of the current documents

    # ----- making and loading ------------------------------------------------------------------

    @classmethod
    def create(cls, folder: str | Path, embedder: Embedder | str = "minilm", kind: Kind = "auto",
               hybrid: bool = False, *, embedder_spec: str | None = None) -> VectorIndex:
        """A new empty index in ``folder`` (created; an existing folder must be empty), saved at once.

        ``embedder`` is an ``Embedder`` or a spec for ``load_embedder``; ``embedder_spec`` is what
        ``open`` uses to load it again when you pass an object ``load_embedder`` cannot name.
        """
        folder = Path(folder)
        if kind not in ("auto", "flat", "hnsw"):
            raise RetrievalError(f"unknown index kind {kind!r}: use auto, flat or hnsw")
        if (folder / MANIFEST).exists():
            raise RetrievalError(f"an index already exists at {folder}: open it, or delete the folder first")
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise RetrievalError(f"cannot create an index at {folder}: it exists and is not an empty folder")
        if isinstance(embedder, str):
            embedder = load_embedder(embedder)
        made = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        conn = None
        try:
            conn = _connect(folder / DATABASE)
            conn.executescript(_SCHEMA)
            manifest = IndexManifest(
                embedder=EmbedderInfo(name=embedder.name, dim=embedder.dim, spec=spec_of(embedder, embedder_spec)),
                kind=kind, hybrid=hybrid, created_at=_now(),
            )
            index = cls(folder, conn, manifest, embedder)
            index._kind = "hnsw" if kind == "hnsw" else "flat"
            index._faiss = index._new_faiss(index._kind)
            index._dirty = True
            index.save()
            return index
        except BaseException:
            if conn is not None:
                conn.close()
            if made:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                for p in folder.iterdir():
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            raise

    @classmethod
    def open(cls, folder: str | Path, embedder: Embedder | str | None = None, *, repair: bool = False) -> VectorIndex:
        """The index saved in ``folder``.

        ``embedder``: by default the one the manifest names, loaded on the first ``add``/``search``
        (so opening is fast); one given here must have the same name and dim. ``repair=True``
        rebuilds the FAISS and BM25 files from the documents and vectors cached in SQLite (for a
        missing or corrupt vector file) and saves them.
        """
        folder = Path(folder)
        manifest = read_manifest(folder)
        if not (folder / DATABASE).is_file():
            raise RetrievalError(f"the index at {folder} has no {DATABASE}: build it again")
        if isinstance(embedder, str):
            embedder = load_embedder(embedder)
        if embedder is not None:
            _check_embedder(folder, manifest, embedder)
        try:
            conn = _connect(folder / DATABASE)
        except sqlite3.Error as exc:
            raise RetrievalError(f"cannot read {folder / DATABASE}: {exc}") from exc
        index = cls(folder, conn, manifest, embedder)
        try:
            index._load(repair)
        except BaseException:
            conn.close()
            raise
        return index

    def _load(self, repair: bool) -> None:
        try:
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
            self._live = self._conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            self._dead = {r[0] for r in self._conn.execute("SELECT vec_id FROM tombstones")}
        except sqlite3.DatabaseError as exc:
            raise RetrievalError(f"{self.folder / DATABASE} is corrupt ({exc}): build the index again") from exc
        if "generation" not in meta:
            raise RetrievalError(f"{self.folder / DATABASE} was never saved completely: build the index again")
        self._generation = int(meta["generation"])
        self._kind = meta["effective_kind"]  # type: ignore[assignment]
        self._files = {"faiss": meta["faiss_file"], "bm25": meta.get("bm25_dir", "")}
        if repair:
            self._rebuild(self._target_kind())
            self._bm25_stale, self._dirty = True, True
            self.save()
            return
        path = self.folder / self._files["faiss"]
        repair_hint = (f"repair it from the vectors cached in {DATABASE} (no re-embedding) with "
                       f"`agentrt index repair {self.folder}`, or build the index again")
        if not path.is_file():
            raise RetrievalError(f"the vector file {path} is missing: {repair_hint}")
        if path.stat().st_size != int(meta.get("faiss_bytes", -1)) or _crc32(path) != meta.get("faiss_crc32"):
            raise RetrievalError(f"the vector file {path} is corrupt (its size or checksum changed): {repair_hint}")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise RetrievalError(f"the vector file {path} is corrupt ({str(exc).splitlines()[-1]}): {repair_hint}") from exc
        if not isinstance(index, faiss.IndexIDMap2):
            index = faiss.downcast_index(index)
        if (not isinstance(index, faiss.IndexIDMap2) or index.d != self.manifest.embedder.dim
                or index.ntotal != self._live + len(self._dead)):
            raise RetrievalError(f"the vector file {path} does not match the documents: {repair_hint}")
        self._faiss = index
        if self.manifest.hybrid and self._files["bm25"]:
            self._bm25_saved = self._files["bm25"]
            self._load_bm25(self.folder / self._files["bm25"])

    def _load_bm25(self, folder: Path) -> None:
        """The saved BM25; if it is damaged it is rebuilt from the texts (it is only derived data)."""
        try:
            self._bm25 = BM25Ranking.load(folder)
            self._bm25_stale = len(self._bm25) != self._live
        except Exception:  # any damage: rebuild lazily instead of refusing the whole index
            self._bm25, self._bm25_stale, self._bm25_saved = None, True, ""

    # ----- reading -----------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The embedder, loaded from the manifest's spec on first use."""
        with self._lock:
            if self._embedder is None:
                embedder = load_embedder(self.manifest.embedder.spec)
                _check_embedder(self.folder, self.manifest, embedder)
                self._embedder = embedder
            return self._embedder

    @property
    def kind(self) -> str:
        """``flat`` or ``hnsw``: the FAISS index in use now."""
        return self._kind

    def __len__(self) -> int:
        return self._live

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.get(doc_id) is not None

    def get(self, doc_id: str) -> Document | None:
        """The document with this id, if the index holds it."""
        with self._lock:
            row = self._conn.execute("SELECT id, title, text, metadata FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return None if row is None else Document(id=row[0], title=row[1], text=row[2], metadata=json.loads(row[3]))

    def vectors(self) -> tuple[list[str], np.ndarray]:
        """Every document id with its cached vector (``(n, dim)`` float32), in insertion order."""
        with self._lock:
            rows = self._conn.execute("SELECT id, vector FROM documents ORDER BY vec_id").fetchall()
        data = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), self.manifest.embedder.dim)
        return [r[0] for r in rows], data.copy()

    def counts(self) -> dict[str, int]:
        return {"documents": self._live, "vectors": int(self._faiss.ntotal), "tombstones": len(self._dead)}

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

    def add(self, documents: Iterable[Document], batch_size: int = 256, progress: ProgressFn | None = None) -> int:
        """Embed and add documents (kept by the next ``save``); an id already in the index is
        replaced. Returns how many were added. ``progress(done, total)`` after each batch.

        Vectors of a document re-added with the same title and text are reused, not re-embedded.
        """
        docs = list({d.id: d for d in documents}.values())  # a repeated id: the last one wins
        for d in docs:
            if not d.id:
                raise RetrievalError(f"a document has an empty id (title {d.title!r}): every document needs an id")
        total = len(docs)
        if progress:
            progress(0, total)
        with self._lock:
            embedder = self.embedder
            for start in range(0, total, batch_size):
                batch = docs[start:start + batch_size]
                texts = [embed_text(d) for d in batch]
                hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
                old = self._rows_of([d.id for d in batch])
                vectors = np.empty((len(batch), self.manifest.embedder.dim), dtype=np.float32)
                todo = [i for i, d in enumerate(batch) if d.id not in old or old[d.id][1] != hashes[i]]
                if todo:
                    vectors[todo] = _check_vectors(embedder.embed([texts[i] for i in todo]), len(todo), self.manifest.embedder.dim)
                for i in set(range(len(batch))) - set(todo):  # same text as stored: reuse the cached vector
                    vectors[i] = np.frombuffer(old[batch[i].id][2], dtype=np.float32)
                self._apply(batch, hashes, vectors, [v for v, _, _ in old.values()])
                if progress:
                    progress(min(start + batch_size, total), total)
        return total

    def _rows_of(self, doc_ids: list[str]) -> dict[str, tuple[int, str, bytes]]:
        out: dict[str, tuple[int, str, bytes]] = {}
        for i in range(0, len(doc_ids), _SQL_CHUNK):
            part = doc_ids[i:i + _SQL_CHUNK]
            q = f"SELECT id, vec_id, content_hash, vector FROM documents WHERE id IN ({','.join('?' * len(part))})"
            out.update((r[0], (r[1], r[2], r[3])) for r in self._conn.execute(q, part))
        return out

    def _apply(self, batch: list[Document], hashes: list[str], vectors: np.ndarray, replaced: list[int]) -> None:
        """One batch into SQLite (all or nothing, via a savepoint), then into FAISS."""
        self._begin()
        self._conn.execute("SAVEPOINT batch")
        try:
            self._delete_rows(replaced)
            new_ids = []
            for d, h, v in zip(batch, hashes, vectors):
                cur = self._conn.execute(
                    "INSERT INTO documents (id, title, text, metadata, content_hash, vector) VALUES (?, ?, ?, ?, ?, ?)",
                    (d.id, d.title, d.text, json.dumps(d.metadata, default=str), h, v.tobytes()),
                )
                new_ids.append(cur.lastrowid)
        except BaseException:
            self._conn.execute("ROLLBACK TO batch")
            self._conn.execute("RELEASE batch")
            raise
        self._conn.execute("RELEASE batch")
        self._forget_vectors(replaced)
        self._faiss.add_with_ids(np.ascontiguousarray(vectors), np.array(new_ids, dtype=np.int64))
        self._live += len(batch) - len(replaced)
        self._dirty, self._bm25_stale = True, True

    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents by id (kept by the next ``save``); unknown ids are ignored. Returns how
        many were removed."""
        with self._lock:
            vec_ids = sorted(self._vec_ids_of(list(ids)))
            if not vec_ids:
                return 0
            self._begin()
            self._delete_rows(vec_ids)
            self._forget_vectors(vec_ids)
            self._live -= len(vec_ids)
            self._dirty, self._bm25_stale = True, True
            return len(vec_ids)

    def _delete_rows(self, vec_ids: list[int]) -> None:
        for i in range(0, len(vec_ids), _SQL_CHUNK):
            part = vec_ids[i:i + _SQL_CHUNK]
            self._conn.execute(f"DELETE FROM documents WHERE vec_id IN ({','.join('?' * len(part))})", part)
            if self._kind == "hnsw":
                self._conn.executemany("INSERT OR IGNORE INTO tombstones (vec_id) VALUES (?)", [(v,) for v in part])

    def _forget_vectors(self, vec_ids: list[int]) -> None:
        if not vec_ids:
            return
        if self._kind == "flat":
            self._faiss.remove_ids(np.array(vec_ids, dtype=np.int64))
        else:  # HNSW cannot remove: the rows went into `tombstones` (see _delete_rows)
            self._dead.update(vec_ids)

    def _begin(self) -> None:
        if not self._conn.in_transaction:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise RetrievalError(f"cannot change the index at {self.folder}: {exc} (another process is writing it)") from exc

    def _target_kind(self) -> Literal["flat", "hnsw"]:
        if self.manifest.kind != "auto":
            return self.manifest.kind  # type: ignore[return-value]
        if self._kind == "hnsw":  # hysteresis: do not flip back and forth around the threshold
            return "hnsw" if self._live >= AUTO_HNSW_FROM // 2 else "flat"
        return "hnsw" if self._live >= AUTO_HNSW_FROM else "flat"

    def _new_faiss(self, kind: Literal["flat", "hnsw"]) -> faiss.IndexIDMap2:
        return new_faiss_index(kind, self.manifest.embedder.dim, self.manifest.hnsw_m, self.manifest.hnsw_ef_construction)

    def _rebuild(self, kind: Literal["flat", "hnsw"]) -> None:
        """A fresh FAISS index of ``kind`` from the cached vectors (no embedding; drops tombstones)."""
        index = self._new_faiss(kind)
        cur = self._conn.execute("SELECT vec_id, vector FROM documents ORDER BY vec_id")
        while rows := cur.fetchmany(50_000):
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            index.add_with_ids(vectors, ids)
        if self._dead:
            self._begin()
            self._conn.execute("DELETE FROM tombstones")
        self._faiss, self._kind, self._dead = index, kind, set()

    def rebuild(self) -> None:
        """Rebuild the FAISS index from the cached vectors now (kept by the next ``save``)."""
        with self._lock:
            self._rebuild(self._target_kind())
            self._dirty = True

    # ----- saving ------------------------------------------------------------------------------

    def save(self) -> None:
        """Make every change since the last save durable, atomically (see the module docstring)."""
        with self._lock:
            if not self._dirty:
                return
            target = self._target_kind()
            if target != self._kind or (self._kind == "hnsw" and len(self._dead) > COMPACT_FRACTION * max(1, self._faiss.ntotal)):
                self._rebuild(target)
            gen = self._generation + 1
            files = {"faiss": f"vectors.{gen}.faiss", "bm25": self._bm25_saved}
            written: list[Path] = []
            try:
                faiss_path = self.folder / files["faiss"]
                written.append(faiss_path)
                _write_faiss(self._faiss, faiss_path)
                if self.manifest.hybrid and (self._bm25_stale or not self._bm25_saved):
                    self._ensure_bm25()
                    if self._bm25 is not None:
                        files["bm25"] = f"bm25.{gen}"
                        written.append(self.folder / files["bm25"])
                        self._bm25.save(self.folder / files["bm25"])
                self._begin()
                self._conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [
                    ("generation", str(gen)), ("effective_kind", self._kind), ("faiss_file", files["faiss"]),
                    ("faiss_bytes", str(faiss_path.stat().st_size)), ("faiss_crc32", _crc32(faiss_path)),
                    ("bm25_dir", files["bm25"]),
                ])
                self._conn.commit()  # the commit point: from here on, generation `gen` is the index
            except BaseException:
                for p in written:
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                    p.with_name(p.name + ".tmp").unlink(missing_ok=True)
                    shutil.rmtree(p.with_name(p.name + ".tmp"), ignore_errors=True)
                raise
            self._generation, self._files, self._dirty, self._bm25_saved = gen, files, False, files["bm25"]
            self.manifest = self.manifest.model_copy(update={
                "generation": gen, "effective_kind": self._kind, "files": {**files, "documents": DATABASE},
                "counts": self.counts(), "updated_at": _now(),
            })
            _write_json(self.folder / MANIFEST, self.manifest.model_dump())
            self._remove_stale_files()

    def _remove_stale_files(self) -> None:
        keep = {MANIFEST, DATABASE, self._files["faiss"], self._files["bm25"]}
        for p in self.folder.iterdir():
            if p.name.startswith(("vectors.", "bm25.", MANIFEST + ".")) and p.name not in keep:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the database; changes not saved are dropped."""
        with self._lock:
            if self._conn.in_transaction:
                self._conn.rollback()
            self._conn.close()

    def __enter__(self) -> VectorIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VectorIndex({str(self.folder)!r}, {self._live} documents, {self._kind}{', hybrid' if self.manifest.hybrid else ''})"


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
