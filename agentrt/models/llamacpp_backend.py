"""The same GGUF files through llama-cpp-python (optional extra: ``pip install 'agentrt[llamacpp]'``).

Measured on 2 CPU cores (`agentrt bench backends`): 2.6x transformers' decoding speed but only
0.19x its prompt-reading speed (transformers uses the CPU's bf16 units there). Prompts are rendered by the same Hugging Face
tokenizer and chat template as the transformers backend and handed over as token ids, so both
backends see the same prompt. llama.cpp keeps the KV cache of the previous prompt and only
evaluates the part after the longest common prefix, so multi-round RAG and repeated samples of
one prompt do not pay for the shared prefix again.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

from pydantic import PrivateAttr

from agentrt.models.base import ModelError, SamplingParams
from agentrt.models.local_text import Decoded, LocalTextModel
from agentrt.models.weights import offline


class LlamaCppChatModel(LocalTextModel):
    """A GGUF model run by llama.cpp."""

    gguf: str
    tokenizer_dir: str
    n_ctx: int = 8192
    n_threads: int | None = None

    _llama: Any = PrivateAttr(default=None)

    def model_post_init(self, context: Any) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelError(
                f"{self.spec} needs llama-cpp-python: pip install 'agentrt[llamacpp]' "
                "(it compiles llama.cpp, about 5 minutes on 2 cores), or use the local: backend."
            ) from exc
        offline()
        from transformers import AutoTokenizer

        try:
            if self.tokenizer_dir.endswith(".gguf"):
                folder, _, name = self.tokenizer_dir.rpartition("/")
                self._tokenizer = AutoTokenizer.from_pretrained(folder or ".", gguf_file=name)
            else:
                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_dir)
        except Exception as exc:
            raise ModelError(
                f"could not read the tokenizer of {self.tokenizer_dir} ({type(exc).__name__}: {exc}): the file is "
                "damaged or not a GGUF model. For a catalog model, delete it and run `agentrt models --prepare`."
            ) from exc
        try:
            with _amx_safe_params():
                self._llama = Llama(
                    model_path=self.gguf,
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads or os.cpu_count(),
                    n_batch=512,
                    verbose=False,
                )
        except Exception as exc:  # llama.cpp says only "Failed to load model from file"
            raise ModelError(
                f"llama.cpp could not load {self.gguf} ({exc}): the file is damaged or not a GGUF model. "
                "For a catalog model, delete it and run `agentrt models --prepare`."
            ) from exc

    def _options(self, params: SamplingParams, sample_index: int) -> dict[str, Any]:
        seed = params.seed + sample_index if params.seed is not None else None
        return {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": 0 if params.temperature > 0 else 1,
            "stop": params.stop or None,
            **({"seed": seed} if seed is not None else {}),
        }

    def _check_fits(self, prompt_ids: list[int], params: SamplingParams) -> None:
        if len(prompt_ids) + params.max_tokens > self.n_ctx:
            raise ModelError(
                f"{self.spec}: the prompt has {len(prompt_ids)} tokens and {params.max_tokens} more were asked "
                f"for, over the context of {self.n_ctx}. Shorten the input or retrieve fewer documents."
            )

    def _decode(self, prompt_ids: list[int], params: SamplingParams) -> list[Decoded]:
        self._check_fits(prompt_ids, params)
        out = []
        # Samples run one after another; each reuses the cached prompt prefix, so the prompt is
        # evaluated once for all n.
        for i in range(params.n):
            result = self._llama.create_completion(prompt=prompt_ids, **self._options(params, i))
            choice = result["choices"][0]
            out.append(
                Decoded(
                    text=choice["text"],
                    completion_tokens=result["usage"]["completion_tokens"],
                    finish_reason=choice["finish_reason"] or "stop",
                )
            )
        return out

    def _decode_stream(self, prompt_ids: list[int], params: SamplingParams) -> Iterator[str | Decoded]:
        self._check_fits(prompt_ids, params)
        text, count, reason = "", 0, "stop"
        for event in self._llama.create_completion(prompt=prompt_ids, stream=True, **self._options(params, 0)):
            choice = event["choices"][0]
            if choice["text"]:
                text += choice["text"]
                count += 1
                yield choice["text"]
            reason = choice.get("finish_reason") or reason
        yield Decoded(text=text, completion_tokens=count, finish_reason=reason)


_params_lock = threading.Lock()


@contextlib.contextmanager
def _amx_safe_params() -> Iterator[None]:
    """Load without ggml's "extra" CPU buffer types when the build uses AMX.

    A llama.cpp compiled with -march=native on a CPU with AMX (this project's machines) puts
    some weights in AMX buffers and then crashes with SIGSEGV in ggml_backend_amx_mul_mat on
    the first decode. ``Llama`` exposes no switch for ``use_extra_bufts``, so we give it default
    model params with that field off while it loads. Measured here, this costs nothing: a build
    without AMX (CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=ON ...") that keeps the repacked
    buffers ran at the same prompt and decode speed.
    """
    import llama_cpp
    import llama_cpp.llama as llama_module

    if b"AMX_INT8 = 1" not in llama_cpp.llama_print_system_info():
        yield
        return
    original = llama_module.llama_cpp.llama_model_default_params

    def defaults() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    with _params_lock:
        llama_module.llama_cpp.llama_model_default_params = defaults
        try:
            yield
        finally:
            llama_module.llama_cpp.llama_model_default_params = original
