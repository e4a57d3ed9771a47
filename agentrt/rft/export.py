"""Recorded trajectories as fine-tuning data: OpenAI's chat format and TRL's conversational format.

The store keeps every run; training wants a chosen few (completed, passed, above a reward) in the
exact shape a trainer reads. Two targets:

* ``openai``: one ``{"messages": [...], "tools": [...]}`` per line, the format OpenAI's
  fine-tuning API takes. Tool-call ``arguments`` are JSON *strings*, tool messages answer a
  ``tool_call_id``, and nothing else may sit at the top level (OpenAI rejects the file).
* ``trl``: the Hugging Face conversational format with tools, as ``tokenizer.apply_chat_template``
  and TRL's ``SFTTrainer`` read it: ``arguments`` are *objects*, tool messages carry the tool's
  ``name``, and the extra columns ``task_type`` and ``difficulty`` ride along (TRL ignores unknown
  columns; they let a user balance or filter the data set).

Each example is what the model saw and did: the system prompt and tools it was offered (recorded
per model call), the user's messages, its tool calls and their results. A run is a success only
if it completed and its tool calls went right: by default, runs with an invalid, failed,
timed-out or rejected tool call, or whose answer did not follow a successful tool result, are
left out and counted. Turns a human reviewer edited are emitted as they ran (``edits="as-run"``),
as the model wrote them (``"model"``: the conversation stops after that turn, since what followed
depended on the edit), or not at all (``"skip"``); the report says which.

A trajectory that cannot become a valid example (a malformed tool call, a tool answer to a call
nobody made, no assistant turn) is skipped and named in the :class:`ExportReport`, never written:
one bad run must neither crash an export of thousands nor poison the file a trainer rejects later.

Files are written through a temporary file renamed at the end, so an interrupted export leaves the
previous file (or none), never half of one.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import BaseModel, Field, field_validator

from agentrt.errors import AgentrtError
from agentrt.rft.tasks import TaskType
from agentrt.trajectory import Status, Trajectory
from agentrt.trajectory_store import TrajectoryStore

__all__ = [
    "ExportFilter", "ExportReport", "MalformedTrajectory", "SkippedRun", "Tally", "candidates", "check_openai_line",
    "export", "meta_path", "select", "to_openai", "to_trl", "training_example", "write_examples",
]

Format = Literal["jsonl", "openai", "trl"]
Edits = Literal["as-run", "model", "skip"]
FORMATS: tuple[str, ...] = ("jsonl", "openai", "trl")

# OpenAI's rule for function names (Chat Completions `function.name`).
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
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
_FUNCTION_KEYS = {"name", "description", "parameters", "strict"}


class MalformedTrajectory(AgentrtError, ValueError):
    """A trajectory that cannot become a training example; the message says why."""


# --- selection ---------------------------------------------------------------------------------


class ExportFilter(BaseModel):
    """Which runs become training data.

    ``graph``, ``model``, ``status`` and ``since`` go to the store's own query; the rest (reward,
    the verifier's verdict, the task type, ``until``) live in columns or metadata the store does not
    index and are checked here. ``status=None`` takes every status. A naive datetime is read as
    UTC, as ``agentrt traj export --since`` reads it.
    """

    graph: str | None = None
    model: str | None = None
    status: Status | None = "completed"
    min_reward: float | None = None
    verdict: Literal["passed", "failed"] | None = None
    since: datetime | None = None
    until: datetime | None = None
    task_types: list[TaskType] = Field(default_factory=list)
    feedback_key: str = "correct"
    min_feedback: float | None = None  # the latest feedback under ``feedback_key`` is at least this
    tool_errors: bool = False  # also runs whose tool calls went wrong (training formats leave them out)

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _passed(traj: Trajectory) -> bool | None:
    verdict = traj.metadata.get("verdict")
    passed = verdict.get("passed") if isinstance(verdict, dict) else None
    return passed if isinstance(passed, bool) else None


def matches(traj: Trajectory, flt: ExportFilter) -> bool:
    """The filter's checks that the store cannot do in SQL."""
    if flt.until is not None and traj.started_at > flt.until:
        return False
    if flt.min_reward is not None and (traj.reward is None or traj.reward < flt.min_reward):
        return False
    if flt.verdict is not None and _passed(traj) is not (flt.verdict == "passed"):
        return False  # a run with no verdict matches neither "passed" nor "failed"
    if flt.min_feedback is not None:
        latest = traj.latest_feedback(flt.feedback_key)
        if latest is None or latest.score < flt.min_feedback:
            return False
    return not flt.task_types or traj.metadata.get("task_type") in flt.task_types


