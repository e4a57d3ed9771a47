"""Declaring tools: a typed Python function becomes a LangChain tool with a JSON schema.

We build on LangChain's ``BaseTool`` rather than a tool class of our own so that agentrt tools
work unchanged in LangGraph's prebuilt nodes, LangGraph Studio and any LangChain code. What
agentrt adds is a per-tool timeout (kept in ``tool.metadata``) and one way to get the
OpenAI-format schema that every model backend receives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.tools import BaseTool
from langchain_core.tools import tool as _langchain_tool
from langchain_core.utils.function_calling import convert_to_openai_tool

DEFAULT_TIMEOUT_S = 30.0


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Any:
    """Make a tool from a typed function (sync or async).

    The schema comes from the signature (types, defaults) and the Google-style docstring (the
    summary becomes the description, ``Args:`` entries describe parameters). Arguments are
    validated by pydantic before the function runs. ``timeout`` bounds one call in seconds.

    Usable bare (``@tool``) or with options (``@tool(timeout=5)``).
    """

    def wrap(f: Callable[..., Any]) -> BaseTool:
        if not (f.__doc__ or "").strip():
            raise ValueError(
                f"tool {f.__name__!r} has no docstring: the model needs a description to know "
                "when to call it. Add a one-line docstring (and an Args: section)."
            )
        decorate = _langchain_tool(
            name or f.__name__, parse_docstring=True, error_on_invalid_docstring=False
        )
        made: BaseTool = decorate(f)
        made.metadata = {**(made.metadata or {}), "timeout_s": float(timeout)}
        return made

    return wrap(fn) if fn is not None else wrap


def tool_timeout(t: BaseTool) -> float:
    """The per-call timeout of a tool; LangChain tools made elsewhere get the default."""
    return float((t.metadata or {}).get("timeout_s", DEFAULT_TIMEOUT_S))


def openai_schemas(tools: Sequence[BaseTool | dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI ``tools=[...]`` entries, the one schema format every backend is given."""
    return [convert_to_openai_tool(t) for t in tools]
