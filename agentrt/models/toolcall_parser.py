"""Turn the raw text of small local models into LangChain tool calls.

Small models (Qwen2.5-Coder-0.5B, SmolLM2) are asked for ``<tool_call>{...}</tool_call>`` but
often answer with a ```json fence, bare JSON, several calls, or slightly broken JSON. Rejecting
those would make the agent useless, so this parser is lenient about *format*, strict about
*meaning* (a call must name a known tool and carry an object of arguments), and when a block was
clearly meant as a call but is unusable it emits an ``InvalidToolCall`` whose ``error`` can be sent
straight back to the model. Ordinary JSON answers are left alone, and it never raises.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection
from typing import Any, NamedTuple

import json_repair
from langchain_core.messages.tool import invalid_tool_call, tool_call
from pydantic import BaseModel, Field

__all__ = ["FORMAT_HINT", "ParsedOutput", "has_tool_call_start", "parse_tool_calls"]

FORMAT_HINT = (
    'Reply with exactly one JSON object per call: '
    '<tool_call>{"name": "<tool name>", "arguments": {...}}</tool_call>'
)

# An unterminated final block is kept: generation often stops (max tokens, stop word) before the tag.
_TAG_RE = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_FENCE_RE = re.compile(r"```[ \t]*([\w-]*)[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_EMPTY_FENCE_RE = re.compile(r"```[\w-]*\s*```")
_INNER_FENCE_RE = re.compile(r"\A```[\w-]*\s*(.*?)\s*(?:```)?\s*\Z", re.DOTALL)
_NAME_KEY_RE = re.compile(r"""["']?(?:name|tool|function)["']?\s*:""")
_FENCE_LANGS = frozenset({"", "json", "tool_call", "tool_calls"})
_NAME_KEYS = ("name", "tool", "tool_name", "function")
_ARG_KEYS = ("arguments", "parameters", "args", "input", "tool_input")
_META_KEYS = frozenset({"id", "type", "call_id"})
_MAX_EMBEDDED_TRIES = 64  # bounds the prose scan so pathological input stays cheap
_NOPARSE: Any = object()
_KINDS = {bool: "true/false", int: "a number", float: "a number", list: "a list", str: "a string"}


class ParsedOutput(BaseModel):
    """Result of parsing one model turn; the fields map 1:1 onto ``AIMessage`` fields."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)  # langchain ToolCall dicts
    invalid_tool_calls: list[dict[str, Any]] = Field(default_factory=list)  # InvalidToolCall dicts


class _Shape(NamedTuple):
    name: Any
    args: Any
    strong: bool  # True when an arguments key or the OpenAI wrapper is present, not just "name"


def has_tool_call_start(text: str) -> bool:
    """Cheap streaming check: from here on the text may be (part of) a tool call, so hold it back.

    Deliberately no partial-marker logic: callers stop streaming once this is True, and trailing
    half-markers ("<tool", "`") are the caller's job to hold back briefly.
    """
    return "<tool_call>" in text or "```" in text or text.lstrip().startswith(("{", "["))


def parse_tool_calls(text: str, tool_names: Collection[str] | None = None) -> ParsedOutput:
    """Split raw model text into prose ``content`` plus valid and invalid tool calls.

    Never raises: on any internal failure everything is returned as content.
    """
    try:
        return _parse(text if isinstance(text, str) else str(text), tool_names)
    except Exception:  # the agent loop must never crash on model output
        return ParsedOutput(content=text.strip() if isinstance(text, str) else "")


def _parse(text: str, tool_names: Collection[str] | None) -> ParsedOutput:
    names = [tool_names] if isinstance(tool_names, str) else tool_names
    tools = frozenset(names) if names is not None else None
    found: list[dict[str, Any]] = []

    def on_tag(m: re.Match[str]) -> str:
        body = _INNER_FENCE_RE.sub(r"\1", m.group(1).strip())
        found.extend(_calls(_load(body), body, tools, intended=True) or [])
        return ""

    def on_fence(m: re.Match[str]) -> str:
        lang, body = m.group(1).lower(), m.group(2)
        calls = _judge(body, tools, lang.startswith("tool_call")) if lang in _FENCE_LANGS else None
        found.extend(calls or [])
        return m.group(0) if calls is None else ""

    rest = _TAG_RE.sub(on_tag, text)
    if found:  # Qwen sometimes wraps the tags in a fence; drop the empty shell left behind.
        rest = _EMPTY_FENCE_RE.sub("", rest)
    rest = _FENCE_RE.sub(on_fence, rest)
    bare = rest.strip().startswith(("{", "[")) and not _json_then_prose(rest.strip())
    if bare and (calls := _judge(rest, tools, False)) is not None:
        found.extend(calls)
        rest = ""
    if not found:
        rest = _embedded(rest, tools, found)
    if not found:
        return ParsedOutput(content=text.strip())
    return ParsedOutput(
        content=rest.strip(),
        tool_calls=[c for c in found if c.get("type") == "tool_call"],
        invalid_tool_calls=[c for c in found if c.get("type") == "invalid_tool_call"],
    )


def _judge(body: str, tools: frozenset[str] | None, forced: bool) -> list[dict[str, Any]] | None:
    """Calls from a fence or bare-JSON body; None leaves it as content.

    It counts as a meant-but-broken call only if it looks like JSON with a name key and either
    could not be parsed at all or has a call shape: JSON that parses cleanly into data is an answer.
    """
    value = _load(body)
    hinted = body.lstrip().startswith(("{", "[")) and bool(_NAME_KEY_RE.search(body))
    intended = forced or (hinted and (value is _NOPARSE or _any_confident(value, tools)))
    return _calls(value, body, tools, intended)


def _embedded(text: str, tools: frozenset[str] | None, found: list[dict[str, Any]]) -> str:
    """Take strict-JSON calls out of prose, but only well-shaped ones naming a known tool."""
    decoder, pos, search, out = json.JSONDecoder(), 0, 0, []
    for _ in range(_MAX_EMBEDDED_TRIES):
        i = text.find("{", search)
        if i < 0:
            break
        try:
            obj, end = decoder.raw_decode(text, i)
        except (ValueError, RecursionError):
            search = i + 1
            continue
        shape = _shape(obj)
        if shape and shape.strong and isinstance(shape.name, str) and _resolve(shape.name, tools):
            found.append(_build(obj, shape, tools))
            out.append(text[pos:i])
            pos = end
        search = end  # objects nested inside a data object are data too
    return "".join(out) + text[pos:]


def _json_then_prose(s: str) -> bool:
    """Strict JSON value(s) followed by prose: leave it to the embedded scan, which keeps the prose
    (json_repair would silently drop it)."""
    decoder, pos = json.JSONDecoder(), 0
    try:
        while pos < len(s):
            pos = decoder.raw_decode(s, pos)[1]
            pos = len(s) - len(s[pos:].lstrip())
    except (ValueError, RecursionError):
        return pos > 0
    return False


def _load(s: str) -> Any:
    """Strict JSON first, then let json_repair fix quotes, commas, braces and Python literals."""
    s = s.strip()
    try:
        return json.loads(s) if s else _NOPARSE
    except (ValueError, RecursionError):
        pass
    try:
        value = json_repair.repair_json(s, return_objects=True)
    except Exception:
        return _NOPARSE
    return value if isinstance(value, (dict, list)) else _NOPARSE


def _items(value: Any) -> list[Any] | None:
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list) and len(value) == 1:
        value = value["tool_calls"]  # OpenAI message-style wrapper
    if isinstance(value, dict):
        return [value]
    return value if isinstance(value, list) and value else None


def _shape(obj: Any) -> _Shape | None:
    """Recognise the call dialects models emit; None means 'this is data, not a call'."""
    if not isinstance(obj, dict):
        return None
    fn = obj.get("function")
    if isinstance(fn, dict) and "name" in fn:  # OpenAI: {"type": "function", "function": {...}}
        return _Shape(fn["name"], next((fn[k] for k in _ARG_KEYS if k in fn), None), True)
    key = next((k for k in _NAME_KEYS if k in obj), None)
    if key is None:
        return None
    arg_key = next((k for k in _ARG_KEYS if k in obj), None)
    if arg_key is not None:
        return _Shape(obj[key], obj[arg_key], True)
    if set(obj) - _META_KEYS == {key}:  # name-only call: {"name": "get_time"}
        return _Shape(obj[key], None, False)
    return None


def _confident(shape: _Shape | None, tools: frozenset[str] | None) -> bool:
    """Strong shapes always count; a bare {"name": ...} only when it names a known tool."""
    if shape is None or shape.strong:
        return shape is not None
    return tools is not None and isinstance(shape.name, str) and _resolve(shape.name, tools) is not None


def _any_confident(value: Any, tools: frozenset[str] | None) -> bool:
    return any(_confident(_shape(i), tools) for i in _items(value) or [])


def _calls(
    value: Any, raw: str, tools: frozenset[str] | None, intended: bool
) -> list[dict[str, Any]] | None:
    """Build calls from parsed JSON; None means 'leave this text as content'."""
    items = _items(value)
    if items is None:
        if not intended:
            return None
        reason = "it is not valid JSON" if value is _NOPARSE else "it is not a JSON object"
        reason = reason if raw.strip() else "the block is empty"
        return [_invalid(None, raw, _error(reason, tools))]
    shapes = [_shape(i) for i in items]
    if not intended and not all(_confident(s, tools) for s in shapes):
        return None
    return [
        _build(item, s, tools) if s else
        _invalid(None, _dump(item), _error('it has no "name" of a tool', tools))
        for item, s in zip(items, shapes)
    ]


def _build(item: Any, shape: _Shape, tools: frozenset[str] | None) -> dict[str, Any]:
    """One call; unknown tools and non-object arguments become InvalidToolCalls the model can fix."""
    raw_args = shape.args if isinstance(shape.args, str) else _dump({} if shape.args is None else shape.args)
    if not isinstance(shape.name, str) or not shape.name.strip():
        return _invalid(None, _dump(item), _error('"name" must be a non-empty string', tools))
    name = _resolve(shape.name.strip(), tools)
    if name is None:
        avail = ", ".join(sorted(tools or ())) or "(none)"
        msg = f'Unknown tool "{shape.name}". Available tools: {avail}. {FORMAT_HINT}'
        return _invalid(shape.name, raw_args, msg)
    args, reason = _args(shape.args)
    if args is not None and args.get("type") == "object" and isinstance(args.get("properties"), dict):
        args, reason = None, "you copied the tool's JSON schema instead of giving argument values"
    if args is None:
        return _invalid(name, raw_args, _error(reason, tools))
    return dict(tool_call(name=name, args=args, id=_new_id()))


def _args(raw: Any) -> tuple[dict[str, Any] | None, str]:
    """Arguments must end up a dict; JSON-encoded strings (even double-encoded) are decoded."""
    for _ in range(3):
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return {}, ""
        if not isinstance(raw, str):
            break
        decoded = _load(raw)  # json.loads may also yield a scalar or a doubly encoded string
        if decoded is _NOPARSE:
            break  # plain prose: reported below as "not a string"
        raw = decoded
    if isinstance(raw, dict):
        return raw, ""
    kind = _KINDS.get(type(raw), "null")
    return None, f'"arguments" must be a JSON object of parameter names to values, not {kind}'


def _resolve(name: str, tools: frozenset[str] | None) -> str | None:
    """Exact match, else an unambiguous match ignoring case, '_', '-' and spaces."""
    if tools is None or name in tools:
        return name
    norm = lambda s: re.sub(r"[\s_-]", "", s).lower()  # noqa: E731
    matches = [t for t in tools if norm(t) == norm(name)]
    return matches[0] if len(matches) == 1 else None


def _error(reason: str, tools: frozenset[str] | None) -> str:
    avail = f" Available tools: {', '.join(sorted(tools)) or '(none)'}." if tools is not None else ""
    return f"Could not parse your tool call: {reason}. {FORMAT_HINT}{avail}"


def _dump(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return str(value)


def _invalid(name: str | None, raw: str, error: str) -> dict[str, Any]:
    return dict(invalid_tool_call(name=name, args=raw, id=_new_id(), error=error))


def _new_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"
