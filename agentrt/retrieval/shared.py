"""The retrievers that graphs and tools name by index folder, opened once per process.

An index holds an embedder and a FAISS index; opening one per run would reload both, so every
graph (SIM-RAG, CR-Planner) and the ``search`` tool share the instances kept here.
"""

from __future__ import annotations

import threading

from agentrt.retrieval.types import Retriever

_lock = threading.Lock()
_retrievers: dict[str, Retriever] = {}


def retriever_for(index: str | None) -> Retriever:
    """The index folder a run names (``None``: the HotpotQA demo index, built on first use)."""
    key = index or "__demo__"
    with _lock:
        if key not in _retrievers:
            from agentrt.retrieval.corpus import demo_index
            from agentrt.retrieval.index import VectorIndex

            _retrievers[key] = demo_index() if index is None else VectorIndex.open(index)
        return _retrievers[key]
