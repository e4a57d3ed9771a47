"""What a verifier judges and what it says: one sampled attempt (its tool calls and answer), and
the verdict (passed, score, reason). Shared by every verifier, and read from trajectories."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

MALFORMED = "__malformed__"


class Attempt(BaseModel):
    """What a verifier sees of one sampled trajectory."""

    tool_calls: list[dict[str, Any]] = Field(
        default_factory=list, description='the assistant\'s calls in order: {"name": str, "arguments": dict}')
    answer: str | None = Field(None, description="the final assistant text, if the trajectory ended with one")
    messages: list[dict[str, Any]] = Field(default_factory=list, description="the trajectory, OpenAI chat format")


class Verdict(BaseModel):
    passed: bool
    score: float = Field(..., ge=0.0, le=1.0)
    reason: str = ""

    @classmethod
    def ok(cls, reason: str = "ok", score: float = 1.0) -> Verdict:
        return cls(passed=True, score=score, reason=reason)

    @classmethod
    def fail(cls, reason: str, score: float = 0.0) -> Verdict:
        return cls(passed=False, score=score, reason=reason)


# --------------------------------------------------------------------------------------------
# Attempts from chat messages
# --------------------------------------------------------------------------------------------

def attempt_from_messages(messages: list[dict[str, Any]]) -> Attempt:
    """An :class:`Attempt` from OpenAI-format messages.

    Every assistant message's ``tool_calls`` count, in order, so pass the model's part of the
    conversation (or a prompt without assistant turns). Arguments may be JSON strings or dicts;
    text that is not a JSON object becomes ``{"__malformed__": text}`` so the verifier fails it
    with a reason. The answer is the content of the last assistant message when that message
    makes no call: a trajectory cut off after a call has no final answer, and an earlier
    "let me look that up" is not one.
    """
    calls: list[dict[str, Any]] = []
    last_assistant: dict[str, Any] | None = None
    for message in messages:
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        last_assistant = message
        for raw in message.get("tool_calls") or []:
            calls.append(_call_from_openai(raw))
    answer = None
    if last_assistant is not None and not last_assistant.get("tool_calls"):
        answer = _content_text(last_assistant.get("content"))
    return Attempt(tool_calls=calls, answer=answer, messages=list(messages))


def _call_from_openai(raw: Any) -> dict[str, Any]:
    """``{"type": "function", "function": {"name", "arguments"}}`` (or the flat form) -> a call."""
    if not isinstance(raw, dict):
        return {"name": None, "arguments": {MALFORMED: repr(raw)}}
    function = raw.get("function") if isinstance(raw.get("function"), dict) else raw
    return {"name": function.get("name"), "arguments": parse_arguments(function.get("arguments"))}


def parse_arguments(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments as a dict; anything that is not a JSON object is kept as malformed text."""
    if arguments is None:
        return {}
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str):
        if not arguments.strip():
            return {}
        try:
            parsed = json.loads(arguments)
        except json.JSONDecodeError:
            return {MALFORMED: arguments}
        return parsed if isinstance(parsed, dict) else {MALFORMED: arguments}
    return {MALFORMED: repr(arguments)}


def _content_text(content: Any) -> str | None:
    """Message content as text; OpenAI content parts are joined."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
