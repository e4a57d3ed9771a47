"""What the QA methods share when they ask a model: the reasoner's and the query writer's
prompts, evidence as numbered lines, and reading an ``Answer: ... / Rationale: ...`` reply.
SIM-RAG and CR-Planner both use them, so the two are compared on the same prompts."""

from __future__ import annotations

import re
from typing import Any

REASONER_PROMPT = (
    "You answer questions from evidence passages. Give the shortest possible answer: a name, a date, "
    "a number, or yes/no. Never repeat the question. Format:\nAnswer: <short answer>\nRationale: <one short sentence>"
)
QUERY_PROMPT = (
    "The evidence below is not enough to answer the question. Write one short search query (a few "
    "words, e.g. a name and what is missing) to find the missing information. Reply with the query only."
)


def evidence_lines(documents: list[dict[str, Any]], max_words: int) -> list[str]:
    return [f"{d['title'] or d['id']}: {' '.join(d['text'].split()[:max_words])}" for d in documents]


def parse_answer(text: str) -> tuple[str, str]:
    """``Answer: ...`` / ``Rationale: ...`` lines; a reply without them is taken as the answer."""
    answer = re.search(r"answer\s*:\s*(.+)", text, re.IGNORECASE)
    rationale = re.search(r"rationale\s*:\s*(.+)", text, re.IGNORECASE | re.DOTALL)
    if answer:
        return answer.group(1).strip().strip("*").strip(), rationale.group(1).strip() if rationale else ""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first.strip(), ""
