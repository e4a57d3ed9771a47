"""OpenAI's fine-tuning format, as rules a line can be checked against before it is written.

OpenAI rejects a whole training file for one bad line, and says so only after upload; checking each
line here, with the reason, lets an export skip that run and say why instead.
"""

from __future__ import annotations

import json
import re
from typing import Any

# OpenAI's rule for function names (Chat Completions `function.name`).
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TOP_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}  # FineTuneChatRequestInput
_MESSAGE_KEYS: dict[str, set[str]] = {
    "system": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "refusal", "audio", "tool_calls", "function_call", "weight"},
    "tool": {"role", "content", "tool_call_id"},
    "function": {"role", "content", "name"},  # legacy function calling, still accepted
}
_PART_TYPES: dict[str, set[str]] = {
    "system": {"text"}, "user": {"text", "image_url"}, "assistant": {"text", "refusal"}, "tool": {"text"},
    "function": {"text"},
}
FUNCTION_KEYS = {"name", "description", "parameters", "strict"}


def _check_content(role: str, content: Any, where: str, required: bool) -> list[str]:
    if content is None:
        return [f"{where}: missing content"] if required else []
    if isinstance(content, str):
        return [f"{where}: empty content"] if required and role != "tool" and not content.strip() else []
    if isinstance(content, list) and content:
        problems = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in _PART_TYPES[role]:
                problems.append(f"{where}: content part {j} has type {kind!r}; {role} messages take "
                                f"{', '.join(sorted(_PART_TYPES[role]))}")
            elif kind == "text" and not isinstance(part.get("text"), str):
                problems.append(f"{where}: content part {j} has no text string")
        return problems
    return [f"{where}: content must be a string or a list of content parts"]


def _check_tool_calls(calls: Any, where: str, seen: set[str]) -> tuple[list[str], list[str]]:
    """Problems, and the ids of the well-formed calls (for the tool messages that answer them)."""
    if not isinstance(calls, list) or not calls:
        return [f"{where}: tool_calls must be a non-empty list"], []
    problems: list[str] = []
    ids: list[str] = []
    for i, call in enumerate(calls):
        at = f"{where}, tool_calls[{i}]"
        if not isinstance(call, dict):
            problems.append(f"{at}: not an object")
            continue
        problems += [f"{at}: unknown key {k!r}" for k in call if k not in ("id", "type", "function")]
        if call.get("type") != "function":
            problems.append(f"{at}: type must be 'function'")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            problems.append(f"{at}: missing id")
        elif call_id in seen:
            problems.append(f"{at}: id {call_id!r} is used twice")
        else:
            seen.add(call_id)
            ids.append(call_id)
        function = call.get("function")
        if not isinstance(function, dict):
            problems.append(f"{at}: missing function")
            continue
        problems += [f"{at}: unknown function key {k!r}" for k in function if k not in ("name", "arguments")]
        if not isinstance(function.get("name"), str) or not NAME.match(function["name"]):
            problems.append(f"{at}: function name must match {NAME.pattern}")
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            problems.append(f"{at}: arguments must be a JSON string, not {type(arguments).__name__}")
        else:
            try:
                if not isinstance(json.loads(arguments), dict):
                    problems.append(f"{at}: arguments must encode a JSON object")
            except json.JSONDecodeError:
                problems.append(f"{at}: arguments are not valid JSON")
    return problems, ids


