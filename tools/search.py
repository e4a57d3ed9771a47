"""Search a document index: the retrieval tool of tool-calling agents.

The default ``search`` looks in the HotpotQA demo index (built on first use); ``make_search``
makes one over any index folder built with ``agentrt index build``. Results are a JSON list of
``{"title", "text"}`` so that both the model and the evaluation (supporting-document recall)
read them without guessing where a title ends.
"""

from __future__ import annotations

import json

from langchain_core.tools import BaseTool

from agentrt.retrieval.shared import retriever_for
from agentrt.tool import tool

DEFAULT_K = 3
MAX_WORDS = 120  # per passage: enough for a fact, short enough for a small model's context


def make_search(index: str | None = None, k: int = DEFAULT_K, max_words: int = MAX_WORDS) -> BaseTool:
    """A ``search`` tool over the index folder ``index`` (None: the demo index), ``k`` passages a call."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")

    @tool(timeout=30.0)
    def search(query: str) -> str:
        """Search the document collection and return the most relevant passages.

        Use it to look up facts you do not know: people, places, works, dates. Search again with
        other words if the passages do not answer the question.

        Args:
            query: A few keywords, e.g. a name and the fact you need.
        """
        if not query.strip():
            raise ValueError("empty query: give a few keywords to search for")
        found = retriever_for(index).search(query, k=k)
        return json.dumps([{"title": d.title or d.id, "text": " ".join(d.text.split()[:max_words])} for d in found],
                          ensure_ascii=False)

    return search


search = make_search()
