"""The two critics of CR-Planner: the sub-goal critic ranks the possible next sub-goals, the
execution critic ranks the candidates of the chosen one. Both answer one question, "how good is
each of these actions in this plan?", so both are a ``PlanCritic``.

Trained critics are ranking critics (``agentrt plan train``) named ``cr-subgoal`` and
``cr-execution`` by default. Without them the planner asks the reasoner model itself to pick
(an LLM judge), and every step records which critic scored it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Protocol

from langchain_core.messages import HumanMessage, SystemMessage

from agentrt.critics.classifier import CriticError
from agentrt.critics.ranking import RankingCritic
from agentrt.once import OncePerKey

DEFAULT_NAMES = {"subgoal": "cr-subgoal", "execution": "cr-execution"}


class PlanCritic(Protocol):
    name: str

    def rank(self, question: str, state: str, actions: Sequence[str]) -> list[float]:
        """A score for each action in this state (higher is better; only the order matters)."""
        ...


def pair_text(action: str, state: str) -> str:
    """The second text a trained critic reads: the action first, so truncation cuts the state."""
    return f"{action} | {state}"


class TrainedPlanCritic:
    """A ranking critic reading (question, action | state)."""

    def __init__(self, critic: RankingCritic) -> None:
        self.critic = critic
        self.name = critic.name

    def rank(self, question: str, state: str, actions: Sequence[str]) -> list[float]:
        return self.critic.scores(question, [pair_text(a, state) for a in actions])


JUDGE_PROMPT = (
    "You guide a step-by-step search for the answer to a question. Given the question, the plan so "
    "far and numbered options for the next step, reply with the number of the best option only."
)


class LLMPlanJudge:
    """The fallback critic: the model reads the options and names the best one (score 1, the
    rest 0). A reply without a valid number scores all options equally, so the first option (the
    planner's default order) wins."""

    def __init__(self, model: Any, spec: str) -> None:
        self.model = model
        self.name = f"llm-judge:{spec}"

    def rank(self, question: str, state: str, actions: Sequence[str]) -> list[float]:
        texts = list(actions)
        if len(texts) < 2:
            return [1.0] * len(texts)
        options = "\n".join(f"{i}. {t}" for i, t in enumerate(texts, 1))
        prompt = f"Question: {question}\nPlan so far: {state}\n\nOptions:\n{options}\n\nBest option number:"
        # tagged nostream: a run's token stream shows the plan's text, not the judge's digits
        reply = self.model.invoke([SystemMessage(JUDGE_PROMPT), HumanMessage(prompt)], {"tags": ["nostream"]},
                                  max_tokens=4, temperature=0.0)
        found = re.search(r"\d+", str(reply.content))
        pick = int(found.group()) if found else 0
        if not 1 <= pick <= len(texts):
            return [0.5] * len(texts)
        return [1.0 if i == pick else 0.0 for i in range(1, len(texts) + 1)]


_loaded: OncePerKey[TrainedPlanCritic] = OncePerKey()
_warned: set[str] = set()
log = logging.getLogger("agentrt.cr_planner")


def plan_critic(setting: str, kind: str, *, model: Any, spec: str) -> PlanCritic:
    """The critic a run asks for: ``auto`` (the trained ``cr-subgoal`` / ``cr-execution`` if saved,
    else the LLM judge), ``llm-judge``, or a ranking critic's name or path."""
    if setting == "llm-judge":
        return LLMPlanJudge(model, spec)
    name = DEFAULT_NAMES[kind] if setting == "auto" else setting
    try:
        return _loaded.load(name, lambda: TrainedPlanCritic(RankingCritic.load(name)))
    except CriticError:
        if setting != "auto":
            raise
        if name not in _warned:
            _warned.add(name)
            log.warning("no trained %s critic %r: CR-Planner uses the LLM judge (%s) instead; train one with "
                        "`agentrt plan collect` and `agentrt plan train`", kind, name, spec)
        return LLMPlanJudge(model, spec)
