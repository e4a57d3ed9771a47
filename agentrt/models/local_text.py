"""What the local backends share: prompt rendering, tool-call parsing and tool-aware streaming.

Local models produce raw text. Both local backends (transformers and llama.cpp) render the prompt
with the model's own chat template (with ``tools=``) through the same Hugging Face tokenizer, so
they see identical token ids, and both turn the text into an ``AIMessage`` with the same parser.
A backend only supplies :meth:`LocalTextModel._decode` and :meth:`LocalTextModel._decode_stream`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    convert_to_openai_messages,
)
from pydantic import BaseModel, PrivateAttr

from agentrt.models.base import AgentChatModel, ModelError, SamplingParams, usage
from agentrt.models.streaming import ToolTextStream, final_chunk
from agentrt.models.toolcall_parser import parse_tool_calls


class Decoded(BaseModel):
    """One sampled continuation."""

    text: str
    completion_tokens: int
    finish_reason: str  # "stop" or "length"
    token_ids: list[int] | None = None  # what was sampled, as the model's tokens (where the backend says)
    logprobs: list[float] | None = None  # per token of ``token_ids``, when asked for

class LocalTextModel(AgentChatModel):
    """A chat model over a local causal LM whose tool calls are written as text."""

    tool_result_hint: bool = True
    """Restate each tool call beside its result, and after the newest results remind the model
    that it may answer now. Small models (Qwen2.5-0.5B) otherwise call the tool again on its
    own result instead of answering; the stored messages keep the raw result."""

    _tokenizer: Any = PrivateAttr(default=None)
    # One generation at a time per loaded model: the weights and (for llama.cpp) the KV cache
    # are shared state, and two decodes on 2 cores would only slow each other down.
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # -- backend hooks ------------------------------------------------------------------------
    def _decode(self, prompt_ids: list[int], params: SamplingParams) -> list[Decoded]:
        raise NotImplementedError

    def _decode_stream(self, prompt_ids: list[int], params: SamplingParams) -> Iterator[str | Decoded]:
        """Yield text deltas, then one final :class:`Decoded` with the whole text."""
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    def prompt_ids(self, messages: list[BaseMessage], tools: list[dict[str, Any]]) -> list[int]:
        chat = template_chat(convert_to_openai_messages(messages), hints=self.tool_result_hint)
        try:
            return render_ids(self._tokenizer, chat, tools, generation_prompt=True)
        except Exception as exc:
            raise ModelError(f"{self.spec}: the chat template could not render these messages: {exc}") from exc

    def _to_message(self, decoded: Decoded, prompt_tokens: int, tools: list[dict[str, Any]]) -> AIMessage:
        names = [t["function"]["name"] for t in tools] if tools else None
        parsed = parse_tool_calls(decoded.text, names) if tools else None
        meta: dict[str, Any] = {"finish_reason": decoded.finish_reason, "raw_text": decoded.text}
        if decoded.token_ids is not None:  # training reuses them instead of re-tokenizing the text
            meta["token_ids"] = decoded.token_ids
        if decoded.logprobs is not None:  # the model's confidence, for critics
            meta["logprobs"] = decoded.logprobs
        return AIMessage(
            content=parsed.content if parsed else decoded.text.strip(),
            tool_calls=parsed.tool_calls if parsed else [],
            invalid_tool_calls=parsed.invalid_tool_calls if parsed else [],
            usage_metadata=usage(prompt_tokens, decoded.completion_tokens),
            response_metadata=meta,
        )

    def _chat(self, messages: list[BaseMessage], tools: list[dict[str, Any]], params: SamplingParams) -> list[AIMessage]:
        ids = self.prompt_ids(messages, tools)
        with self._lock:
            outputs = self._decode(ids, params)
        return [self._to_message(d, len(ids), tools) for d in outputs]

    def _chat_stream(
        self, messages: list[BaseMessage], tools: list[dict[str, Any]], params: SamplingParams
    ) -> Iterator[AIMessageChunk]:
        """Stream plain text as it comes; a tool call arrives parsed, in the final chunk."""
        ids = self.prompt_ids(messages, tools)
        shown = ToolTextStream(tools_offered=bool(tools))
        with self._lock:
            for piece in self._decode_stream(ids, params):
                if isinstance(piece, Decoded):
                    final = piece
                    break
                if delta := shown.feed(piece):
                    yield AIMessageChunk(content=delta)
            else:  # pragma: no cover - a backend must end with a Decoded
                raise ModelError(f"{self.spec}: the decoder ended without a result")
        message = self._to_message(final, len(ids), tools)
        yield final_chunk(
            shown.rest(str(message.content)), message.tool_calls, message.invalid_tool_calls,
            usage_metadata=message.usage_metadata, response_metadata=message.response_metadata,
        )


def template_chat(messages: list[dict[str, Any]], *, hints: bool) -> list[dict[str, Any]]:
    """OpenAI-format messages as the chat template is given them at inference. Fine-tuning
    (``agentrt.rft.sft``) renders its prompts through this too, so it trains on the very prompts
    the model is later asked."""
    chat = [_for_template(m) for m in messages]
    return _with_tool_hints(chat) if hints else chat


def render_ids(tokenizer: Any, chat: list[dict[str, Any]], tools: list[dict[str, Any]], *,
               generation_prompt: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(chat, tools=tools or None, add_generation_prompt=generation_prompt,
                                        tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # BatchEncoding in newer transformers
        ids = ids["input_ids"]
    return list(ids)


ANSWER_HINT = "If this answers the question, reply to the user now in plain text, without a tool call."


def _with_tool_hints(chat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    calls: dict[str, str] = {}
    for m in chat:
        for c in m.get("tool_calls") or []:
            args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in c["function"]["arguments"].items())
            calls[c.get("id", "")] = f"{c['function']['name']}({args})"
    out = []
    last = len(chat) - 1
    for i, m in enumerate(chat):
        if m.get("role") == "tool" and m.get("tool_call_id") in calls:
            content = f"{calls[m['tool_call_id']]} returned: {m.get('content', '')}"
            if i == last:
                content += "\n" + ANSWER_HINT
            m = {**m, "content": content}
        out.append(m)
    return out


def _for_template(message: dict[str, Any]) -> dict[str, Any]:
    """Chat templates (Qwen's among them) expect tool-call arguments as objects, while the
    OpenAI wire format carries them as JSON strings."""
    calls = message.get("tool_calls")
    if not calls:
        return message
    fixed = []
    for call in calls:
        fn = dict(call["function"])
        if isinstance(fn.get("arguments"), str):
            try:
                fn["arguments"] = json.loads(fn["arguments"] or "{}")
            except json.JSONDecodeError:
                fn["arguments"] = {}
        fixed.append({**call, "function": fn})
    return {**message, "tool_calls": fixed}
