"""LoRA supervised fine-tuning on kept trajectories, with the loss on assistant turns only.

Each assistant turn is one training example: its prompt is the conversation before it, rendered
exactly as a local backend renders it at inference (:func:`template_chat` and
:func:`render_ids`, tool hints included), and its target is the text the model itself sampled
for that turn, then ``<|im_end|>`` (the tokenizer's end of turn). Rejection sampling keeps the
model's own successful outputs, so it is those outputs that are reinforced. A turn with no
sampled text (an expert's turn in an EEF prefix, a hand-written conversation) is rendered by the
chat template instead.

Why not render the whole conversation through the chat template, as TRL does: Qwen2.5-Coder-0.5B
writes its calls as fenced JSON, while the template renders them inside ``<tool_call>`` tags.
Trained on the template's rendering, the tuned model lost the fences but not the habit of going
on: it wrote the same bare call nine times (BFCL live: 3 of 9 tasks against the base model's 7
of 9, round 1 of the first run). The template's rendering also puts the tool-result hint on a
different message than inference does, so the prompts did not match either.

Training uses peft's LoRA on the attention projections and agentrt's one training loop
(:func:`agentrt.training.fit`), bfloat16 autocast where the CPU has it. The adapter is saved as
the next version of its name, and ``local:BASE+NAME`` serves it everywhere a model spec goes.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, model_validator

from agentrt.errors import AgentrtError
from agentrt.models import adapters, weights
from agentrt.models.base import ModelError
from agentrt.models.local_text import render_ids, template_chat
from agentrt.training import cpu_has_bf16, fit

IGNORE = -100


class SFTError(AgentrtError, ValueError):
    """Fine-tuning cannot run as asked; the message says what to change."""


class SFTSettings(BaseModel):
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    targets: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]
    epochs: int = 2
    lr: float = 2e-4
    batch_size: int = 4
    max_length: int = 1024
    bf16: bool | None = None
    seed: int = 0
    threads: int = 2


class SFTReport(BaseModel):
    adapter: str  # NAME@vN, for local:BASE+NAME@vN
    folder: str
    base: str
    conversations: int = 0
    examples: int  # assistant turns trained on
    skipped: int  # assistant turns dropped: no room left within max_length
    assistant_tokens: int
    epochs: int
    losses: list[float]
    seconds: float


class Conversation(BaseModel):
    """One training conversation: OpenAI-format messages (tool-call arguments as JSON strings or
    objects), the tools offered, and per message the text the model sampled for it (None where
    unknown)."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = []
    sampled: list[str | None] = []
    sampled_ids: list[list[int] | None] = []  # the same turns as the model's own token ids, where recorded

    @model_validator(mode="after")
    def _aligned(self) -> Conversation:
        for name in ("sampled", "sampled_ids"):
            got = getattr(self, name)
            if got and len(got) != len(self.messages):
                raise ValueError(f"{name} has {len(got)} entries for {len(self.messages)} messages: "
                                 "give one per message (None where unknown), or none")
        return self


def base_folder(spec: str) -> tuple[str, Path]:
    """(catalog name or path, transformers folder) of a spec that can be fine-tuned here."""
    scheme, _, rest = spec.partition(":")
    if spec.startswith(("http://", "https://")) or scheme == "openai":
        raise SFTError(f"{spec!r} is a remote model: it cannot be fine-tuned here. Fine-tune a local model "
                       "(e.g. local:qwen2.5-coder-0.5b) or use that provider's own fine-tuning with "
                       "`agentrt traj export --format openai`")
    if scheme == "llamacpp":
        raise SFTError(f"{spec!r}: llama.cpp runs quantized weights that cannot be trained; use local:{rest.split('+')[0]}")
    if scheme == "local":
        name = rest.split("+")[0]
        return name, weights.hf_dir(name)
    path = Path(spec).expanduser()
    if (path / "config.json").is_file():
        return str(path), path
    raise SFTError(f"cannot fine-tune {spec!r}: use local:NAME (see `agentrt models`) or a transformers folder")