def select(store: TrajectoryStore, flt: ExportFilter | None = None) -> Iterator[Trajectory]:
    """Matching trajectories, newest first, loaded one at a time."""
    flt = flt or ExportFilter()
    for traj in store.iter(graph=flt.graph, model=flt.model, status=flt.status, since=flt.since):
        if matches(traj, flt):
            yield traj


# --- one neutral form, two renderings ----------------------------------------------------------


class _Call(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any]


class _Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[_Call] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None  # tool messages: the tool that answered


def _text(content: Any, where: str) -> str:
    """Message content as one string: fine-tuning formats take text, not image or audio parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise MalformedTrajectory(f"{where} has a {kind!r} content part; only text can be exported")
        return "".join(texts)
    raise MalformedTrajectory(f"{where} has content of type {type(content).__name__}, not text")


def _arguments(raw: Any, where: str) -> dict[str, Any]:
    """Tool-call arguments as an object, from the JSON string OpenAI-format messages carry."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        raise MalformedTrajectory(f"{where}: arguments are a {type(raw).__name__}, not a JSON object")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise MalformedTrajectory(f"{where}: arguments are not valid JSON ({exc.msg}): {raw[:80]!r}") from exc
    if not isinstance(value, dict):
        raise MalformedTrajectory(f"{where}: arguments are JSON but not an object: {raw[:80]!r}")
    return value


def _calls(raw: Any, where: str) -> list[_Call]:
    if not isinstance(raw, list):
        raise MalformedTrajectory(f"{where}: tool_calls is not a list")
    calls: list[_Call] = []
    for i, call in enumerate(raw):
        at = f"{where}, tool call {i}"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise MalformedTrajectory(f"{at} has no function name")
        if not isinstance(call.get("id"), str) or not call["id"]:
            raise MalformedTrajectory(f"{at} ({function['name']}) has no id, so no tool answer can refer to it")
        calls.append(_Call(id=call["id"], name=function["name"],
                           arguments=_arguments(function.get("arguments"), f"{at} ({function['name']})")))
    return calls


def _check_records(traj: Trajectory) -> None:
    """Calls the model made that could not be parsed: LangChain keeps them as ``invalid_tool_calls``,
    which the OpenAI-format messages leave out, so the record is the only place they show."""
    for record in traj.tool_calls:
        if not isinstance(record.arguments, dict):
            detail = f" ({record.error})" if record.error else ""
            raise MalformedTrajectory(f"malformed tool call {record.name!r} (id {record.id or '?'}): arguments "
                                      f"{str(record.arguments)[:80]!r} are not a JSON object{detail}")


def _answer_pending(pending: dict[str, str], message: _Message, index: int) -> _Message:
    """Pair a tool message with the open call it answers, naming the tool from the call."""
    call_id = message.tool_call_id
    if not call_id or call_id not in pending:
        raise MalformedTrajectory(f"message {index} (tool) answers call {call_id!r}, which no earlier assistant "
                                  "message made or which was already answered")
    name = pending.pop(call_id)
    return message.model_copy(update={"name": message.name or name})


def _first_assistant(traj: Trajectory) -> int | None:
    return next((i for i, m in enumerate(traj.messages) if m.get("role") == "assistant"), None)


def _conversation(traj: Trajectory, edits: Edits) -> list[dict[str, Any]]:
    """The run's messages as the model saw them: its system prompt first (from the prompt record,
    when the messages do not start with one), and edited turns as ``edits`` says."""
    return _aligned(traj, edits)[0]


def _aligned(traj: Trajectory, edits: Edits) -> tuple[list[dict[str, Any]], list[tuple[str | None, list[int] | None]]]:
    """:func:`_conversation`, and per message the text and token ids the model sampled for it:
    None for the system prompt put in front, and for a turn a human edited when it is emitted as
    it ran (the model did not write that)."""
    messages = list(traj.messages)
    texts = list(traj.sampled) if len(traj.sampled) == len(messages) else [None] * len(messages)
    notes = list(traj.annotations) if len(traj.annotations) == len(messages) else [None] * len(messages)
    sampled: list[tuple[str | None, list[int] | None]] = [
        (text, (note or {}).get("token_ids")) for text, note in zip(texts, notes, strict=True)]
    first = _first_assistant(traj)
    prompt = traj.prompt_of(first) if first is not None else None
    offset = 0
    if prompt and prompt.system and (not messages or messages[0].get("role") != "system"):
        messages.insert(0, {"role": "system", "content": prompt.system})
        sampled.insert(0, (None, None))
        offset = 1
    for i, note in enumerate(traj.annotations):
        if not (note and (note.get("review") or {}).get("action") == "edit"):
            continue
        if edits != "model":
            sampled[i + offset] = (None, None)
            continue
        written = note.get("model_tool_calls") or []
        turn = {**messages[i + offset], "tool_calls": [
            {"id": c["id"], "type": "function", "function": {
                "name": c["name"], "arguments": json.dumps(c.get("args") or {}, ensure_ascii=False)}}
            for c in written]}
        end = i + offset  # what followed answered the edited calls: the example ends with the model's turn
        return messages[:end] + [turn], sampled[: end + 1]
    return messages, sampled


