"""Critics that need no training: the LLM judge (the fallback), and the two fixed policies that
turn the SIM-RAG loop into its baselines (accept at once = single-round RAG, never accept =
fixed N rounds)."""

from __future__ import annotations

import re

from langchain_core.messages import HumanMessage, SystemMessage

from agentrt.critics.types import CriticInput, Judgement
from agentrt.models.registry import DEFAULT_MODEL, load_model


class FixedCritic:
    """Always the same verdict."""

    def __init__(self, accept: bool) -> None:
        self.accept = accept
        self.name = "accept-all" if accept else "reject-all"

    def judge(self, items: list[CriticInput]) -> list[Judgement]:
        return [Judgement(score=float(self.accept), accept=self.accept, critic=self.name) for _ in items]


JUDGE_PROMPT = (
    "You check answers. Given a question, evidence passages and a proposed answer, decide whether "
    "the evidence clearly supports the answer. Reply with one word: yes or no."
)


class LLMJudge:
    """Asks a chat model whether the evidence supports the answer: the critic a user has before
    training one. Its score is 1 for yes, 0 for no, 0.5 when the reply says neither."""

    def __init__(self, model: str = DEFAULT_MODEL) -> None:
        self.model_spec = model
        self.name = f"llm-judge:{model}"

    def judge(self, items: list[CriticInput]) -> list[Judgement]:
        model = load_model(self.model_spec, max_tokens=3, temperature=0.0)
        out = []
        for item in items:
            evidence = "\n".join(f"[{i}] {e}" for i, e in enumerate(item.evidence, 1)) or "(none)"
            reply = model.invoke([
                SystemMessage(JUDGE_PROMPT),
                HumanMessage(f"Evidence:\n{evidence}\n\nQuestion: {item.question}\nProposed answer: {item.answer}\n"
                             "Does the evidence support this answer? yes or no:"),
            ])
            word = re.findall(r"[a-z]+", str(reply.content).lower())[:1]
            score = 1.0 if word == ["yes"] else 0.0 if word == ["no"] else 0.5
            out.append(Judgement(score=score, accept=score > 0.5, critic=self.name))
        return out
