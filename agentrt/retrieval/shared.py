"""The retrievers that graphs and tools name by index folder, opened once per process.

An index holds an embedder and a FAISS index; opening one per run would reload both, so every
graph (SIM-RAG, CR-Planner) and the ``search`` tool share the instances kept here.
"""

from __future__ import annotations

from agentrt.once import OncePerKey
from agentrt.retrieval.types import Retriever

_retrievers: OncePerKey[Retriever] = OncePerKey()


def retriever_for(index: str | None) -> Retriever:
    """The index folder a run names (``None``: the HotpotQA demo index, built on first use)."""

    def load() -> Retriever:
        from agentrt.retrieval.corpus import demo_index
        from agentrt.retrieval.index import VectorIndex

        return demo_index() if index is None else VectorIndex.open(index)

    return _retrievers.load(index or "__demo__", load)
