"""The boundary every retrieval user sees: documents in, scored documents out."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from pydantic import BaseModel, Field


class Document(BaseModel):
    """A passage the system can retrieve. ``id`` is the caller's stable id (e.g. a Wikipedia
    title, or ``title#chunk``); ``title`` is shown to the model beside the text."""

    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class ScoredDocument(Document):
    score: float


class Retriever(Protocol):
    """What graphs call. ``exclude`` lets multi-round RAG ask for documents it has not seen."""

    def search(self, query: str, k: int = 5, exclude: Collection[str] = ()) -> list[ScoredDocument]: ...
