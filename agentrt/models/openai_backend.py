"""Any OpenAI-compatible server (OpenAI, vLLM, llama.cpp server, Ollama) through the `openai` client.

Retries with backoff on 429, 5xx and connection errors are the client's own (``max_retries``);
4xx errors are turned into a :class:`ModelError` that says what the server objected to. Servers
that do not parse tool calls natively (a plain vLLM or llama.cpp server) return the call as text:
we then run the same parser the local backends use, so the model behaves the same everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    convert_to_openai_messages,
)
from pydantic import PrivateAttr

from agentrt.models import credentials
from agentrt.models.base import AgentChatModel, ModelError, SamplingParams, usage
from agentrt.models.streaming import ToolTextStream, final_chunk
from agentrt.models.toolcall_parser import parse_tool_calls


class OpenAIChatModel(AgentChatModel):
    """A model behind an OpenAI-compatible ``/v1/chat/completions``."""

    model: str
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = 120.0
    max_retries: int = 4

    _client: openai.OpenAI = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)  # LangChain's own post-init (version metadata)
        # A local server needs no key, but the client refuses to start without one.
        key = self.api_key or ("not-needed" if self.base_url else None)
        try:
            self._client = openai.OpenAI(
                base_url=self.base_url, api_key=key, timeout=self.timeout_s, max_retries=self.max_retries
            )
        except openai.OpenAIError as exc:
            raise ModelError(
                f"{self.spec}: no API key. {credentials.missing_key_hint(self.base_url)} "
                f"The client said: {str(exc).rstrip('.')}."
            ) from exc

    def _request(self, messages: list[BaseMessage], tools: list[dict[str, Any]], params: SamplingParams) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [_wire(m) for m in messages],
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "n": params.n,
        }
        if params.seed is not None:
            request["seed"] = params.seed
        if params.stop:
            request["stop"] = params.stop
        if params.logprobs:
            request["logprobs"] = True
        if tools:
            request["tools"] = tools
        return request

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Client errors as :class:`ModelError`s, around the call and around reading a stream."""
        try:
            yield
        except openai.APIStatusError as exc:  # a 4xx, or a 429/5xx left after the client's own retries
            body = exc.body if isinstance(exc.body, dict) else {}
            detail = body.get("message") or exc.message
            status = exc.status_code
            retried = status >= 500 or status in (408, 409, 429)  # what the client retries
            what = f"failed after {self.max_retries} retries" if retried else "refused the request"
            hint = " " + credentials.missing_key_hint(self.base_url) if status == 401 else ""
            raise ModelError(f"{self.spec}: the server {what} (HTTP {status}): {detail}.{hint}") from exc
        except openai.APIConnectionError as exc:
            raise ModelError(
                f"{self.spec}: cannot reach {self.base_url or 'the OpenAI API'} after {self.max_retries} retries "
                f"({exc}). Is the server running and the URL right?"
            ) from exc
        except openai.APIError as exc:  # e.g. an error event in the middle of a stream
            raise ModelError(f"{self.spec}: the server reported an error: {exc.message}") from exc

    def _call(self, **request: Any) -> Any:
        with self._errors():
            return self._client.chat.completions.create(**request)

    def _chat(self, messages: list[BaseMessage], tools: list[dict[str, Any]], params: SamplingParams) -> list[AIMessage]:
        response = self._call(**self._request(messages, tools, params))
        names = [t["function"]["name"] for t in tools]
        counts = usage(response.usage.prompt_tokens, response.usage.completion_tokens) if response.usage else None
        messages = [_message(choice.message, choice.finish_reason, names, counts) for choice in response.choices]
        for message, choice in zip(messages, response.choices, strict=True):
            tokens = getattr(getattr(choice, "logprobs", None), "content", None)
            if params.logprobs and tokens:
                message.response_metadata["logprobs"] = [t.logprob for t in tokens]
        return messages

    def _chat_stream(
        self, messages: list[BaseMessage], tools: list[dict[str, Any]], params: SamplingParams
    ) -> Iterator[AIMessageChunk]:
        """Native tool-call deltas pass through as ``tool_call_chunks``. When tools are offered,
        text that may be a tool call written as text (a server without a tool parser) is held
        back, as the local backends do, and parsed at the end into one chunk of tool calls."""
        request = {**self._request(messages, tools, params), "stream": True, "stream_options": {"include_usage": True}}
        names = [t["function"]["name"] for t in tools]
        shown, native = ToolTextStream(tools_offered=bool(names)), False
        with self._errors():
            for event in self._call(**request):
                chunk = _chunk(event)
                native = native or bool(chunk.tool_call_chunks)
                if isinstance(chunk.content, str) and chunk.content:
                    chunk.content = shown.feed(chunk.content)
                yield chunk
        if not shown.text:
            return
        parsed = None if native or not names else parse_tool_calls(shown.text, names)
        if parsed and (parsed.tool_calls or parsed.invalid_tool_calls):
            yield final_chunk(shown.rest(parsed.content), parsed.tool_calls, parsed.invalid_tool_calls)
        elif unsent := shown.unsent():
            yield AIMessageChunk(content=unsent)


