"""The one chat-model interface every agentrt graph uses.

Every backend is a LangChain ``BaseChatModel``: messages in, an ``AIMessage`` out (text and/or
tool calls), so LangGraph's ``messages`` stream mode, its prebuilt nodes and any LangChain code
work with agentrt models unchanged. What agentrt fixes on top:

- sampling parameters in one typed object (:class:`SamplingParams`), overridable per call;
- token counts in ``usage_metadata`` and wall-clock latency in ``response_metadata``;
- ``n`` samples per call (``model.sample(messages, n)``) for critics, SIM-RAG and RFT;
- tool calls the model could not express correctly arrive as ``invalid_tool_calls`` with a
  readable error, which the tool runner sends back to the model instead of crashing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from pydantic import BaseModel, ConfigDict, Field

from agentrt.errors import AgentrtError
from agentrt.models.streaming import final_chunk, restore_invalid_calls
from agentrt.tool import openai_schemas
from agentrt.trajectory import prompt_digest


class SamplingParams(BaseModel):
    """How to sample. Greedy by default: agents should be reproducible unless asked otherwise."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(512, ge=1)
    seed: int | None = None
    n: int = Field(1, ge=1)
    stop: list[str] = Field(default_factory=list)
    logprobs: bool = Field(False, description="also record each sampled token's log-probability, where the backend can")

    def merged(self, overrides: dict[str, Any]) -> SamplingParams:
        """These params with per-call overrides (unknown keys are ignored: they belong to
        LangChain, e.g. ``tools``)."""
        known = {k: v for k, v in overrides.items() if k in type(self).model_fields and v is not None}
        return self.model_copy(update=known) if known else self


class ModelError(AgentrtError, RuntimeError):
    """A model could not be loaded or called; the message says what to do about it."""


class AgentChatModel(BaseChatModel):
    """Base of every agentrt backend.

    Subclasses implement :meth:`_chat` (all ``n`` samples at once) and may implement
    :meth:`_chat_stream` (one sample, token by token). Tools are passed as OpenAI-format
    schemas, the one format every backend understands.
    """

    spec: str = Field(description="The model spec this model was loaded from.")
    params: SamplingParams = Field(default_factory=SamplingParams)

    @property
    def _llm_type(self) -> str:
        return f"agentrt-{type(self).__name__}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"spec": self.spec, **self.params.model_dump()}

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, BaseMessage]:
        return self.bind(tools=openai_schemas(tools), **kwargs)

    # -- what a backend implements -------------------------------------------------------
    def _chat(
        self, messages: list[BaseMessage], tools: list[dict[str, Any]], params: SamplingParams
    ) -> list[AIMessage]:
        raise NotImplementedError

    def _chat_stream(
        self, messages: list[BaseMessage], tools: list[dict[str, Any]], params: SamplingParams
    ) -> Iterator[AIMessageChunk]:
        """Default: no token streaming, the whole answer as one chunk."""
        (message,) = self._chat(messages, tools, params.model_copy(update={"n": 1}))
        yield final_chunk(
            str(message.content), message.tool_calls, message.invalid_tool_calls,
            usage_metadata=message.usage_metadata, response_metadata=message.response_metadata,
        )

    # -- LangChain plumbing ---------------------------------------------------------------
    def invoke(self, input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any) -> AIMessage:
        return restore_invalid_calls(super().invoke(input, config, stop=stop, **kwargs))

    async def ainvoke(self, input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any) -> AIMessage:
        return restore_invalid_calls(await super().ainvoke(input, config, stop=stop, **kwargs))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        params = self.params.merged({**kwargs, "stop": stop})
        tools = kwargs.get("tools") or []
        started = time.perf_counter()
        outputs = self._chat(messages, tools, params)
        latency = time.perf_counter() - started
        prompt_id = prompt_digest(messages, tools)[1]  # the trajectory keeps that prompt once, under this id
        for message in outputs:
            message.response_metadata.setdefault("latency_s", latency)
            message.response_metadata.setdefault("model", self.spec)
            message.response_metadata.setdefault("prompt_id", prompt_id)
        return ChatResult(generations=[ChatGeneration(message=m) for m in outputs])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        params = self.params.merged({**kwargs, "stop": stop}).model_copy(update={"n": 1})
        tools = kwargs.get("tools") or []
        started = time.perf_counter()
        for chunk in self._chat_stream(messages, tools, params):
            if chunk.response_metadata.get("finish_reason"):
                chunk.response_metadata.setdefault("latency_s", time.perf_counter() - started)
                chunk.response_metadata.setdefault("model", self.spec)
                chunk.response_metadata.setdefault("prompt_id", prompt_digest(messages, tools)[1])
            generation = ChatGenerationChunk(message=chunk)
            if run_manager and isinstance(chunk.content, str) and chunk.content:
                run_manager.on_llm_new_token(chunk.content, chunk=generation)
            yield generation

    # -- agentrt additions ------------------------------------------------------------------
    def sample(
        self, messages: Sequence[BaseMessage], n: int, tools: Sequence[Any] = (), **params: Any
    ) -> list[AIMessage]:
        """``n`` independent answers to the same messages (one batched call where the backend
        can batch). Used wherever a method needs several candidates: critics, SIM-RAG, RFT."""
        result = self._generate(
            list(messages), tools=openai_schemas(tools) if tools else [], **{**params, "n": n}
        )
        return [g.message for g in result.generations]  # type: ignore[misc]


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """LangChain's ``usage_metadata`` from token counts."""
    return {
        "input_tokens": prompt_tokens,
        "output_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