def encode(tokenizer: Any, conv: Conversation, max_length: int, hints: bool = True) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per assistant turn, with labels only on the turn; a turn whose prompt
    leaves it no room within ``max_length`` is dropped."""
    end = tokenizer.eos_token_id
    examples = []
    for i, m in enumerate(conv.messages):
        if m.get("role") != "assistant":
            continue
        before = template_chat(conv.messages[:i], hints=hints)
        prompt = render_ids(tokenizer, before, conv.tools, generation_prompt=True)
        sampled = conv.sampled[i] if conv.sampled else None
        sampled_ids = conv.sampled_ids[i] if conv.sampled_ids else None
        if sampled_ids is not None and end is not None:  # the tokens it sampled: no re-tokenizing drift
            turn = list(sampled_ids) + [end]
        elif sampled is not None and end is not None:
            turn = tokenizer(sampled, add_special_tokens=False)["input_ids"] + [end]
        else:
            whole = render_ids(tokenizer, before + template_chat([m], hints=False), conv.tools, generation_prompt=False)
            if whole[: len(prompt)] != prompt:
                raise SFTError("the chat template does not render conversation prefixes stably, so assistant "
                               "turns cannot be located; this model's template is not supported for fine-tuning")
            turn = whole[len(prompt):]
        ids = (prompt + turn)[:max_length]
        if len(prompt) < len(ids):
            examples.append((ids, [IGNORE] * len(prompt) + turn[: len(ids) - len(prompt)]))
    return examples


def train_lora(
    conversations: Sequence[Conversation], *, base_spec: str, name: str, settings: SFTSettings | None = None,
    progress: Callable[[int, int, float], None] | None = None, meta: dict[str, Any] | None = None,
) -> SFTReport:
    settings = settings or SFTSettings()
    if not conversations:
        raise SFTError("nothing to fine-tune on: no kept trajectories (no verified successes yet)")
    adapters.check_adapter_name(name)
    base_name, folder = base_folder(base_spec)
    weights.offline()
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoded = [e for c in conversations for e in encode(tokenizer, c, settings.max_length)]
    if not encoded:
        raise SFTError(f"every assistant turn starts after max_length={settings.max_length} tokens of prompt; "
                       "raise --max-length")
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    except Exception as exc:
        raise ModelError(f"cannot load {folder} for fine-tuning ({type(exc).__name__}: {exc})") from exc
    lora = LoraConfig(task_type="CAUSAL_LM", r=settings.rank, lora_alpha=settings.alpha,
                      lora_dropout=settings.dropout, target_modules=settings.targets)
    model = get_peft_model(model, lora)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def batches(epoch: int) -> Any:
        order = list(range(len(encoded)))
        random.Random(settings.seed * 1009 + epoch).shuffle(order)
        for start in range(0, len(order), settings.batch_size):
            chunk = [encoded[i] for i in order[start:start + settings.batch_size]]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            labels = torch.full((len(chunk), width), IGNORE, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (x, y) in enumerate(chunk):
                ids[row, : len(x)] = torch.tensor(x)
                labels[row, : len(y)] = torch.tensor(y)
                mask[row, : len(x)] = 1
            yield ids, mask, labels

    def loss_fn(m: Any, batch: Any) -> Any:
        # Logits only where a next token is trained (assistant turns): the full (batch, length,
        # vocabulary) float logits of a 150k-token vocabulary took 20+ GB at batch 8 x 1k tokens.
        ids, mask, labels = batch
        targets = labels[:, 1:]
        keep = (targets != IGNORE).any(dim=0).nonzero().squeeze(1)
        logits = m(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
        return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                 targets[:, keep].reshape(-1), ignore_index=IGNORE)

    started = time.perf_counter()
    losses = fit(model, batches, loss_fn, epochs=settings.epochs, lr=settings.lr,
                 steps_per_epoch=math.ceil(len(encoded) / settings.batch_size), progress=progress,
                 bf16=cpu_has_bf16() if settings.bf16 is None else settings.bf16)
    seconds = time.perf_counter() - started
    assistant_tokens = sum(sum(1 for t in y if t != IGNORE) for _, y in encoded)
    out, ref = adapters.save_adapter(model, name, {
        "base": base_name, "base_spec": base_spec, "settings": settings.model_dump(), "examples": len(encoded),
        "losses": losses, **(meta or {}),
    })
    return SFTReport(adapter=ref, folder=str(out), base=base_name, examples=len(encoded),
                     conversations=len(conversations),
                     skipped=sum(m.get("role") == "assistant" for c in conversations for m in c.messages) - len(encoded),
                     assistant_tokens=assistant_tokens,
                     epochs=settings.epochs, losses=losses, seconds=seconds)
