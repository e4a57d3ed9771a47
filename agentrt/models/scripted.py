"""A model that replays given responses: deterministic, zero-latency, for tests and benchmarks only."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import PrivateAttr

from agentrt.models.base import AgentChatModel, ModelError, SamplingParams, usage

Script = Sequence[AIMessage | str] | Callable[[list[BaseMessage]], AIMessage | str]


def call(name: str, **args: Any) -> AIMessage:
    """An assistant turn that calls one tool: the usual line of a script."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:24]}", "type": "tool_call"}])


def echo(messages: list[BaseMessage]) -> AIMessage:
    """The reply of ``scripted:echo``: the last user message, so a load test measures the
    runtime, not a model."""
    last = next((m for m in reversed(messages) if m.type == "human"), None)
    return AIMessage(content=f"echo: {last.content if last else ''}")


class ScriptedChatModel(AgentChatModel):
    """Answers with the next scripted response (or what a function of the messages returns).

    ``cycle=True`` starts the script again when it runs out, which a benchmark driving many runs
    through one model needs; otherwise running out is an error, which a test needs.
    """

    spec: str = "scripted"
    script: Any
    cycle: bool = False

    _next: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def model_post_init(self, context: Any) -> None:
        if not callable(self.script):
            items = list(self.script)
            self._next = itertools.cycle(items) if self.cycle else iter(items)

    def _one(self, messages: list[BaseMessage]) -> AIMessage:
        if callable(self.script):
            reply = self.script(messages)
        else:
            with self._lock:
                reply = next(self._next, None)
            if reply is None:
                raise ModelError("the scripted model ran out of responses")
        message = AIMessage(content=reply) if isinstance(reply, str) else reply.model_copy(deep=True)
        message.usage_metadata = usage(sum(len(str(m.content)) for m in messages) // 4, len(str(message.content)) // 4)
        message.response_metadata = {"finish_reason": "tool_calls" if message.tool_calls else "stop",
                                     **message.response_metadata}
        return message

    def _chat(self, messages: list[BaseMessage], tools: list[dict[str, Any]], params: SamplingParams) -> list[AIMessage]:
        return [self._one(messages) for _ in range(params.n)]