def training_example(traj: Trajectory, edits: Edits = "as-run") -> tuple[dict[str, Any],
                                                                         list[tuple[str | None, list[int] | None]]]:
    """An OpenAI-format example (checked, as :func:`to_openai` makes it) and, per message, the text
    and token ids the model sampled for it: what ``agentrt rft train`` fine-tunes on."""
    line = to_openai(traj, edits)
    sampled = _aligned(traj, edits)[1]
    if len(sampled) != len(line["messages"]):
        raise MalformedTrajectory("the sampled texts do not line up with the messages")
    return line, sampled


def _messages(traj: Trajectory, edits: Edits = "as-run") -> list[_Message]:
    """The conversation checked once for what both formats need, in a form both can render."""
    _check_records(traj)
    out: list[_Message] = []
    pending: dict[str, str] = {}  # open call id -> tool name
    for index, raw in enumerate(_conversation(traj, edits)):
        where = f"message {index}"
        role = raw.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise MalformedTrajectory(f"{where} has role {role!r}; fine-tuning formats take system, user, "
                                      "assistant and tool")
        if pending and role != "tool":
            raise MalformedTrajectory(f"{where} ({role}) comes before every tool call of the previous assistant "
                                      f"message was answered (open: {', '.join(pending)})")
        message = _Message(role=role, content=_text(raw.get("content"), f"{where} ({role})"),
                           tool_call_id=raw.get("tool_call_id"), name=raw.get("name") if role == "tool" else None)
        if role == "assistant":
            message.tool_calls = _calls(raw.get("tool_calls") or [], where)
            if not message.tool_calls and not message.content.strip():
                raise MalformedTrajectory(f"{where} (assistant) is empty: no text and no tool call")
            pending = {c.id: c.name for c in message.tool_calls}
        elif role == "tool":
            message = _answer_pending(pending, message, index)
        out.append(message)
    if not any(m.role == "assistant" for m in out):
        raise MalformedTrajectory("no assistant message: nothing to learn from")
    return out


def _tools(traj: Trajectory) -> list[dict[str, Any]]:
    """The tool schemas offered to the model (run metadata ``tools`` where a task set them, else
    the recorded prompt of its first turn), checked and reduced to the keys of an OpenAI function:
    name, description, parameters, strict."""
    raw = traj.metadata.get("tools")
    if raw is None:
        first = _first_assistant(traj)
        prompt = traj.prompt_of(first) if first is not None else None
        raw = prompt.tools if prompt else []
    if not isinstance(raw, list):
        raise MalformedTrajectory("metadata 'tools' is not a list of tool schemas")
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(raw):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type", "function") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not _NAME.match(function["name"]):
            raise MalformedTrajectory(f"metadata tools[{i}] is not an OpenAI function schema with a valid name "
                                      "({'type': 'function', 'function': {'name': ..., 'parameters': {...}}})")
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise MalformedTrajectory(f"metadata tools[{i}] ({function['name']}): parameters is not a JSON schema object")
        tools.append({"type": "function", "function": {k: v for k, v in function.items() if k in _FUNCTION_KEYS}})
    return tools


def _meta(traj: Trajectory) -> dict[str, Any]:
    difficulty = traj.metadata.get("difficulty")
    return {
        "task_type": traj.metadata.get("task_type"),
        "difficulty": float(difficulty) if isinstance(difficulty, (int, float)) and not isinstance(difficulty, bool) else None,
    }


