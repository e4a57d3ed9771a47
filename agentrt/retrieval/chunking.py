"""Long documents -> passages of about N words, so one vector stands for one idea.

An encoder sees at most 256 tokens (~190 words) of a text: the rest of a long document would
never be searchable. Chunks keep whole sentences when they fit (a sentence cut in half embeds
badly), overlap a little so a fact spanning a boundary survives in one chunk, and only long
documents are split: a short one keeps its id, a split one becomes ``f"{id}#{i}"``.
"""

from __future__ import annotations

import re

from agentrt.retrieval.types import Document

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _units(text: str, words: int) -> list[list[str]]:
    """Sentences as word lists; a sentence longer than ``words`` is cut into ``words``-sized pieces."""
    units: list[list[str]] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        tokens = sentence.split()
        units.extend(tokens[i:i + words] for i in range(0, len(tokens), words))
    return units


def split_text(text: str, words: int = 200, overlap: int = 40) -> list[str]:
    """``text`` as passages of at most ``words`` words, consecutive passages sharing up to
    ``overlap`` words of whole sentences (or word pieces of an over-long sentence)."""
    if words < 1:
        raise ValueError(f"chunk size must be at least 1 word, got {words}")
    if not 0 <= overlap < words:
        raise ValueError(f"chunk overlap must be between 0 and the chunk size ({words}), got {overlap}")
    chunks: list[list[list[str]]] = []
    current: list[list[str]] = []
    size = 0
    for unit in _units(text, words):
        if current and size + len(unit) > words:
            chunks.append(current)
            # Carry whole trailing units up to `overlap` words, never the entire chunk (progress).
            carried: list[list[str]] = []
            for prev in reversed(current[1:]):
                if sum(map(len, carried)) + len(prev) > overlap:
                    break
                carried.insert(0, prev)
            # Carried text plus the next unit must still fit.
            while carried and sum(map(len, carried)) + len(unit) > words:
                carried.pop(0)
            current, size = carried, sum(map(len, carried))
        current.append(unit)
        size += len(unit)
    if current:
        chunks.append(current)
    return [" ".join(w for unit in chunk for w in unit) for chunk in chunks]


def chunk_document(doc: Document, words: int = 200, overlap: int = 40) -> list[Document]:
    """``[doc]`` when it is short enough; otherwise its chunks with ids ``f"{doc.id}#{i}"``, the same
    title, and metadata naming the parent (``parent_id``, ``chunk``)."""
    pieces = split_text(doc.text, words, overlap)
    if len(pieces) <= 1:
        return [doc]
    return [
        Document(id=f"{doc.id}#{i}", title=doc.title, text=piece,
                 metadata={**doc.metadata, "parent_id": doc.id, "chunk": i})
        for i, piece in enumerate(pieces)
    ]


def chunk_documents(docs: list[Document], words: int = 200, overlap: int = 40) -> list[Document]:
    """Every document through ``chunk_document``, order kept."""
    return [chunk for doc in docs for chunk in chunk_document(doc, words, overlap)]
