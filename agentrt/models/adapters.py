"""LoRA adapters made by fine-tuning, saved with versions so a model spec can name them.

``local:qwen2.5-coder-0.5b+bfcl-rft`` is the base model with the newest version of adapter
``bfcl-rft``; ``+bfcl-rft@v2`` pins a version. Adapters are named, never given as paths: a spec
can come from a served run's client, and a path there would load weights from any folder.
``agentrt rft`` registers what it trains; :func:`save_adapter` registers any peft model.
Adapters live in ``home()/adapters/NAME/vN`` (peft's own files plus ``agentrt.json``), written
to a staging folder and renamed, so a crash never leaves a half adapter that a spec could load.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from agentrt.models.base import ModelError
from agentrt.paths import home

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
META = "agentrt.json"


def adapters_root() -> Path:
    return home() / "adapters"


def check_adapter_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise ModelError(f"adapter name {name!r} must be letters, digits, . _ - (at most 64), starting with a letter or digit")


def versions(name: str) -> list[int]:
    folder = adapters_root() / name
    if not folder.is_dir():
        return []
    return sorted(int(p.name[1:]) for p in folder.iterdir() if re.fullmatch(r"v\d+", p.name) and (p / META).is_file())


def resolve(ref: str) -> Path:
    """The folder an adapter reference names: NAME (newest version) or NAME@vN."""
    name, _, version = ref.partition("@")
    check_adapter_name(name)
    found = versions(name)
    if not found:
        raise ModelError(f"no adapter {name!r} is registered; `agentrt rft run` makes one (`agentrt models` lists them)")
    if version:
        if not re.fullmatch(r"v\d+", version) or int(version[1:]) not in found:
            raise ModelError(f"adapter {name!r} has versions {', '.join(f'v{v}' for v in found)}, not {version!r}")
        return adapters_root() / name / version
    return adapters_root() / name / f"v{found[-1]}"


def save_adapter(model: Any, name: str, meta: dict[str, Any]) -> tuple[Path, str]:
    """Save a peft model's adapter as the next version of ``name``; returns (folder, "NAME@vN")."""
    check_adapter_name(name)
    root = adapters_root() / name
    root.mkdir(parents=True, exist_ok=True)
    version = (versions(name) or [0])[-1] + 1
    staging = root / f".v{version}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging))
    (staging / META).write_text(json.dumps({**meta, "name": name, "version": version, "saved_at": time.time()},
                                           indent=2, default=str))
    final = root / f"v{version}"
    staging.rename(final)
    return final, f"{name}@v{version}"
