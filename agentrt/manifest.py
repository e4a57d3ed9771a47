"""Finding graphs by name through a project manifest.

The manifest is a ``langgraph.json`` (the same file LangGraph's own server reads), so one file
names the graphs for ``agentrt run``, ``agentrt serve`` and ``langgraph dev`` alike:
``{"graphs": {"react": "./graphs/react.py:graph"}}``. The engine never imports a graph by
name: it only follows what the manifest says.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agentrt.errors import AgentrtError
from agentrt.loading import load_reference

MANIFEST_NAME = "langgraph.json"


class ManifestError(AgentrtError, ValueError):
    """The manifest or a graph it names cannot be used; the message says how to fix it."""


class GraphEntry(BaseModel):
    """A graph the manifest names: where it is, the configuration every run of it starts from
    (``{"configurable": {...}}``), which a run's own config overrides key by key, and the model
    specs a served run may choose besides the configured one (``models``)."""

    path: str
    description: str | None = None
    config: dict[str, Any] = {}
    models: list[str] = []


class Manifest(BaseModel):
    graphs: dict[str, str | GraphEntry]
    path: Path

    def entry(self, name: str) -> GraphEntry:
        value = self.graphs[name]
        return value if isinstance(value, GraphEntry) else GraphEntry(path=value)

    @property
    def root(self) -> Path:
        return self.path.parent


def find_manifest(explicit: str | Path | None = None) -> Path:
    """``explicit``, else ``$AGENTRT_MANIFEST``, else ``./langgraph.json``, else the manifest of
    the project agentrt was installed from (so `agentrt run` works from any folder)."""
    candidates = [explicit, os.environ.get("AGENTRT_MANIFEST"), Path.cwd() / MANIFEST_NAME]
    spec = importlib.util.find_spec("agentrt.graphs")
    if spec and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))).parent / MANIFEST_NAME)
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c).resolve()
    if explicit:
        raise ManifestError(f"manifest {explicit} does not exist")
    raise ManifestError(
        f"no {MANIFEST_NAME} found here or in the agentrt project; pass --manifest FILE "
        'listing your graphs, e.g. {"graphs": {"react": "./graphs/react.py:graph"}}'
    )


@cache
def load_manifest(path: Path) -> Manifest:
    try:
        data = json.loads(path.read_text())
        return Manifest(graphs=data.get("graphs") or {}, path=path)
    except (OSError, json.JSONDecodeError, ValidationError, AttributeError) as exc:
        raise ManifestError(f"{path} is not a valid manifest: {exc}") from exc


def load_graph(name: str, manifest: str | Path | None = None) -> Any:
    """The compiled graph a manifest names (``name``), or a direct ``path.py:attr`` /
    ``package.module:attr`` reference."""
    if ":" in name:
        return _resolve(name, Path.cwd())
    m = load_manifest(find_manifest(manifest))
    if name not in m.graphs:
        raise ManifestError(f"no graph named {name!r} in {m.path}; it has: {', '.join(m.graphs) or 'none'}")
    return _resolve(m.entry(name).path, m.root)


def _resolve(ref: str, root: Path) -> Any:
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # graph files import their project's tools and graphs
    return load_reference(ref, root=root, error=ManifestError, what="graph",
                          module_name=lambda f: "agentrt.graphs." + f.stem if f.parent.name == "graphs" else f.stem)
