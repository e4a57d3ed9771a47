"""Corpora -> Documents: a JSONL file of passages, the pooled HotpotQA paragraphs, the demo index.

A corpus file has one JSON object per line: ``{"id": ..., "title": ..., "text": ...}``. ``id``
defaults to the title (Wikipedia-style corpora are keyed by title); ``"contents"`` is accepted for
the text (the Pyserini layout). Errors name the file and line, because corpora are big and
hand-edited ones break in one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from agentrt.jsonl import read_objects
from agentrt.qa.data import hotpotqa_path  # noqa: F401 (re-exported for the index CLI)
from agentrt.retrieval.errors import CorpusError
from agentrt.retrieval.index import VectorIndex
from agentrt.retrieval.index_files import ProgressFn
from agentrt.retrieval.types import Document

DEMO_NAME = "hotpotqa-600"
_LAYOUT = 'one JSON object per line: {"id": ..., "title": ..., "text": ...}'


def _json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; clear errors for a missing/empty file or bad line."""
    objects = read_objects(Path(path), error=CorpusError, what="corpus")
    if not objects:
        raise CorpusError(f"{path} is empty: a corpus has {_LAYOUT}")
    yield from objects


def read_corpus(path: str | Path) -> list[Document]:
    """The documents of a corpus JSONL file. Other fields of a line go into ``metadata``; a repeated
    id is an error (the index would silently keep only the last one)."""
    docs: list[Document] = []
    first_line: dict[str, int] = {}
    for number, obj in _json_lines(Path(path)):
        text = obj.get("text", obj.get("contents"))
        if not isinstance(text, str) or not text.strip():
            raise CorpusError(f"{path} line {number}: no text: each line needs a non-empty \"text\" (or \"contents\")")
        title = obj.get("title") or ""
        doc_id = obj.get("id", obj.get("_id"))
        if doc_id is None or doc_id == "":
            doc_id = title
        if not isinstance(title, str):
            raise CorpusError(f"{path} line {number}: \"title\" must be a string")
        if doc_id == "":
            raise CorpusError(f"{path} line {number}: no id: give an \"id\" or a \"title\"")
        doc_id = str(doc_id)
        if doc_id in first_line:
            raise CorpusError(
                f"{path} line {number}: id {doc_id!r} was already used on line {first_line[doc_id]}: "
                "give each line a unique \"id\""
            )
        first_line[doc_id] = number
        metadata = {k: v for k, v in obj.items() if k not in ("id", "_id", "title", "text", "contents")}
        docs.append(Document(id=doc_id, title=title, text=text, metadata=metadata))
    return docs


def hotpotqa_corpus(path: str | Path) -> list[Document]:
    """The unique paragraphs of every record's context, pooled (id = title = the Wikipedia title).

    HotpotQA sentences carry their own leading spaces; they are stripped and joined with one space.
    A title seen again keeps its first paragraph (the records come from one Wikipedia dump).
    """
    docs: dict[str, Document] = {}
    for number, record in _json_lines(Path(path)):
        context = record.get("context")
        if not isinstance(context, list):
            raise CorpusError(f"{path} line {number}: not a HotpotQA record (no \"context\" list)")
        for item in context:
            try:
                title, sentences = item
                text = " ".join(s.strip() for s in sentences if s.strip())
            except (TypeError, ValueError, AttributeError) as exc:
                raise CorpusError(f"{path} line {number}: a context entry is not [title, [sentences...]]") from exc
            if title not in docs and text:
                docs[title] = Document(id=title, title=title, text=text)
    return list(docs.values())


def demo_index(folder: str | Path | None = None, *, data: str | Path | None = None,
               progress: ProgressFn | None = None) -> VectorIndex:
    """The hybrid index of the pooled HotpotQA paragraphs (~5,900), built on first use.

    Default folder ``home()/indexes/hotpotqa-600``. The first build embeds every paragraph (about
    2.5 minutes on 2 cores; ``progress(done, total)`` is called as it goes) in a staging folder
    renamed at the end, under a file lock, so an interrupted build leaves nothing a later call trusts.
    """
    from agentrt.models.weights import built_once, home

    target = Path(folder) if folder is not None else home() / "indexes" / DEMO_NAME

    def build(staging: Path) -> None:
        docs = hotpotqa_corpus(Path(data) if data is not None else hotpotqa_path())
        with VectorIndex.create(staging, "minilm", kind="auto", hybrid=True) as index:
            index.add(docs, progress=progress)
            index.save()

    built_once(target, "manifest.json", build)
    return VectorIndex.open(target)
