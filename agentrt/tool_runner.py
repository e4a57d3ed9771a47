"""Running the tool calls of one assistant turn.

Every failure becomes a ``ToolMessage`` with ``status="error"`` that tells the model what went
wrong, so a bad argument, a crashing tool or a slow one never ends the run. The calls of one turn
run concurrently, each bounded by its tool's timeout. Latency and error are kept in the message's
``response_metadata`` so the trajectory can record them.

Timeouts and threads: an async tool that overruns its timeout is cancelled, which frees its
thread; a sync tool is abandoned, not killed (Python cannot kill a thread), so tools that may
hang on work they cannot interrupt bound it themselves, as ``python_exec`` (the sandbox's wall
limit) and ``http_get`` (one deadline that closes the connection) do.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from pydantic import ValidationError

from agentrt.tool import tool_timeout

_pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="agentrt-tool")
MAX_RESULT_CHARS = 20_000


def run_tool_calls(message: AIMessage, tools: Mapping[str, BaseTool]) -> list[ToolMessage]:
    """Tool messages answering every call (valid or not) of ``message``, in call order."""
    replies: list[ToolMessage] = [_invalid(c) for c in message.invalid_tool_calls]
    calls = message.tool_calls
    if len(calls) == 1:  # the common case: skip the fan-out
        return replies + [_run_one(calls[0], tools)]
    futures = [_pool.submit(_run_one, call, tools) for call in calls]
    return replies + [f.result() for f in futures]


def _run_one(call: Mapping[str, Any], tools: Mapping[str, BaseTool]) -> ToolMessage:
    name, call_id = call["name"], call["id"] or ""
    started = time.perf_counter()

    def reply(content: str, error: str | None = None) -> ToolMessage:
        meta = {"latency_s": time.perf_counter() - started, "error": error}
        return ToolMessage(
            content=_clip(content), tool_call_id=call_id, name=name,
            status="error" if error else "success", response_metadata=meta,
        )

    tool = tools.get(name)
    if tool is None:
        msg = f"Error: there is no tool named {name!r}. Available tools: {', '.join(sorted(tools)) or 'none'}."
        return reply(msg, "unknown tool")
    unknown = sorted(set(call["args"]) - set(_properties(tool)))
    if unknown and not _takes_any(tool):
        return reply(f"Error: invalid arguments for {name}: unknown argument(s) {', '.join(map(repr, unknown))}. "
                     f"Expected parameters: {_params(tool)}.", "invalid arguments")
    timeout = tool_timeout(tool)
    try:
        result = _pool.submit(_invoke, tool, dict(call["args"]), timeout).result(timeout=timeout)
    except FutureTimeout:
        return reply(f"Error: {name} did not finish within {timeout:g} s and was abandoned. "
                     "Try simpler input or another approach.", "timeout")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
        return reply(f"Error: invalid arguments for {name}: {problems}. Expected parameters: "
                     f"{_params(tool)}.", "invalid arguments")
    except Exception as exc:  # the tool itself failed: tell the model, keep the run alive
        return reply(f"Error: {name} failed: {type(exc).__name__}: {exc}", type(exc).__name__)
    return reply(result if isinstance(result, str) else _to_text(result))


def _invoke(tool: BaseTool, args: dict[str, Any], timeout: float) -> Any:
    """Async-only tools get their own event loop (we are on a worker thread, never inside one),
    and are cancelled at the timeout so that the thread comes back."""
    if getattr(tool, "func", True) is None and getattr(tool, "coroutine", None) is not None:
        try:
            return asyncio.run(asyncio.wait_for(tool.ainvoke(args), timeout))
        except TimeoutError:
            raise FutureTimeout from None
    return tool.invoke(args)


def _invalid(call: Mapping[str, Any]) -> ToolMessage:
    error = call.get("error") or "the tool call could not be parsed"
    return ToolMessage(
        content=f"Error: {error}", tool_call_id=call.get("id") or "", name=call.get("name") or "unknown",
        status="error", response_metadata={"latency_s": 0.0, "error": "malformed tool call"},
    )


def _schema(tool: BaseTool) -> dict[str, Any]:
    schema = tool.tool_call_schema
    return schema.model_json_schema() if inspect.isclass(schema) else dict(schema)


def _properties(tool: BaseTool) -> dict[str, Any]:
    return _schema(tool).get("properties", {})


def _takes_any(tool: BaseTool) -> bool:
    """A schema that says so (``additionalProperties``) accepts arguments it does not list."""
    return bool(_schema(tool).get("additionalProperties"))


def _params(tool: BaseTool) -> str:
    return ", ".join(f"{k} ({v.get('type', 'any')})" for k, v in _properties(tool).items()) or "none"


def _to_text(value: Any) -> str:
    import json

    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _clip(text: str) -> str:
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return text[:MAX_RESULT_CHARS] + f"\n[... {len(text) - MAX_RESULT_CHARS} more characters cut]"


def tools_by_name(tools: Sequence[BaseTool]) -> dict[str, BaseTool]:
    names = [t.name for t in tools]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"two tools share the name(s) {sorted(duplicates)}: give each tool a unique name")
    return dict(zip(names, tools, strict=True))