def to_openai(traj: Trajectory, edits: Edits = "as-run") -> dict[str, Any]:
    """One line of an OpenAI fine-tuning file: exactly ``{"messages": [...]}`` plus ``"tools"`` when
    tools were offered. OpenAI refuses any other top-level key, so ``task_type`` and ``difficulty``
    are not in the line: ``export(..., sidecar=True)`` writes them to a parallel ``.meta.jsonl``.

    Raises :class:`MalformedTrajectory` when the run cannot be a valid example.
    """
    messages: list[dict[str, Any]] = []
    for m in _messages(traj, edits):
        if m.role == "tool":
            messages.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            line: dict[str, Any] = {"role": "assistant"}
            if m.content.strip():
                line["content"] = m.content
            line["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
                for c in m.tool_calls
            ]
            messages.append(line)
        else:
            messages.append({"role": m.role, "content": m.content})
    tools = _tools(traj)
    line = {"messages": messages, "tools": tools} if tools else {"messages": messages}
    problems = check_openai_line(line)  # what slipped past the conversion (a tool name OpenAI refuses...)
    if problems:
        raise MalformedTrajectory("not a valid OpenAI example: " + "; ".join(problems[:3]))
    return line


def _trl_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """Every tool with the same keys: Arrow stores a column as one struct type, and chat templates
    index ``description`` and ``parameters`` without checking they exist."""
    function = tool["function"]
    return {"type": "function", "function": {
        "name": function["name"],
        "description": function.get("description") or "",
        "parameters": function.get("parameters") or {"type": "object", "properties": {}},
    }}


def to_trl(traj: Trajectory, edits: Edits = "as-run") -> dict[str, Any]:
    """One row of a TRL / transformers conversational data set with tools.

    ``{"messages": [...], "tools": [...], "task_type": ..., "difficulty": ...}``: tool-call
    ``arguments`` are objects (chat templates render them with ``tojson``), tool messages carry the
    tool's ``name`` (how templates without call ids pair answers), ``tools`` is left out when none
    were offered (some templates print tool boilerplate for an empty list). Load the file with
    ``datasets.load_dataset("json", data_files=...)``: it keeps each row's arguments and schemas as
    they are, where ``Dataset.from_list`` would merge every row's argument names into one struct and
    fill the missing ones with ``None``.

    Raises :class:`MalformedTrajectory` when the run cannot be a valid example.
    """
    messages: list[dict[str, Any]] = []
    for m in _messages(traj, edits):
        if m.role == "tool":
            messages.append({"role": "tool", "name": m.name, "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            messages.append({"role": "assistant", "content": m.content, "tool_calls": [
                {"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls
            ]})
        else:
            messages.append({"role": m.role, "content": m.content})
    row: dict[str, Any] = {"messages": messages}
    tools = [_trl_tool(t) for t in _tools(traj)]
    if tools:
        row["tools"] = tools
    return {**row, **_meta(traj)}


# --- OpenAI's format rules ---------------------------------------------------------------------


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
        if not isinstance(function.get("name"), str) or not _NAME.match(function["name"]):
            problems.append(f"{at}: function name must match {_NAME.pattern}")
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
        problems += [f"{at}: unknown function key {k!r}" for k in function if k not in _FUNCTION_KEYS]
        name = function.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"{at}: function name must match {_NAME.pattern}")
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


class SkippedRun(BaseModel):
    run_id: str
    reason: str


class Tally(BaseModel):
    """Of the runs a filter matched, which were left out of training data and why."""

    matched: int = 0
    tool_errors: int = 0  # a tool call went wrong (see ExportFilter.tool_errors)
    edits: Edits = "as-run"  # how turns a human edited are emitted
    edited: int = 0  # runs with such turns (emitted as ``edits`` says, or left out for "skip")
    skipped: list[SkippedRun] = Field(default_factory=list)  # malformed: cannot be an example


def candidates(store: TrajectoryStore, flt: ExportFilter, tally: Tally) -> Iterator[Trajectory]:
    """The matching runs that may become training examples, counting in ``tally`` those left out:
    tool calls that went wrong (unless the filter keeps them), human edits when ``edits="skip"``."""
    for traj in select(store, flt):
        tally.matched += 1
        if not flt.tool_errors and not traj.tool_summary.clean:
            tally.tool_errors += 1
            continue
        if traj.human_edited:
            tally.edited += 1
            if tally.edits == "skip":
                continue
        yield traj


class ExportReport(Tally):
    """What an export wrote, and which runs it left out and why."""

    format: Format
    written: int
    path: Path | None = None  # None: written to a stream
    sidecar: Path | None = None

    def summary(self) -> str:
        """One line for a person: how many, where, how many skipped; an empty result says so."""
        where = f" to {self.path}" if self.path else ""
        unit = "trajectories" if self.format == "jsonl" else f"{self.format} examples"
        if self.written == 0:
            text = "no trajectories matched the filters; no file was written" if self.path else \
                "no trajectories matched the filters"
        else:
            text = f"exported {self.written} {unit}{where}"
        if self.skipped:
            text += f"; skipped {len(self.skipped)} malformed"
        if self.tool_errors:
            text += (f"; left out {self.tool_errors} whose tool calls went wrong (invalid, failed, timed out or "
                     "rejected, or no answer after a tool result; --tool-errors keeps them)")
        if self.edited:
            how = {"as-run": "as they ran (human edits included)", "model": "as the model wrote them",
                   "skip": "not at all"}[self.edits]
            text += f"; {self.edited} runs had turns a human edited, emitted {how}"
        if self.sidecar:
            text += f" (task_type and difficulty in {self.sidecar})"
        return text


