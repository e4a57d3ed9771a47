"""Streaming text that may turn into a tool call.

Models that write tool calls as text (local models, OpenAI-compatible servers without a tool
parser) stream plain answers token by token, but a half-written JSON call is useless to show.
:class:`ToolTextStream` releases text until it could be the start of a call, then holds the rest
until decoding ends; :func:`final_chunk` sends the parsed calls as one last chunk.

LangChain merges stream chunks into the final message and, while doing so, re-parses every
tool-call chunk: an *invalid* call would come out as a valid call with ``{}`` arguments and its
error text lost. So invalid calls travel in ``response_metadata`` and
:func:`restore_invalid_calls` puts them back on the merged message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk

from agentrt.models.toolcall_parser import has_tool_call_start

_MARKERS = ("<tool_call>", "```")
_INVALID_KEY = "agentrt_invalid_tool_calls"


class ToolTextStream:
    """Decides, piece by piece, how much of the streamed text can be shown now."""

    def __init__(self, tools_offered: bool) -> None:
        self.text, self.sent, self.holding = "", "", False
        self.tools_offered = tools_offered

    def feed(self, piece: str) -> str:
        """Add ``piece``; return the new text that is safe to show (maybe empty)."""
        self.text += piece
        if not self.tools_offered:  # nothing can be a tool call: show everything at once
            self.sent += piece
            return piece
        if self.holding:
            return ""
        if has_tool_call_start(self.text):
            self.holding = True
            return ""
        safe = _releasable(self.text.lstrip())
        if len(safe) <= len(self.sent) or not safe.startswith(self.sent):
            return ""
        delta, self.sent = safe[len(self.sent) :], safe
        return delta

    def unsent(self) -> str:
        """The raw text not shown yet (when it turned out not to be a tool call)."""
        text = self.text if not self.tools_offered else self.text.lstrip()
        return text[len(self.sent) :] if text.startswith(self.sent) else ""

    def rest(self, final_content: str) -> str:
        """What of the final (parsed) content has not been shown yet."""
        return final_content[len(self.sent) :] if final_content.startswith(self.sent) else ""


def final_chunk(
    content: str,
    tool_calls: Sequence[dict[str, Any]] = (),
    invalid_tool_calls: Sequence[dict[str, Any]] = (),
    **fields: Any,
) -> AIMessageChunk:
    """The last chunk of a stream: remaining text, the parsed tool calls, usage and metadata."""
    meta = dict(fields.pop("response_metadata", None) or {})
    if invalid_tool_calls:
        meta[_INVALID_KEY] = list(invalid_tool_calls)
    return AIMessageChunk(
        content=content,
        tool_call_chunks=[
            {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i, "type": "tool_call_chunk"}
            for i, c in enumerate(tool_calls)
        ],
        response_metadata=meta,
        **fields,
    )


def restore_invalid_calls(message: Any) -> Any:
    """Undo LangChain's re-parsing of invalid calls on a message merged from stream chunks."""
    if not isinstance(message, AIMessage):
        return message
    invalid = message.response_metadata.pop(_INVALID_KEY, None)
    if invalid:
        ids = {c.get("id") for c in invalid}
        message.tool_calls = [c for c in message.tool_calls if c.get("id") not in ids]
        message.invalid_tool_calls = [c for c in message.invalid_tool_calls if c.get("id") not in ids] + invalid
    return message


def _releasable(text: str) -> str:
    """``text`` without trailing whitespace (it may be stripped later) and without a suffix that
    could still grow into a tool-call marker."""
    text = text.rstrip()
    for marker in _MARKERS:
        for k in range(min(len(marker) - 1, len(text)), 0, -1):
            if text.endswith(marker[:k]):
                return text[:-k].rstrip()
    return text
