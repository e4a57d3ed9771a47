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
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import BaseModel, Field, field_validator

from agentrt.errors import AgentrtError
from agentrt.rft.openai_format import FUNCTION_KEYS, NAME, check_openai_line
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
