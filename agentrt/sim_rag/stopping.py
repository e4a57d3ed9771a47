"""Pick the sufficiency critic's threshold by what the SIM-RAG loop gains with it, on dev.

A round's label says whether its answer was right, but the critic's job is a stopping decision:
accept now, or pay for another retrieval round that may fix the answer. Choosing the threshold
by per-round accuracy ignores both what a rejection buys and what it costs. On Qwen 0.5B's
practice rounds only 7% of rounds are right, so the accuracy rule accepts nothing (threshold
0.99) and SIM-RAG degenerates into "always run to the cap".

Instead the loop is replayed on the dev questions' practice paths: for a threshold ``t`` each
path stops at its first round scored ``>= t`` (or at its last round, the cap's "answer anyway")
and yields that round's answer F1 and its number of retrieval rounds. The threshold maximises

    mean F1 - retrieval_cost * mean rounds

(means per question, then over questions), ties going to fewer rounds. ``retrieval_cost`` is
what one more retrieval round must buy, in F1 (0.01: one F1 point).

Practice writes each distinct round once (paths that agree are merged), so the paths are
rebuilt from the evidence: a round continues a path when its evidence extends the previous
round's evidence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import pairwise

from agentrt.critics.types import CriticExample, StopOutcome, StoppingMetrics
from agentrt.qa.metrics import f1_score


def practice_paths(indices: Sequence[int], rounds: Sequence[CriticExample]) -> list[list[int]]:
    """Each path rebuilt from the rounds at ``indices``, as indices into ``rounds``."""
    by_round: dict[int, list[int]] = defaultdict(list)
    for i in indices:
        by_round[rounds[i].round].append(i)
    if not by_round:
        return []
    paths: list[list[int]] = []

    def extend(path: list[int]) -> None:
        last = rounds[path[-1]]
        nxt = [j for j in by_round.get(last.round + 1, [])
               if rounds[j].evidence[: len(last.evidence)] == last.evidence]
        if not nxt:
            paths.append(path)
        for j in nxt:
            extend(path + [j])

    for i in by_round[min(by_round)]:
        extend([i])
    return paths


def replay(paths_by_question: dict[str, list[list[int]]], f1: Sequence[float], scores: Sequence[float],
           threshold: float) -> StopOutcome:
    f1s, used = [], []
    for paths in paths_by_question.values():
        stops = [next((k for k, i in enumerate(path) if scores[i] >= threshold), len(path) - 1) for path in paths]
        f1s.append(sum(f1[path[k]] for path, k in zip(paths, stops)) / len(paths))
        used.append(sum(k + 1 for k in stops) / len(paths))
    return StopOutcome(threshold=threshold, f1=sum(f1s) / len(f1s), rounds=sum(used) / len(used))


def choose_stopping_threshold(dev: Sequence[CriticExample], scores: Sequence[float],
                              retrieval_cost: float = 0.01) -> StoppingMetrics | None:
    """The best threshold for the replayed loop; None when dev has no gold answers to score."""
    if not dev or not all(e.gold_answers for e in dev):
        return None
    by_question: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(dev):
        by_question[e.question_id].append(i)
    paths = {q: practice_paths(idx, dev) for q, idx in by_question.items()}
    f1 = [f1_score(e.answer, e.gold_answers) for e in dev]
    distinct = sorted(set(scores))
    candidates = [0.0] + [(a + b) / 2 for a, b in pairwise(distinct)]
    outcomes = [replay(paths, f1, scores, t) for t in candidates]
    # "accept nothing", saved as 1.0 (a score of exactly 1.0 would still be accepted there)
    at_cap = replay(paths, f1, [-1.0] * len(dev), 0.0).model_copy(update={"threshold": 1.0})
    best = max(outcomes + [at_cap], key=lambda o: (o.f1 - retrieval_cost * o.rounds, -o.rounds))
    return StoppingMetrics(questions=len(paths), paths=sum(len(p) for p in paths.values()),
                           retrieval_cost=retrieval_cost, chosen=best, first_round=outcomes[0], at_cap=at_cap)
