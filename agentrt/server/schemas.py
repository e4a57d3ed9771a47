"""The HTTP API's request and response bodies.

Names and fields follow LangGraph's server API (so its SDK client works unchanged) and OpenAI's
chat completions API. Requests ignore fields they do not know, as LangGraph's server does, so
newer SDK versions still talk to us; the fields we do know are validated strictly, and a wrong
one is a 422 naming it.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

MAX_OFFSET = 2**53  # beyond any table, within SQLite's integers
MAX_DEPTH = 64  # JSON nesting a request may carry; orjson stops at 255 and JSON columns must stay readable
StreamMode = Literal["values", "updates", "messages", "messages-tuple", "custom", "debug", "events"]
RunStatus = Literal["pending", "running", "success", "error", "interrupted", "timeout"]
ThreadStatus = Literal["idle", "busy", "interrupted", "error"]


class _Request(BaseModel):
    """Every request body. Before field validation the whole body is checked once: nesting
    deeper than :data:`MAX_DEPTH` is refused (stored, it would fail every later read), and text
    with lone surrogates (``"\\ud800"`` is valid JSON, but not Unicode that UTF-8 can carry) has
    them replaced by U+FFFD, so nothing stored can break a response."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _clean(cls, data: Any) -> Any:
        return clean_json(data)


def clean_json(data: Any) -> Any:
    """``data`` with lone surrogates replaced; ``ValueError`` if nested deeper than :data:`MAX_DEPTH`."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    dirty = False
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise ValueError(f"the request nests JSON more than {MAX_DEPTH} levels deep; flatten it")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                dirty = dirty or (isinstance(key, str) and not _utf8(key))
                stack.append((item, depth + 1))
        elif isinstance(value, str) and not _utf8(value):
            dirty = True
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError("the request holds NaN or Infinity, which JSON does not allow; send a finite number")
    return _replace_surrogates(data) if dirty else data


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value if _utf8(value) else "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    return value


class Assistant(BaseModel):
    assistant_id: str
    graph_id: str
    name: str
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: int = 1
    created_at: str
    updated_at: str


class AssistantSearch(_Request):
    graph_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class AssistantSchemas(BaseModel):
    graph_id: str
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    state_schema: dict[str, Any] | None
    config_schema: dict[str, Any] | None
    context_schema: dict[str, Any] | None


class Thread(BaseModel):
    thread_id: str
    created_at: float
    updated_at: float
    status: ThreadStatus
    metadata: dict[str, Any] = Field(default_factory=dict)
    values: dict[str, Any] | None = None


THREAD_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"


class ThreadCreate(_Request):
    thread_id: str | None = Field(None, pattern=THREAD_ID_PATTERN,
                                  description="your own id (letters, digits, . _ : -); default a UUID")
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"


class ThreadSearch(_Request):
    metadata: dict[str, Any] | None = None
    status: ThreadStatus | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class ThreadState(BaseModel):
    values: dict[str, Any] | list[Any] | None
    next: list[str]
    tasks: list[dict[str, Any]] = Field(default_factory=list)
    interrupts: list[dict[str, Any]] = Field(default_factory=list)
    checkpoint: dict[str, Any] | None
    parent_checkpoint: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    created_at: str | None = None


class HistoryRequest(_Request):
    limit: int = Field(10, ge=1, le=1000)
    before: dict[str, Any] | None = None

    @field_validator("before")
    @classmethod
    def _checkpoint_id_is_text(cls, before: dict[str, Any] | None) -> dict[str, Any] | None:
        if before is not None and not isinstance(before.get("checkpoint_id", ""), str):
            raise ValueError("before.checkpoint_id must be a checkpoint id (a string)")
        return before


class Command(_Request):
    resume: Any = None
    update: dict[str, Any] | None = None
    goto: str | list[str] | None = None


class RunCreate(_Request):
    assistant_id: str = Field(..., min_length=1, description="a graph name from the manifest")
    input: dict[str, Any] | None = Field(None, description="the graph's input; null continues the thread")
    command: Command | None = Field(None, description="resume an interrupt: {'resume': value}")
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    stream_mode: StreamMode | list[StreamMode] = "values"
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    if_not_exists: Literal["create", "reject"] = "reject"
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] = "reject"


    @field_validator("config")
    @classmethod
    def _configurable_is_an_object(cls, config: dict[str, Any] | None) -> dict[str, Any] | None:
        if config is not None and not isinstance(config.get("configurable", {}), dict):
            raise ValueError("config.configurable must be an object of settings, e.g. {\"temperature\": 0.2}")
        if config is not None and not isinstance(config.get("metadata", {}), dict):
            raise ValueError("config.metadata must be an object")
        return config


class FeedbackCreate(_Request):
    key: str = Field(..., pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="what is judged, e.g. correct or thumbs")
    score: StrictBool | StrictInt | StrictFloat = Field(..., description="a number (true/false count as 1/0)")
    comment: str | None = Field(None, max_length=4000)

    @field_validator("score")
    @classmethod
    def _finite(cls, score: float) -> float:
        if score != score or score in (float("inf"), float("-inf")):
            raise ValueError("score must be a finite number")
        return score


class Run(BaseModel):
    run_id: str
    thread_id: str | None
    assistant_id: str
    status: RunStatus
    created_at: float
    updated_at: float
    metadata: dict[str, Any] = Field(default_factory=dict)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    multitask_strategy: str = "reject"


class Problem(BaseModel):
    """Every error body: ``detail`` says what was wrong and what to do."""

    detail: str
    errors: list[dict[str, Any]] | None = None


# OpenAI-compatible chat completions


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ChatCompletionRequest(_Request):
    model: str = Field(..., min_length=1, description="an assistant (graph) name")
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "agentrt"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
