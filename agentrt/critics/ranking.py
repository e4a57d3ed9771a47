"""Ranking critics: a small cross-encoder that scores an action in a context, trained with a
pairwise ranking loss on pairs where one action led to a higher value than its sibling
(CR-Planner's sub-goal and execution critics; the pairs come from tree search).

It shares the sufficiency critic's machinery (``critics.train``: the MiniLM base, text-pair
encoding, the training loop; ``critics.classifier``: versioned folders under
``home()/critics/NAME/vN``), with a one-output head. The loss is RankNet's,
``-log sigmoid(s(better) - s(worse))``; only differences of scores matter, so a score means
nothing alone and is used to rank the actions of one context.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import random
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentrt.critics.classifier import (
    FORMAT_VERSION,
    RETRAIN,
    CriticError,
    TrainingSettings,
    check_name,
    encode_pairs,
    load_base,
    read_meta,
    resolve,
    save_critic,
)
from agentrt.models.weights import offline
from agentrt.training import Progress, cpu_has_bf16, fit


class RankingPair(BaseModel):
    """Two sibling actions in one context, the ``better`` one having led to the higher value."""

    group: str  # what must not be split between train and dev (the question id)
    kind: str  # which critic the pair trains, e.g. "subgoal" or "execution"
    context: str  # the first text (the question)
    better: str  # the second text of the better action (action, then state)
    worse: str
    better_value: float
    worse_value: float
    better_visits: int = 1
    worse_visits: int = 1


class RankingMetrics(BaseModel):
    pairs: int = 0
    accuracy: float | None = None  # share of dev pairs ranked the right way round
    accuracy_by_margin: dict[str, float] = Field(default_factory=dict)  # the same, by value difference


class RankingMeta(BaseModel):
    """``critic.json`` of a ranking critic."""

    format_version: int
    kind: Literal["ranking"] = "ranking"
    name: str
    version: int = Field(ge=0)
    ranks: str  # which pairs it was trained on (a RankingPair kind)
    base_model: str
    max_length: int
    metrics: RankingMetrics
    train_pairs: int
    dev_pairs: int
    train_groups: int
    dev_groups: int
    training: TrainingSettings
    data_hash: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    agentrt_version: str = "unknown"


class RankingCritic:
    """A trained ranking critic; ``scores(context, texts)`` ranks the actions of one context."""

    def __init__(self, model: Any, tokenizer: Any, meta: RankingMeta, path: Path | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.meta = meta
        self.path = path
        self.name = f"{meta.name}@{meta.version}"

    @classmethod
    def load(cls, name_or_path: str | Path, *, root: Path | None = None) -> RankingCritic:
        folder = resolve(name_or_path, root=root)
        meta = read_meta(folder, RankingMeta)
        offline()
        try:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForSequenceClassification.from_pretrained(folder)
        except Exception as exc:
            raise CriticError(f"ranking critic {name_or_path} could not be loaded from {folder} "
                              f"({type(exc).__name__}: {exc}): {RETRAIN}.") from exc
        if model.config.num_labels != 1:
            raise CriticError(f"{folder} is not a ranking critic ({model.config.num_labels} outputs, not 1): {RETRAIN}.")
        return cls(model, tokenizer, meta, folder)

    def scores(self, context: str, texts: Sequence[str]) -> list[float]:
        return raw_scores(self.model, self.tokenizer, [context] * len(texts), list(texts), self.meta.max_length)


def raw_scores(model: Any, tokenizer: Any, firsts: Sequence[str], seconds: Sequence[str], max_length: int,
               batch_size: int = 32) -> list[float]:
    import torch

    out: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(firsts), batch_size):
            enc = encode_pairs(tokenizer, firsts[start:start + batch_size], seconds[start:start + batch_size], max_length)
            out.extend(float(x) for x in model(**enc).logits[:, 0].float())
    return out


def split_groups(pairs: Sequence[RankingPair], dev_fraction: float, seed: int) -> tuple[list[RankingPair], list[RankingPair]]:
    groups = sorted({p.group for p in pairs})
    random.Random(seed).shuffle(groups)
    n_dev = round(len(groups) * dev_fraction)
    if dev_fraction > 0 and len(groups) >= 2:
        n_dev = min(max(1, n_dev), len(groups) - 1)
    dev = set(groups[:n_dev])
    return [p for p in pairs if p.group not in dev], [p for p in pairs if p.group in dev]


def ranking_metrics(model: Any, tokenizer: Any, pairs: Sequence[RankingPair], max_length: int) -> RankingMetrics:
    if not pairs:
        return RankingMetrics()
    better = raw_scores(model, tokenizer, [p.context for p in pairs], [p.better for p in pairs], max_length)
    worse = raw_scores(model, tokenizer, [p.context for p in pairs], [p.worse for p in pairs], max_length)
    right = [b > w for b, w in zip(better, worse)]
    by_margin: dict[str, float] = {}
    for label, low, high in (("margin < 0.3", 0.0, 0.3), ("margin >= 0.3", 0.3, 2.0)):
        sel = [r for r, p in zip(right, pairs) if low <= p.better_value - p.worse_value < high]
        if sel:
            by_margin[f"{label} ({len(sel)})"] = sum(sel) / len(sel)
    return RankingMetrics(pairs=len(pairs), accuracy=sum(right) / len(right), accuracy_by_margin=by_margin)


class RankingReport(BaseModel):
    path: Path
    critic: RankingMeta

    @property
    def name(self) -> str:
        return f"{self.critic.name}@{self.critic.version}"


def train_ranking_critic(
    pairs: list[RankingPair],
    *,
    name: str,
    ranks: str,
    dev_fraction: float = 0.2,
    epochs: int = 3,
    batch_size: int = 16,
    lr: float = 5e-5,
    max_length: int = 384,
    seed: int = 0,
    progress: Progress | None = None,
    root: Path | None = None,
    threads: int = 2,
    bf16: bool | None = None,
) -> RankingReport:
    """Fine-tune MiniLM with a one-output head on ``pairs`` (held-out questions for dev), save
    it as ``root/NAME/vN`` and report the dev ranking accuracy."""
    import torch
    import torch.nn.functional as F


    check_name(name)
    if not pairs:
        raise CriticError(f"no {ranks!r} pairs to train on: collect more with `agentrt plan collect`")
    if epochs < 1 or batch_size < 1 or lr <= 0 or not 0 <= dev_fraction < 1:
        raise CriticError("epochs and batch_size must be at least 1, lr positive and dev_fraction in [0, 1)")
    train, dev = split_groups(pairs, dev_fraction, seed)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model, tokenizer, base = load_base(num_labels=1)
    n = len(train)

    def batches(epoch: int) -> Iterable[list[RankingPair]]:
        order = list(range(n))
        random.Random(seed * 100_003 + epoch).shuffle(order)
        for start in range(0, n, batch_size):
            yield [train[i] for i in order[start:start + batch_size]]

    def loss_fn(model: torch.nn.Module, batch: list[RankingPair]) -> torch.Tensor:
        # better and worse texts go through the model in one batch, then pair up
        enc = encode_pairs(tokenizer, [p.context for p in batch] * 2, [p.better for p in batch] + [p.worse for p in batch],
                           max_length)
        s = model(**enc).logits[:, 0].float()
        return -F.logsigmoid(s[: len(batch)] - s[len(batch):]).mean()

    started = time.perf_counter()
    losses = fit(model, batches, loss_fn, epochs=epochs, lr=lr, steps_per_epoch=math.ceil(n / batch_size),
                 progress=progress, bf16=cpu_has_bf16() if bf16 is None else bf16)
    seconds = time.perf_counter() - started
    try:
        version = importlib.metadata.version("agentrt")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    digest = hashlib.sha256("".join(p.model_dump_json() + "\n" for p in pairs).encode()).hexdigest()
    meta = RankingMeta(
        format_version=FORMAT_VERSION, name=name, version=0, ranks=ranks, base_model=base, max_length=max_length,
        metrics=ranking_metrics(model, tokenizer, dev, max_length), train_pairs=len(train), dev_pairs=len(dev),
        train_groups=len({p.group for p in train}), dev_groups=len({p.group for p in dev}),
        training=TrainingSettings(
            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, dev_fraction=dev_fraction,
            balancing="pairs: each is both orders of a comparison, so no class balance is needed",
            train_loss=losses, seconds=round(seconds, 2), examples_per_second=round(n * epochs / max(seconds, 1e-9), 2),
        ),
        data_hash=digest, agentrt_version=version,
    )
    path, meta = save_critic(model, tokenizer, meta, root=root)
    return RankingReport(path=path, critic=meta)
