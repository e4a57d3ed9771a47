"""The trajectory record: a versioned, self-contained description of one agent run.

A trajectory is what we keep of a run once it is over (or once the process died): the
conversation in OpenAI chat format, every tool call with its result, error and latency, the
order and timing of graph steps, token usage, and slots (critic scores, reward) that later
features fill in. It is the unit of export for evaluation and training data, so the schema is
versioned: a consumer reading JSONL checks ``schema_version`` instead of guessing.

This module does no I/O. The store (``agentrt.trajectory_store``) keeps runs as a header row
plus an append-only list of events, because appending is what survives a crash mid-run;
``assemble`` turns those raw pieces back into a ``Trajectory``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
    convert_to_openai_messages,
    messages_from_dict,
)
from pydantic import BaseModel, Field

SCHEMA_VERSION = 2
"""Bump when a stored or exported field changes meaning; old readers refuse newer stores.
2: runs record their process, and feedback has its own table (a version-1 store is migrated)."""

INPUT_NODE = "__input__"
"""Node name of the event the runner writes first: the run's input messages."""

RESUME_NODE = "__resume__"
"""Node name of the event a resumed run starts with: the value it was resumed with (a review)."""

PROMPT_NODE = "__prompt__"
"""Node name of the events that record what a model call was offered: its system prompt and
tools, once per distinct pair in a run (each assistant message names its pair by ``prompt_id``)."""

RECORD_NODES = (INPUT_NODE, RESUME_NODE, PROMPT_NODE)  # written by the runner, not graph steps

TOOL_INVALID = ("invalid arguments", "unknown tool", "malformed tool call")
TOOL_TIMEOUT = "timeout"
TOOL_REJECTED = "rejected by reviewer"

Status = Literal["running", "completed", "failed", "interrupted"]
STATUSES: tuple[str, ...] = ("running", "completed", "failed", "interrupted")
UNANSWERED = "no result (run ended)"
SUMMARY_ANSWER_CHARS = 200


class ToolCallRecord(BaseModel):
    """One tool call the model made, paired with the tool's answer (if it ever came)."""

    id: str
    name: str
    arguments: dict[str, Any] | str  # a str when the model's call could not be parsed
    result: str | None
    error: str | None
    latency_s: float | None


class NodeEvent(BaseModel):
    """One graph step: which node ran, when, and which state keys it wrote."""

    seq: int
    node: str
    at: datetime
    elapsed_s: float  # since the run started
    keys: list[str]


class TokenUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class PromptRecord(BaseModel):
    """What a model call was offered besides the conversation: the system prompt and the tools."""

    id: str
    system: str | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)


def prompt_digest(messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]]) -> tuple[str | None, str]:
    """(system prompt, id) of a model call: the leading system messages' text and a short hash
    of it with the tool schemas, the same in the model (which stamps it on its reply) and in the
    recorder (which stores the prompt once per id)."""
    parts = []
    for m in messages:
        if not isinstance(m, SystemMessage):
            break
        parts.append(m.content if isinstance(m.content, str) else json.dumps(m.content, sort_keys=True))
    system = "\n\n".join(parts) if parts else None
    blob = json.dumps({"system": system, "tools": list(tools)}, sort_keys=True, default=str)
    return system, hashlib.sha256(blob.encode()).hexdigest()[:16]


class ToolSummary(BaseModel):
    """How a run's tool calls went: what an export checks before calling a run a success."""

    calls: int = 0
    invalid: int = 0  # malformed, unknown tool, or arguments that do not fit the schema
    failed: int = 0  # the tool raised
    timed_out: int = 0
    rejected: int = 0  # a human reviewer refused the call
    answered_after_success: bool | None = None  # the last assistant text came after a successful tool result

    @property
    def clean(self) -> bool:
        """No call went wrong, and when tools were used the answer followed a result."""
        bad = self.invalid + self.failed + self.timed_out + self.rejected
        return bad == 0 and (self.calls == 0 or bool(self.answered_after_success))


class Feedback(BaseModel):
    """A judgement of a whole run by a person or a program, e.g. ``correct: 1`` or ``thumbs: -1``."""

    key: str
    score: float
    comment: str | None = None
    source: str | None = None  # who gave it: an API key id, "cli", ...
    at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


class CriticScore(BaseModel):
    """A judgement of part of a run (``target``, e.g. "round-2") by a named critic."""

    critic: str
    target: str
    score: float
    accepted: bool | None = None
    at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


