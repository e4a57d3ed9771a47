"""Answer metrics with the official SQuAD / HotpotQA normalisation, and bootstrap intervals.

Normalisation (lower case, drop punctuation and the articles a/an/the, collapse whitespace) is
the one the HotpotQA evaluation script uses, so our EM/F1 are comparable to published figures.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, golds: Iterable[str]) -> float:
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(g) for g in golds))


def _f1(prediction: str, gold: str) -> float:
    p, g = normalize_answer(prediction), normalize_answer(gold)
    # HotpotQA: yes/no/noanswer only match exactly
    if p in {"yes", "no", "noanswer"} or g in {"yes", "no", "noanswer"}:
        return float(p == g)
    pt, gt = p.split(), g.split()
    common = sum((Counter(pt) & Counter(gt)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pt), common / len(gt)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: Iterable[str]) -> float:
    return max((_f1(prediction, g) for g in golds), default=0.0)


def is_correct(prediction: str, golds: Sequence[str], f1_threshold: float = 0.8) -> bool:
    """The self-practice label: exact match, or token F1 at least ``f1_threshold`` (so
    "the Eiffel Tower in Paris" for "Eiffel Tower" does not count as wrong evidence)."""
    return bool(exact_match(prediction, golds)) or f1_score(prediction, golds) >= f1_threshold


def support_recall(retrieved_titles: Iterable[str], gold_titles: Iterable[str]) -> float:
    gold = set(gold_titles)
    return len(gold & set(retrieved_titles)) / len(gold) if gold else 0.0


def bootstrap_ci(
    values: Sequence[float], *, stat: Callable[[Sequence[float]], float] | None = None,
    resamples: int = 2000, seed: int = 0, level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (or ``stat``) over questions."""
    stat = stat or (lambda xs: sum(xs) / len(xs))
    if not values:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(values)
    draws = sorted(stat([values[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples))
    lo = draws[int((1 - level) / 2 * resamples)]
    hi = draws[min(resamples - 1, int((1 + level) / 2 * resamples))]
    return (lo, hi)


def paired_bootstrap_ci(a: Sequence[float], b: Sequence[float], **kwargs: float) -> tuple[float, float]:
    """Interval of mean(a) - mean(b) over the same questions, resampled together."""
    if len(a) != len(b):
        raise ValueError("paired bootstrap needs the same questions on both sides")
    return bootstrap_ci([x - y for x, y in zip(a, b, strict=True)], **kwargs)  # type: ignore[arg-type]
