"""How a :class:`~agentrt.retrieval.index.VectorIndex` is written: which FAISS kind the size
calls for, rebuilding and compacting, and ``save`` as one generation committed atomically (new
files first, the SQLite commit as the commit point, stale files removed after). A mixin: the
state is the index's own."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from agentrt.retrieval.index_files import (
    AUTO_HNSW_FROM,
    COMPACT_FRACTION,
    DATABASE,
    MANIFEST,
    _crc32,
    _now,
    _write_faiss,
    _write_json,
    new_faiss_index,
)


class Persisting:
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
