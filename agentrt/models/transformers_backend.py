"""Local models through transformers, offline, on CPU (bf16 where the CPU supports it)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from agentrt.models.base import ModelError, SamplingParams
from agentrt.models.local_text import Decoded, LocalTextModel
from agentrt.models.weights import offline


class TransformersChatModel(LocalTextModel):
    """A causal LM loaded from a transformers folder."""

    model_dir: str
    dtype: str = "bfloat16"
    adapter_dir: str | None = None  # a LoRA adapter, merged into the weights at load

    _model: Any = PrivateAttr(default=None)

    def model_post_init(self, context: Any) -> None:
        offline()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(self.model_dir)
        if not (folder / "config.json").is_file():
            raise ModelError(f"{folder} is not a transformers model folder (no config.json)")
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(folder)
            self._model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, self.dtype))
        except Exception as exc:
            raise ModelError(
                f"could not load the model in {folder} ({type(exc).__name__}: {exc}). If this is "
                "agentrt's cache, delete the folder and run `agentrt models --prepare` to rebuild it."
            ) from exc
        if self.adapter_dir:
            self._model = _merged(self._model, Path(self.adapter_dir))
        self._model.eval()

    def _generate_kwargs(self, prompt_ids: list[int], params: SamplingParams) -> dict[str, Any]:
        import torch

        if params.seed is not None:
            torch.manual_seed(params.seed)
        sampled = params.temperature > 0
        kwargs: dict[str, Any] = {
            "input_ids": torch.tensor([prompt_ids]),
            "attention_mask": torch.ones(1, len(prompt_ids), dtype=torch.long),
            "max_new_tokens": params.max_tokens,
            "do_sample": sampled,
            "num_return_sequences": params.n,
            "pad_token_id": self._tokenizer.pad_token_id or self._tokenizer.eos_token_id,
        }
        if sampled:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        else:  # silence the "temperature is ignored" warnings of greedy decoding
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=params.stop, tokenizer=self._tokenizer)
        if params.logprobs:  # the scores of every step: vocabulary-sized, so only when asked
            kwargs.update(output_scores=True, return_dict_in_generate=True)
        return kwargs

    def _logprobs(self, out: Any, params: SamplingParams) -> list[list[float]] | None:
        """Per sequence, the log-probability of each generated token under the distribution it was
        sampled from (after temperature and top-p)."""
        if not params.logprobs:
            return None
        scores = self._model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        return [row.float().tolist() for row in scores]

    def _finish(self, new_ids: list[int], params: SamplingParams, logprobs: list[float] | None = None) -> Decoded:
        configured = self._model.generation_config.eos_token_id
        eos = {self._tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])}
        ended = bool(new_ids) and new_ids[-1] in eos
        while new_ids and new_ids[-1] in eos | {self._tokenizer.pad_token_id}:
            new_ids = new_ids[:-1]
        text = self._tokenizer.decode(new_ids, skip_special_tokens=True)
        for s in params.stop:
            if s in text:
                text, ended = text[: text.index(s)], True
        reason = "stop" if ended or len(new_ids) < params.max_tokens else "length"
        return Decoded(text=text, completion_tokens=len(new_ids), finish_reason=reason, token_ids=new_ids,
                       logprobs=None if logprobs is None else logprobs[: len(new_ids)])

    def _decode(self, prompt_ids: list[int], params: SamplingParams) -> list[Decoded]:
        import torch

        with torch.inference_mode():
            out = self._model.generate(**self._generate_kwargs(prompt_ids, params))
        sequences = out.sequences if params.logprobs else out
        logprobs = self._logprobs(out, params) or [None] * len(sequences)
        return [self._finish(row[len(prompt_ids):].tolist(), params, lp) for row, lp in zip(sequences, logprobs, strict=True)]

    def _decode_stream(self, prompt_ids: list[int], params: SamplingParams) -> Iterator[str | Decoded]:
        import torch
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = self._generate_kwargs(prompt_ids, params.model_copy(update={"n": 1}))
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                with torch.inference_mode():
                    result["out"] = self._model.generate(**kwargs, streamer=streamer)
            except Exception as exc:  # surfaced in the caller's thread below
                result["error"] = exc
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield piece
        worker.join()
        if "error" in result:
            raise ModelError(f"{self.spec}: generation failed: {result['error']}") from result["error"]
        out = result["out"]
        sequences = out.sequences if params.logprobs else out
        logprobs = self._logprobs(out, params)
        yield self._finish(sequences[0][len(prompt_ids):].tolist(), params, logprobs[0] if logprobs else None)


def _merged(model: Any, adapter: Path) -> Any:
    """The base model with a LoRA adapter folded into its weights: inference then costs exactly
    what the base model costs."""
    try:
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    except Exception as exc:
        raise ModelError(f"could not apply the adapter in {adapter} ({type(exc).__name__}: {exc}); "
                         "was it trained on this base model?") from exc