class Trajectory(BaseModel):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    thread_id: str | None
    graph: str
    model: str | None
    input: str
    status: Status
    messages: list[dict[str, Any]]  # OpenAI chat format, input first
    # per message, the raw text a local model sampled for it (tool calls still unparsed), else None:
    # what fine-tuning trains on, and what to read when a call was malformed
    sampled: list[str | None] = Field(default_factory=list)
    # per message, what is known about it besides its text (None where nothing): the prompt it was
    # sampled under (``prompt_id``), the sampled tokens and their log-probabilities where the
    # backend gives them (``token_ids``, ``logprobs``), and for a turn a human reviewed, the review
    # and the calls the model itself had written (``review``, ``model_tool_calls``)
    annotations: list[dict[str, Any] | None] = Field(default_factory=list)
    prompts: list[PromptRecord] = Field(default_factory=list)
    tool_calls: list[ToolCallRecord]
    tool_summary: ToolSummary = Field(default_factory=ToolSummary)
    events: list[NodeEvent]
    final_answer: str | None
    stop_reason: str | None
    error: str | None
    usage: TokenUsage
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    critic_scores: list[CriticScore] = Field(default_factory=list)
    reward: float | None = None
    feedback: list[Feedback] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    def prompt_of(self, index: int) -> PromptRecord | None:
        """The prompt the message at ``index`` was sampled under; for other messages, or a model
        that does not stamp its replies, the run's only prompt if it had just one."""
        by_id = {p.id: p for p in self.prompts}
        note = self.annotations[index] if index < len(self.annotations) else None
        if note and note.get("prompt_id") in by_id:
            return by_id[note["prompt_id"]]
        return self.prompts[0] if len(self.prompts) == 1 else None

    def latest_feedback(self, key: str) -> Feedback | None:
        found = [f for f in self.feedback if f.key == key]
        return max(found, key=lambda f: f.at) if found else None

    @property
    def human_edited(self) -> bool:
        return any(n and (n.get("review") or {}).get("action") == "edit" for n in self.annotations)


class RunSummary(BaseModel):
    """A run as listed: the header only, cheap to read for many runs at once."""

    run_id: str
    thread_id: str | None
    graph: str
    model: str | None
    status: Status
    started_at: datetime
    duration_s: float | None
    final_answer: str | None  # at most SUMMARY_ANSWER_CHARS characters
    stop_reason: str | None
    reward: float | None