def _check_message(index: int, message: Any, state: dict[str, Any]) -> list[str]:
    """One message's problems; ``state`` carries the open and known tool-call ids across messages."""
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        return [f"{where}: not an object"]
    role = message.get("role")
    if role not in _MESSAGE_KEYS:
        return [f"{where}: unknown role {role!r}; use one of {', '.join(_MESSAGE_KEYS)}"]
    where = f"{where} ({role})"
    problems = [f"{where}: key {k!r} is not allowed in a {role} message" for k in message if k not in _MESSAGE_KEYS[role]]
    if state["open"] and role != "tool":
        problems.append(f"{where}: tool calls {', '.join(sorted(state['open']))} are not answered before this message")
        state["open"] = set()
    if role == "assistant":
        has_calls = bool(message.get("tool_calls")) or bool(message.get("function_call"))
        problems += _check_content(role, message.get("content"), where, required=not has_calls)
        if "weight" in message and (type(message["weight"]) is not int or message["weight"] not in (0, 1)):
            problems.append(f"{where}: weight must be 0 or 1")
        if "tool_calls" in message:
            found, ids = _check_tool_calls(message["tool_calls"], where, state["seen"])
            problems += found
            state["open"] = set(ids)
    elif role == "tool":
        problems += _check_content(role, message.get("content"), where, required=True)
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            problems.append(f"{where}: missing tool_call_id")
        elif call_id not in state["open"]:
            problems.append(f"{where}: tool_call_id {call_id!r} answers no open tool call of an earlier assistant message")
        else:
            state["open"].discard(call_id)
    else:
        problems += _check_content(role, message.get("content"), where, required=True)
    return problems


def _check_tools(tools: Any) -> list[str]:
    if not isinstance(tools, list):
        return ["tools must be a list"]
    problems: list[str] = []
    names: set[str] = set()
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, dict):
            problems.append(f"{at}: not an object")
            continue
        problems += [f"{at}: unknown key {k!r}" for k in tool if k not in ("type", "function")]
        if tool.get("type") != "function":
            problems.append(f"{at}: type must be 'function'")
        function = tool.get("function")
        if not isinstance(function, dict):
            problems.append(f"{at}: missing function")
            continue
        problems += [f"{at}: unknown function key {k!r}" for k in function if k not in FUNCTION_KEYS]
        name = function.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            problems.append(f"{at}: function name must match {NAME.pattern}")
        elif name in names:
            problems.append(f"{at}: function {name!r} is listed twice")
        else:
            names.add(name)
        if "description" in function and not isinstance(function["description"], str):
            problems.append(f"{at}: description must be a string")
        parameters = function.get("parameters")
        if "parameters" in function and (not isinstance(parameters, dict) or parameters.get("type", "object") != "object"):
            problems.append(f"{at}: parameters must be a JSON schema object ({{'type': 'object', ...}})")
        if "strict" in function and not isinstance(function["strict"], bool):
            problems.append(f"{at}: strict must be true or false")
    return problems


def check_openai_line(obj: Any) -> list[str]:
    """Problems that would make OpenAI's fine-tuning API refuse this line; empty when it is valid.

    The rules of OpenAI's chat fine-tuning input (``FineTuneChatRequestInput``): an object with
    ``messages`` and optionally ``tools`` (``parallel_tool_calls`` and legacy ``functions`` are the
    only other keys); roles system/user/assistant/tool (and legacy function) with their own keys;
    content present (an assistant message may have tool calls instead); ``weight`` 0 or 1, on
    assistant messages only; tool calls ``{"id", "type": "function", "function": {"name",
    "arguments"}}`` with ``arguments`` a JSON string that parses to an object; every tool message
    answers an open call of an earlier assistant message, and those calls are answered before the
    conversation goes on; at least one assistant message; tools shaped as OpenAI function schemas.
    """
    if not isinstance(obj, dict):
        return [f"a line must be a JSON object, not {type(obj).__name__}"]
    problems = [f"unknown top-level key {k!r} (allowed: {', '.join(sorted(_TOP_KEYS))})" for k in obj if k not in _TOP_KEYS]
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        return problems + ["messages must be a non-empty list"]
    state: dict[str, Any] = {"open": set(), "seen": set()}
    for index, message in enumerate(messages):
        problems += _check_message(index, message, state)
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        problems.append("no assistant message: every example needs at least one")
    if "tools" in obj:
        problems += _check_tools(obj["tools"])
    if "parallel_tool_calls" in obj and not isinstance(obj["parallel_tool_calls"], bool):
        problems.append("parallel_tool_calls must be true or false")
    if "functions" in obj and not (isinstance(obj["functions"], list)
                                   and all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in obj["functions"])):
        problems.append("functions must be a list of function schemas with names")
    return problems


# --- writing -----------------------------------------------------------------------------------
