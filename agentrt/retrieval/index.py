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
import shutil
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from agentrt.retrieval.embedders import Embedder, load_embedder, spec_of
from agentrt.retrieval.errors import RetrievalError
from agentrt.retrieval.hybrid import BM25Ranking
from agentrt.retrieval.index_files import (
    _SCHEMA,
    _SQL_CHUNK,
    DATABASE,
    MANIFEST,
    EmbedderInfo,
    IndexManifest,
    Kind,
    ProgressFn,
    _check_embedder,
    _check_vectors,
    _connect,
    _crc32,
    _now,
    embed_text,
    new_faiss_index,
    read_manifest,
)
from agentrt.retrieval.index_search import Searching
from agentrt.retrieval.index_storage import Persisting
from agentrt.retrieval.types import Document


class VectorIndex(Searching, Persisting):
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


