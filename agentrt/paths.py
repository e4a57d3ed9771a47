"""Where agentrt keeps its files: one home folder, so the store, the server, critics, adapters,
indexes and model caches agree on it without depending on each other."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """agentrt's cache and data folder (``AGENTRT_HOME``, default ``~/.cache/agentrt``)."""
    return Path(os.environ.get("AGENTRT_HOME", Path.home() / ".cache" / "agentrt"))
