"""What a client may choose in a run request, and what only the operator may.

A run's ``config.configurable`` and ``context`` come from the client, and some of their values
name things the server would load or connect to. Left open, a key holder could point the run
at a model server they control (and so decide every tool call), spend the operator's OpenAI
key, or have weights loaded from any folder. The rules:

- ``model``: one of the models the operator allowed for that graph: the graph's own configured
  model, the manifest entry's ``models`` list, and ``agentrt serve --allow-model SPEC`` (all
  graphs). Anything else is a 403 that lists what is allowed.
- every other setting that is a single string is a name, never a location: one that looks like
  a filesystem path is a 403. Critics, adapters and indexes are named by their registered
  names, which never contain a path separator. (Lists and objects are data, e.g. ``stop``.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import HTTPException

from agentrt.manifest import Manifest

MODEL_KEY = "model"
_SERVER_KEYS = frozenset({"thread_id", "checkpoint_ns", "checkpoint_id"})  # the server's own, checked elsewhere


class ModelPolicy:
    def __init__(self, manifest: Manifest, allow: Iterable[str] = ()) -> None:
        self.manifest, self.everywhere = manifest, list(dict.fromkeys(allow))

    def allowed(self, graph: str) -> list[str]:
        entry = self.manifest.entry(graph)
        own = entry.config.get("configurable", {}).get(MODEL_KEY)
        return list(dict.fromkeys([*([own] if own else []), *entry.models, *self.everywhere]))

    def check(self, graph: str, *settings: dict[str, Any] | None) -> None:
        """Refuse (403) a request whose settings name a model or a path the operator did not allow."""
        for values in settings:
            for key, value in (values or {}).items():
                if key in _SERVER_KEYS:
                    continue
                if key == MODEL_KEY:
                    self._check_model(graph, value)
                elif _mentions_path(value):
                    raise HTTPException(403, f"configurable.{key}: this server takes registered names, not "
                                             "filesystem paths, from clients; ask its operator which names exist")

    def _check_model(self, graph: str, value: Any) -> None:
        allowed = self.allowed(graph)
        if value is None or value in allowed:
            return
        if allowed:
            listed = ", ".join(allowed)
            raise HTTPException(403, f"model {str(value)[:200]!r} is not allowed for {graph!r}; this server "
                                     f"allows: {listed} (or leave configurable.model out for the default)")
        raise HTTPException(403, f"{graph!r} runs only its own default model on this server: leave "
                                 "configurable.model out (the operator can allow others with --allow-model)")


def _mentions_path(value: Any) -> bool:
    return isinstance(value, str) and ("/" in value or "\\" in value or value.startswith(("~", ".")))
