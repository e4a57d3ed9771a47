"""Graph state as JSON: LangChain messages as their dict form (what LangGraph's server sends and
its SDK reads back), pydantic models dumped, interrupts as ``{"value", "id"}``, anything else
that JSON cannot hold as text rather than an error mid-stream."""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi.responses import Response
from langchain_core.messages import BaseMessage
from langgraph.types import Interrupt
from pydantic import BaseModel

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    if isinstance(value, BaseMessage):
        return value.model_dump()
    if isinstance(value, Interrupt):
        return {"value": value.value, "id": value.id}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def dumps(value: Any) -> bytes:
    """orjson, except for text that is not valid UTF-8 (lone surrogates, which JSON requests can
    carry as ``\\udXXX`` escapes): orjson refuses it, the standard library escapes it back."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTS)
    except orjson.JSONEncodeError:
        return json.dumps(value, default=_default, ensure_ascii=True).encode()


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (for a pydantic response or an SQLite column)."""
    data = dumps(value)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # escaped lone surrogates, which only the standard library reads
        return json.loads(data)


def raw_json(value: Any, status_code: int = 200) -> Response:
    return Response(dumps(value), status_code=status_code, media_type="application/json")
