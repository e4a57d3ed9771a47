"""Loading an object a user names as ``path/to/file.py:name`` or ``package.module:name``: graphs in a
manifest, verifiers in a task file. One loader, so both accept the same forms and fail the same way."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentrt.errors import AgentrtError


def load_reference(ref: str, *, root: Path, error: Callable[[str], Exception], what: str,
                   module_name: Callable[[Path], str] | None = None) -> Any:
    """The object ``ref`` names. A file path is read relative to ``root`` and loaded once per
    file (under ``module_name(file)``, default a name made from its path); anything else is
    imported as a module. Every failure is ``error(message)``, naming ``what`` was being loaded."""
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise error(f"{what} {ref!r} must look like path/to/file.py:name or package.module:name")
    try:
        if target.endswith(".py") or "/" in target or "\\" in target:
            module = _load_file((root / target).expanduser().resolve(), ref, error, what, module_name)
        else:
            module = importlib.import_module(target)
    except AgentrtError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the module raised while loading
        raise error(f"could not load {what} {ref!r}: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, attr):
        raise error(f"{what} {ref!r}: {target} has no attribute {attr!r}")
    return getattr(module, attr)


def _load_file(file: Path, ref: str, error: Callable[[str], Exception], what: str,
               module_name: Callable[[Path], str] | None) -> Any:
    if not file.is_file():
        raise error(f"{what} file {file} (from {ref!r}) does not exist")
    name = module_name(file) if module_name else "agentrt_user_" + hashlib.sha1(str(file).encode()).hexdigest()[:12]
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None) == str(file):
        return module
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise error(f"{what} {ref!r}: {file} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