def _chunk(event: Any) -> AIMessageChunk:
    """One ``chat.completion.chunk`` as a LangChain chunk (the usage-only last one included)."""
    chunk = AIMessageChunk(content="")
    if event.choices:
        delta = event.choices[0].delta
        chunk = AIMessageChunk(
            content=delta.content or "",
            tool_call_chunks=[
                {
                    "name": c.function.name if c.function else None,
                    "args": c.function.arguments if c.function else None,
                    "id": c.id,
                    "index": c.index,
                    "type": "tool_call_chunk",
                }
                for c in delta.tool_calls or []
            ],
        )
        if event.choices[0].finish_reason:
            chunk.response_metadata["finish_reason"] = event.choices[0].finish_reason
    if event.usage:
        chunk.usage_metadata = usage(event.usage.prompt_tokens, event.usage.completion_tokens)  # type: ignore[assignment]
    return chunk


def _message(msg: Any, finish_reason: str | None, names: list[str], counts: dict[str, int] | None) -> AIMessage:
    calls, invalid = [], []
    for c in msg.tool_calls or []:
        try:
            args = json.loads(c.function.arguments or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
            calls.append({"name": c.function.name, "args": args, "id": c.id, "type": "tool_call"})
        except ValueError as exc:
            error = f"Could not parse the arguments of your {c.function.name} call as a JSON object: {exc}"
            invalid.append(
                {"name": c.function.name, "args": c.function.arguments, "id": c.id, "error": error, "type": "invalid_tool_call"}
            )
    content = msg.content or ""
    if not calls and not invalid and names and content:
        parsed = parse_tool_calls(content, names)
        content, calls, invalid = parsed.content, parsed.tool_calls, parsed.invalid_tool_calls
    return AIMessage(
        content=content,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=counts,
        response_metadata={"finish_reason": finish_reason},
    )


def _wire(message: BaseMessage) -> dict[str, Any]:
    """One message in the OpenAI format. LangChain's converter drops ``invalid_tool_calls``, but
    the tool runner answers them with error messages, and OpenAI rejects a ``tool`` message that
    answers no call of the assistant turn before it: so they go out as calls too (arguments
    that are not JSON as ``{}``; the error message says what was wrong)."""
    wire: dict[str, Any] = convert_to_openai_messages(message)  # type: ignore[assignment]
    bad = [c for c in getattr(message, "invalid_tool_calls", None) or [] if c.get("id")]
    for c in bad:
        function = {"name": c.get("name") or "unknown", "arguments": _args_text(c.get("args"))}
        wire.setdefault("tool_calls", []).append({"type": "function", "id": c["id"], "function": function})
    return wire


def _args_text(args: str | None) -> str:
    try:
        return args if args and isinstance(json.loads(args), dict) else "{}"
    except ValueError:
        return "{}"