def utc(ts: float) -> datetime:
    """Unix seconds -> aware UTC datetime (the store keeps floats: compact and sortable)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _duration(header: dict[str, Any]) -> float | None:
    ended = header.get("ended_at")
    return None if ended is None else max(0.0, float(ended) - float(header["started_at"]))


def _metadata(raw: Any) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def summarize(header: dict[str, Any]) -> RunSummary:
    """A ``RunSummary`` from a stored run row."""
    answer = header.get("final_answer")
    if answer is not None and len(answer) > SUMMARY_ANSWER_CHARS:
        answer = answer[: SUMMARY_ANSWER_CHARS - 1] + "…"
    return RunSummary(
        run_id=header["run_id"], thread_id=header.get("thread_id"), graph=header["graph"],
        model=header.get("model"), status=header["status"], started_at=utc(header["started_at"]),
        duration_s=_duration(header), final_answer=answer, stop_reason=header.get("stop_reason"),
        reward=header.get("reward"),
    )


def _text(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, default=str)


def _collect_messages(events: list[tuple[int, float, str, dict[str, Any]]]) -> list[BaseMessage]:
    """Every message of every event in seq order, one per id.

    Nodes may re-emit a message with the same id to replace it (LangGraph's ``add_messages``
    semantics), so a repeated id keeps the position of its first appearance and the content of
    its last. ``RemoveMessage``s are skipped: they trim the model's context, but the record of
    what happened should keep everything.
    """
    by_key: dict[Any, BaseMessage] = {}
    for seq, _at, node, payload in sorted(events, key=lambda e: e[0]):
        raw = payload.get("messages") if isinstance(payload, dict) else None
        if not raw:
            continue
        if isinstance(raw, dict):
            raw = [raw]
        try:
            msgs = messages_from_dict(raw)
        except Exception as exc:  # noqa: BLE001 - name the bad event instead of a bare traceback
            raise ValueError(f"event {seq} ({node}) holds messages that cannot be read: {exc}") from exc
        for i, msg in enumerate(msgs):
            if isinstance(msg, RemoveMessage):
                continue
            by_key[msg.id if msg.id else ("anon", seq, i)] = msg
    return list(by_key.values())


def _tool_records(messages: list[BaseMessage]) -> list[ToolCallRecord]:
    """Pair each call the model made with the ToolMessage that answered it."""
    answers = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage) and m.tool_call_id}
    records: list[ToolCallRecord] = []
    for msg in messages:
        if not isinstance(msg, AIMessage):
            continue
        for call in msg.tool_calls:
            answer = answers.get(call.get("id") or "")
            if answer is None:
                records.append(ToolCallRecord(id=call.get("id") or "", name=call["name"],
                                              arguments=dict(call.get("args") or {}), result=None,
                                              error=UNANSWERED, latency_s=None))
                continue
            meta = answer.response_metadata or {}
            error = meta.get("error") or ("tool error" if answer.status == "error" else None)
            records.append(ToolCallRecord(id=call.get("id") or "", name=call["name"],
                                          arguments=dict(call.get("args") or {}), result=_text(answer.content),
                                          error=error, latency_s=meta.get("latency_s")))
        for bad in msg.invalid_tool_calls:
            answer = answers.get(bad.get("id") or "")
            meta = (answer.response_metadata or {}) if answer is not None else {}
            records.append(ToolCallRecord(
                id=bad.get("id") or "", name=bad.get("name") or "unknown", arguments=bad.get("args") or "",
                result=None if answer is None else _text(answer.content),
                error=bad.get("error") or meta.get("error") or "malformed tool call",
                latency_s=meta.get("latency_s"),
            ))
    return records


def _usage(messages: list[BaseMessage]) -> TokenUsage:
    usage = TokenUsage()
    for msg in messages:
        meta = getattr(msg, "usage_metadata", None) if isinstance(msg, AIMessage) else None
        if meta:
            usage.input_tokens += int(meta.get("input_tokens") or 0)
            usage.output_tokens += int(meta.get("output_tokens") or 0)
            usage.total_tokens += int(meta.get("total_tokens") or 0)
    return usage


def _annotations(messages: list[BaseMessage]) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = []
    for m in messages:
        meta = m.response_metadata or {}
        note = {k: meta[k] for k in ("prompt_id", "review", "model_tool_calls", "token_ids", "logprobs")
                if meta.get(k) is not None}
        out.append(note or None)
    return out


def _tool_summary(messages: list[BaseMessage], records: list[ToolCallRecord]) -> ToolSummary:
    summary = ToolSummary(calls=len(records))
    for r in records:
        if r.error is None:
            continue
        if r.error in TOOL_INVALID:
            summary.invalid += 1
        elif r.error == TOOL_TIMEOUT:
            summary.timed_out += 1
        elif r.error == TOOL_REJECTED:
            summary.rejected += 1
        elif r.error != UNANSWERED:
            summary.failed += 1
    if records:
        success_seen, answered = False, False
        for m in messages:
            if isinstance(m, ToolMessage):
                success_seen = success_seen or m.status != "error"
            elif isinstance(m, AIMessage) and not m.tool_calls and not m.invalid_tool_calls and str(m.content).strip():
                answered = success_seen
        summary.answered_after_success = answered
    return summary


_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def openai_messages(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """The messages in OpenAI chat format, one for one. A message LangChain cannot convert (a
    client may send content parts of any shape, and the graph keeps them) becomes its role and its
    content as text: the record stays readable instead of failing on every read."""
    try:
        return convert_to_openai_messages(messages) if messages else []
    except Exception:  # noqa: BLE001 - LangChain raises KeyError, TypeError, ValueError... on odd content
        out = []
        for m in messages:
            try:
                out.append(convert_to_openai_messages(m))
            except Exception:  # noqa: BLE001 - as above
                out.append({"role": _ROLES.get(m.type, m.type), "content": _text(m.content)})
        return out


def sampled_texts(messages: list[BaseMessage]) -> list[str | None]:
    """Per message, the raw text a local model sampled for it (``response_metadata["raw_text"]``)."""
    return [m.response_metadata.get("raw_text") if isinstance(m, AIMessage) else None for m in messages]


def assemble(header: dict[str, Any], events: list[tuple[int, float, str, dict[str, Any]]],
             scores: list[CriticScore], feedback: Sequence[Feedback] = ()) -> Trajectory:
    """Build a ``Trajectory`` from a stored run row and its events ``(seq, at, node, payload)``.

    ``header`` holds the ``runs`` columns (timestamps as unix floats, ``metadata`` as JSON text or
    a dict). Raises ``ValueError`` naming the event when a payload's messages cannot be read.
    """
    messages = _collect_messages(events)
    started = float(header["started_at"])
    node_events = [
        NodeEvent(seq=seq, node=node, at=utc(at), elapsed_s=max(0.0, at - started),
                  keys=list(payload) if isinstance(payload, dict) else [])
        for seq, at, node, payload in sorted(events, key=lambda e: e[0]) if node not in RECORD_NODES
    ]
    prompts = [PromptRecord.model_validate(p) for _seq, _at, node, p in sorted(events, key=lambda e: e[0])
               if node == PROMPT_NODE]
    records = _tool_records(messages)
    ended = header.get("ended_at")
    return Trajectory(
        run_id=header["run_id"], thread_id=header.get("thread_id"), graph=header["graph"],
        model=header.get("model"), input=header.get("input") or "", status=header["status"],
        messages=openai_messages(messages),
        sampled=sampled_texts(messages), annotations=_annotations(messages), prompts=prompts,
        tool_calls=records, tool_summary=_tool_summary(messages, records), events=node_events,
        final_answer=header.get("final_answer"), stop_reason=header.get("stop_reason"),
        error=header.get("error"), usage=_usage(messages), started_at=utc(started),
        ended_at=None if ended is None else utc(ended), duration_s=_duration(header),
        critic_scores=list(scores), reward=header.get("reward"), feedback=list(feedback),
        metadata=_metadata(header.get("metadata")),
    )