def meta_path(out_path: str | Path) -> Path:
    """Where the sidecar of an OpenAI file goes: ``train.jsonl`` -> ``train.meta.jsonl``."""
    out = Path(out_path)
    return out.with_name(out.name[: -len(".jsonl")] + ".meta.jsonl") if out.name.endswith(".jsonl") else \
        out.with_name(out.name + ".meta.jsonl")


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_examples(store: TrajectoryStore, out: TextIO, fmt: Format = "openai", flt: ExportFilter | None = None,
                   meta: TextIO | None = None, edits: Edits = "as-run") -> ExportReport:
    """Write matching runs to ``out`` one per line (and, for ``openai``, their task type and
    difficulty to ``meta``, same order); malformed runs are skipped and reported, and runs whose
    tool calls went wrong are left out and counted unless the filter keeps them."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if meta is not None and fmt != "openai":
        raise ValueError("a sidecar is for the openai format only: the trl format carries task_type and "
                         "difficulty as columns, and jsonl keeps the whole trajectory")
    flt = flt or ExportFilter()
    report = ExportReport(format=fmt, written=0, edits=edits)
    if fmt == "jsonl":  # whole records: every matching run, as it is
        for traj in select(store, flt):
            out.write(traj.model_dump_json() + "\n")
            report.matched += 1
            report.written += 1
        return report
    for traj in candidates(store, flt, report):
        try:
            example = to_openai(traj, edits) if fmt == "openai" else to_trl(traj, edits)
        except MalformedTrajectory as exc:
            report.skipped.append(SkippedRun(run_id=traj.run_id, reason=str(exc)))
            continue
        out.write(_line(example))
        if meta is not None:
            meta.write(_line({"run_id": traj.run_id, **_meta(traj)}))
        report.written += 1
    return report


def _temp_beside(path: Path) -> tuple[TextIO, Path]:
    """A new file in the target's folder (so the final rename stays on one file system)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.chmod(name, 0o644)  # mkstemp makes it private; a data set is read by other tools and users
    return os.fdopen(fd, "w", encoding="utf-8"), Path(name)


def export(store: TrajectoryStore, out_path: str | Path, fmt: Format = "openai", flt: ExportFilter | None = None,
           sidecar: bool = False, edits: Edits = "as-run") -> ExportReport:
    """Export matching runs to ``out_path`` in ``fmt`` (``openai``, ``trl``, or ``jsonl``: whole
    trajectories).

    ``sidecar=True`` (openai only) also writes ``task_type`` and ``difficulty`` per example to
    :func:`meta_path` (``train.jsonl`` -> ``train.meta.jsonl``), one line per example in the same
    order, because an OpenAI line may hold nothing but ``messages`` and ``tools``. Both files are
    written to temporary files and renamed only when complete; when nothing matched, neither is
    written (an existing file is left as it was).
    """
    out = Path(out_path).expanduser()
    if out.is_dir():
        raise ValueError(f"{out} is a directory; give a file path such as {out / 'train.jsonl'}")
    if sidecar and fmt != "openai":
        raise ValueError("--sidecar is for --format openai: trl rows already carry task_type and difficulty")
    out.parent.mkdir(parents=True, exist_ok=True)
    side = meta_path(out) if sidecar else None
    temps: list[Path] = []
    try:
        with ExitStack() as stack:
            f, tmp = _temp_beside(out)
            stack.enter_context(f)
            temps.append(tmp)
            meta = None
            if side is not None:
                meta, meta_tmp = _temp_beside(side)
                stack.enter_context(meta)
                temps.append(meta_tmp)
            report = write_examples(store, f, fmt, flt, meta, edits)
        if report.written == 0:
            for tmp in temps:
                tmp.unlink(missing_ok=True)
            return report.model_copy(update={"path": out})
        if side is not None:
            os.replace(temps[1], side)  # the sidecar first: the main file appears last, complete with its pair
        os.replace(temps[0], out)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    return report.model_copy(update={"path": out, "sidecar": side})
