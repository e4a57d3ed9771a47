"""Train a sufficiency critic from self-practice rounds (SIM-RAG) on CPU.

The pieces are reusable for other critics (e.g. pairwise ranking critics for CR-Planner):
``encode_pairs`` turns text pairs into model inputs, ``agentrt.training.fit`` is the training
loop, and ``critics.classifier.load_base`` gives the starting model.

Choices for the sufficiency critic (``train_critic``):

* attention dropout off (see ``load_base``: ~2.5x faster steps on CPU), hidden dropout 0.1;
* split by question: every round of a question goes to train or to dev, never both, so dev
  measures questions the critic has not seen (rounds of one question share most of their text);
* class balance by a weighted cross-entropy (weight of class c = n / (2 * n_c) on the training
  split), not oversampling: no duplicated rounds, same number of steps per epoch. The scores are
  then calibrated to a balanced prior, which the threshold re-adjusts;
* the acceptance threshold is chosen by replaying the SIM-RAG loop on the dev questions'
  practice paths (:mod:`agentrt.sim_rag.stopping`): the one of best answer F1 net of a cost per
  retrieval round. Per-round accuracy (the fallback when dev rounds carry no gold answers)
  accepted nothing at a 7% positive rate. Tuned on dev, so the dev figures at that threshold are
  slightly optimistic; ``accuracy_at_half`` is reported beside them. Too small (< 10 rounds) or
  single-class dev sets keep 0.5 under the accuracy rule.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import random
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from agentrt.critics.classifier import (
    LABEL_DEFINITIONS,
    ClassBalance,
    CriticError,
    CriticMeta,
    DevMetrics,
    TrainingSettings,
    check_name,
    critic_pair,
    encode_pairs,
    load_base,
    predict_proba,
    save_critic,
)
from agentrt.critics.types import CriticExample
from agentrt.sim_rag.stopping import choose_stopping_threshold
from agentrt.training import Progress, cpu_has_bf16, fit

if TYPE_CHECKING:
    import torch

__all__ = ["TrainReport", "compare_labelings", "encode_pairs", "fit", "split_by_question", "train_critic"]



class TrainReport(BaseModel):
    path: Path  # the saved critic folder
    critic: CriticMeta  # what was written to critic.json
    skipped: int = 0  # examples without the chosen label (coverage missing)
    train_questions: list[str]
    dev_questions: list[str]

    @property
    def name(self) -> str:
        return f"{self.critic.name}@{self.critic.version}"

    @property
    def metrics(self) -> DevMetrics:
        return self.critic.metrics

    @property
    def threshold(self) -> float:
        return self.critic.threshold


# ---------------------------------------------------------------- reusable pieces


def split_by_question(examples: Sequence[CriticExample], dev_fraction: float, seed: int = 0
                      ) -> tuple[list[CriticExample], list[CriticExample]]:
    """(train, dev): a random ``dev_fraction`` of the question ids, with all their rounds, in dev."""
    qids = sorted({e.question_id for e in examples})
    random.Random(seed).shuffle(qids)
    n_dev = round(len(qids) * dev_fraction)
    if dev_fraction > 0 and len(qids) >= 2:
        n_dev = min(max(1, n_dev), len(qids) - 1)
    dev_ids = set(qids[:n_dev])
    train = [e for e in examples if e.question_id not in dev_ids]
    dev = [e for e in examples if e.question_id in dev_ids]
    assert not {e.question_id for e in train} & {e.question_id for e in dev}, "a question is in train and dev"
    return train, dev


# ---------------------------------------------------------------- metrics


def _label(example: CriticExample, label: str) -> int | None:
    return example.label if label == "correct" else example.coverage


def _balance(examples: Sequence[CriticExample], ys: Sequence[int]) -> ClassBalance:
    pos = sum(ys)
    return ClassBalance(examples=len(ys), positives=pos, negatives=len(ys) - pos,
                        questions=len({e.question_id for e in examples}))


def choose_threshold(scores: Sequence[float], labels: Sequence[int], *, min_examples: int = 10) -> tuple[float, str]:
    """The threshold (accept = score >= t) of best accuracy; ties go to the one nearest 0.5."""
    import numpy as np

    if len(scores) < min_examples or len(set(labels)) < 2:
        return 0.5, f"0.5 (dev set too small or one-class to tune: {len(scores)} rounds)"
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    # threshold between s[k-1] and s[k]: the first k rounds are rejected, the rest accepted
    neg_below = np.concatenate([[0], np.cumsum(1 - y)])  # negatives among the first k
    pos_above = y.sum() - np.concatenate([[0], np.cumsum(y)])  # positives from k on
    correct = neg_below + pos_above
    candidates = [(float(((s >= 0.5) == y).sum()), 0.5)]
    for k in range(1, len(s)):
        if s[k - 1] < s[k]:
            candidates.append((float(correct[k]), float((s[k - 1] + s[k]) / 2)))
    best, threshold = max(candidates, key=lambda c: (c[0], -abs(c[1] - 0.5)))
    return threshold, f"maximises dev accuracy ({best / len(s):.3f} on {len(s)} rounds; ties nearest 0.5)"


def dev_metrics(scores: Sequence[float], labels: Sequence[int], threshold: float) -> DevMetrics:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    if not scores:
        return DevMetrics()
    p, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    accept = p >= threshold
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(y[bins == b].mean() - p[bins == b].mean()) * (bins == b).sum() for b in range(10) if (bins == b).any())
    return DevMetrics(
        n=len(p),
        accuracy=float((accept == y).mean()),
        accuracy_at_half=float(((p >= 0.5) == y).mean()),
        auc=float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else None,
        ece=float(ece / len(p)),
        brier=float(((p - y) ** 2).mean()),
        positive_rate=float(y.mean()),
        accept_rate=float(accept.mean()),
        accept_precision=float(y[accept].mean()) if accept.any() else None,
    )


def data_hash(examples: Sequence[CriticExample]) -> str:
    digest = hashlib.sha256()
    for e in examples:
        digest.update(e.model_dump_json().encode())
        digest.update(b"\n")
    return digest.hexdigest()


def compare_labelings(examples: Sequence[CriticExample]) -> dict[str, Any]:
    """How often the "correct" label and the "coverage" label agree, on rounds that have both.

    Keys: n, without_coverage, both_positive, correct_only, coverage_only, both_negative,
    agreement (share equal), kappa (Cohen's; None when undefined, e.g. both labels constant).
    """
    pairs = [(e.label, e.coverage) for e in examples if e.coverage is not None]
    n = len(pairs)
    counts = {
        "both_positive": sum(1 for c, v in pairs if c == 1 and v == 1),
        "correct_only": sum(1 for c, v in pairs if c == 1 and v == 0),
        "coverage_only": sum(1 for c, v in pairs if c == 0 and v == 1),
        "both_negative": sum(1 for c, v in pairs if c == 0 and v == 0),
    }
    agreement = kappa = None
    if n:
        agreement = (counts["both_positive"] + counts["both_negative"]) / n
        pc = (counts["both_positive"] + counts["correct_only"]) / n
        pv = (counts["both_positive"] + counts["coverage_only"]) / n
        expected = pc * pv + (1 - pc) * (1 - pv)
        kappa = (agreement - expected) / (1 - expected) if expected < 1 else None
    return {"n": n, "without_coverage": len(examples) - n, **counts, "agreement": agreement, "kappa": kappa}


# ---------------------------------------------------------------- the sufficiency critic


def train_critic(
    examples: list[CriticExample],
    *,
    name: str,
    label: Literal["correct", "coverage"] = "correct",
    dev_fraction: float = 0.2,
    epochs: int = 3,
    batch_size: int = 16,
    lr: float = 5e-5,
    max_length: int = 512,
    seed: int = 0,
    progress: Progress | None = None,
    root: Path | None = None,
    base: str | Path | None = None,
    threads: int = 2,
    bf16: bool | None = None,
    evidence_words: int | None = 240,
    answer_check: bool = True,
    retrieval_cost: float = 0.01,
) -> TrainReport:
    """Fine-tune the critic, pick its threshold on dev, save it as ``root/NAME/vN`` (default root
    ``home()/critics``) and report. See the module docstring for the choices made."""
    import torch
    import torch.nn.functional as F

    check_name(name)
    if label not in LABEL_DEFINITIONS:
        raise CriticError(f"unknown label {label!r}: use one of {', '.join(LABEL_DEFINITIONS)}")
    if not 0 <= dev_fraction < 1:
        raise CriticError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise CriticError("epochs and batch_size must be at least 1, and lr positive")
    if not 16 <= max_length <= 512:
        raise CriticError(f"max_length must be between 16 and 512 (the model's positions), got {max_length}")
    usable = [e for e in examples if _label(e, label) is not None]
    if not usable:
        raise CriticError(f"no example has a {label!r} label" + (" (coverage is missing everywhere)" if examples else ""))
    train, dev = split_by_question(usable, dev_fraction, seed)
    y_train = [_label(e, label) for e in train]
    y_dev = [_label(e, label) for e in dev]
    if len(set(y_train)) < 2:
        raise CriticError(f"the training split has only label {y_train[0]}: the critic needs rounds of both kinds")

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model, tokenizer, base_description = load_base(base)
    n, n_pos = len(y_train), sum(y_train)
    class_weights = torch.tensor([n / (2 * (n - n_pos)), n / (2 * n_pos)], dtype=torch.float)
    pairs = [critic_pair(e, evidence_words, answer_check) for e in train]

    def batches(epoch: int) -> Iterable[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        order = list(range(n))
        random.Random(seed * 100_003 + epoch).shuffle(order)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            enc = encode_pairs(tokenizer, [pairs[i][0] for i in idx], [pairs[i][1] for i in idx], max_length)
            yield enc, torch.tensor([y_train[i] for i in idx])

    def loss_fn(model: torch.nn.Module, batch: tuple[dict[str, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        enc, ys = batch
        return F.cross_entropy(model(**enc).logits.float(), ys, weight=class_weights)

    started = time.perf_counter()
    losses = fit(model, batches, loss_fn, epochs=epochs, lr=lr, steps_per_epoch=math.ceil(n / batch_size),
                 progress=progress, bf16=cpu_has_bf16() if bf16 is None else bf16)
    seconds = time.perf_counter() - started

    if dev:
        firsts, seconds_ = zip(*(critic_pair(e, evidence_words, answer_check) for e in dev))
        scores = predict_proba(model, tokenizer, firsts, seconds_, max_length=max_length)
    else:
        scores = []
    stopping = choose_stopping_threshold(dev, scores, retrieval_cost)
    if stopping is not None:
        c, first, cap = stopping.chosen, stopping.first_round, stopping.at_cap
        threshold = c.threshold
        rule = (f"best replayed SIM-RAG loop on {stopping.questions} dev questions ({stopping.paths} practice paths): "
                f"F1 {c.f1:.3f} with {c.rounds:.2f} rounds, against {first.f1:.3f} at round 1 and {cap.f1:.3f} "
                f"with {cap.rounds:.2f} rounds at the cap; a round costs {retrieval_cost} F1")
    else:
        threshold, rule = choose_threshold(scores, y_dev)
    try:
        version = importlib.metadata.version("agentrt")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    meta = CriticMeta(
        format_version=0,  # save_critic sets the format and the version
        name=name,
        version=0,
        base_model=base_description,
        label=label,
        label_definition=LABEL_DEFINITIONS[label],
        threshold=threshold,
        threshold_rule=rule,
        max_length=max_length,
        evidence_words=evidence_words,
        answer_check=answer_check,
        metrics=dev_metrics(scores, y_dev, threshold),
        stopping=stopping,
        train_balance=_balance(train, y_train),
        dev_balance=_balance(dev, y_dev),
        training=TrainingSettings(
            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, dev_fraction=dev_fraction,
            balancing="weighted cross-entropy, class weight n / (2 * n_class) on the training split",
            train_loss=losses, seconds=round(seconds, 2), examples_per_second=round(n * epochs / seconds, 2),
        ),
        data_hash=data_hash(examples),
        agentrt_version=version,
    )
    path, meta = save_critic(model, tokenizer, meta, root=root)
    return TrainReport(path=path, critic=meta, skipped=len(examples) - len(usable),
                       train_questions=sorted({e.question_id for e in train}),
                       dev_questions=sorted({e.question_id for e in dev}))
