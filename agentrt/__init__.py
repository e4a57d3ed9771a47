"""agentrt: an agentic tool-use and retrieval runtime built on LangGraph.

The public API, importable from ``agentrt`` itself (loaded on first use, so ``import agentrt``
stays cheap)::

    from agentrt import build_tool_agent, tool, run, run_config, user_input, TrajectoryStore

Methods live in their own packages: ``agentrt.sim_rag``, ``agentrt.cr_planner``, ``agentrt.rft``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AgentrtError": "agentrt.errors",
    "Budget": "agentrt.agent",
    "build_tool_agent": "agentrt.agent",
    "user_input": "agentrt.agent",
    "run": "agentrt.runner",
    "run_config": "agentrt.runner",
    "stream_run": "agentrt.runner",
    "Feedback": "agentrt.trajectory",
    "Trajectory": "agentrt.trajectory",
    "TrajectoryStore": "agentrt.trajectory_store",
    "default_store_path": "agentrt.trajectory_store",
    "DEFAULT_MODEL": "agentrt.models.registry",
    "load_model": "agentrt.models.registry",
    "register": "agentrt.models.registry",
    "register_scheme": "agentrt.models.registry",
    "load_graph": "agentrt.manifest",
    "home": "agentrt.paths",
}
__all__ = sorted([*_EXPORTS, "tool"])

# Bound here, not lazily: the decorator shares its name with its module, agentrt.tool, and a
# submodule once imported would shadow a lazy attribute.
from agentrt.tool import tool as tool  # noqa: E402


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'agentrt' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
