"""The one training loop of agentrt: critics (sequence classifiers) and LoRA fine-tuning of
the generators both train through :func:`fit`, a plain PyTorch loop (AdamW, linear warmup then
linear decay, gradient clipping) parameterised by ``loss_fn(model, batch)``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import torch

B = TypeVar("B")
Progress = Callable[[int, int, float], None]  # (steps done, total steps, loss of the last step)


def fit(
    model: torch.nn.Module,
    batches: Sequence[B] | Callable[[int], Iterable[B]],
    loss_fn: Callable[[torch.nn.Module, B], torch.Tensor],
    *,
    epochs: int,
    lr: float,
    steps_per_epoch: int | None = None,
    weight_decay: float = 0.01,
    warmup_fraction: float = 0.1,
    max_grad_norm: float = 1.0,
    progress: Progress | None = None,
    bf16: bool = False,
) -> list[float]:
    """Train ``model`` in place; returns the mean loss of each epoch.

    ``bf16`` runs the forward pass under bfloat16 autocast (weights and optimizer stay fp32):
    2-3x faster steps on CPUs with native bf16 (see :func:`cpu_has_bf16`).

    ``batches`` is a sequence used every epoch, or ``epoch -> iterable`` (to reshuffle; then give
    ``steps_per_epoch``). ``loss_fn(model, batch)`` returns the scalar loss of one batch.
    """
    import torch

    if callable(batches):
        if steps_per_epoch is None:
            raise ValueError("fit: give steps_per_epoch when batches is a function of the epoch")
        make: Callable[[int], Iterable[B]] = batches
    else:
        fixed = batches
        steps_per_epoch = len(fixed) if steps_per_epoch is None else steps_per_epoch
        make = lambda _epoch: fixed
    total = max(1, epochs * steps_per_epoch)
    warmup = int(total * warmup_fraction)

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    params = [p for p in model.parameters() if p.requires_grad]
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not n.endswith(no_decay)], "weight_decay": weight_decay},
        {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr)

    def schedule(step: int) -> float:  # linear warmup to lr, then linear decay to 0
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    done, epoch_losses = 0, []
    for epoch in range(epochs):
        losses = []
        for batch in make(epoch):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(model, batch)
            loss.float().backward()
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            done += 1
            if progress:
                progress(done, total, losses[-1])
        epoch_losses.append(sum(losses) / max(1, len(losses)))
    model.eval()
    return epoch_losses


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where autocast pays."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


