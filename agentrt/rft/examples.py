"""One recorded run as one training example, in OpenAI's fine-tuning format or TRL's conversational
format, with the system prompt and tools the model was offered and human edits as asked."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentrt.errors import AgentrtError
from agentrt.rft.openai_format import FUNCTION_KEYS, NAME, check_openai_line
from agentrt.rft.selection import Edits
from agentrt.trajectory import Trajectory


class MalformedTrajectory(AgentrtError, ValueError):
    """A trajectory that cannot become a training example; the message says why."""


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

    def render(self, fmt: Literal["openai", "trl"]) -> dict[str, Any]:
        """OpenAI: arguments as JSON strings, tool answers by call id, no empty content beside
        calls. TRL (chat templates): arguments as objects, tool answers by tool name."""
        if self.role == "tool":
            key, value = ("tool_call_id", self.tool_call_id) if fmt == "openai" else ("name", self.name)
            return {"role": "tool", key: value, "content": self.content}
        if self.role != "assistant" or not self.tool_calls:
            return {"role": self.role, "content": self.content}
        if fmt == "trl":
            return {"role": "assistant", "content": self.content, "tool_calls": [
                {"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in self.tool_calls]}
        line: dict[str, Any] = {"role": "assistant"}
        if self.content.strip():
            line["content"] = self.content
        line["tool_calls"] = [{"id": c.id, "type": "function", "function": {
            "name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}} for c in self.tool_calls]
        return line


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
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not NAME.match(function["name"]):
            raise MalformedTrajectory(f"metadata tools[{i}] is not an OpenAI function schema with a valid name "
                                      "({'type': 'function', 'function': {'name': ..., 'parameters': {...}}})")
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise MalformedTrajectory(f"metadata tools[{i}] ({function['name']}): parameters is not a JSON schema object")
        tools.append({"type": "function", "function": {k: v for k, v in function.items() if k in FUNCTION_KEYS}})
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
    messages = [m.render("openai") for m in _messages(traj, edits)]
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
    row: dict[str, Any] = {"messages": [m.render("trl") for m in _messages(traj, edits)]}
    tools = [_trl_tool(t) for t in _tools(traj)]
    if tools:
        row["tools"] = tools
    return {**row, **_meta(traj)}
