"""An OpenAI-compatible face: ``model`` names an assistant, so the official ``openai`` client
talks to an agent unchanged. Each request is a stateless run of the whole graph (tools and
all); the reply is the run's final answer, streamed as chat-completion chunks when asked."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from langchain_core.messages import convert_to_messages

from agentrt.server.auth import owner_of
from agentrt.server.run_requests import new_job
from agentrt.server.runs import RunJob, RunManager
from agentrt.server.schemas import ChatCompletionRequest, ModelList, RunCreate
from agentrt.server.serialize import dumps

router = APIRouter(prefix="/v1", tags=["openai"])


@router.get("/models", response_model=ModelList)
async def list_models(request: Request, owner: str = Depends(owner_of)) -> Any:
    created = int(time.time())
    return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "agentrt"}
                                       for name in request.app.state.graphs.stateless]}


def _job(request: Request, body: ChatCompletionRequest, owner: str, modes: frozenset[str]) -> RunJob:
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    try:
        convert_to_messages(messages)
    except Exception as exc:  # noqa: BLE001 - LangChain raises KeyError, TypeError, ValueError...
        raise HTTPException(422, f"messages: {exc}".split("\nFor troubleshooting")[0]) from None
    sampling = {"temperature": body.temperature, "top_p": body.top_p,
                "max_tokens": body.max_completion_tokens or body.max_tokens, "seed": body.seed}
    run = RunCreate(
        assistant_id=body.model,
        input={"messages": messages},
        config={"configurable": {k: v for k, v in sampling.items() if v is not None}},
        metadata={"api": "openai", **(body.metadata or {})},
    )
    return request.app.state.runs.submit(new_job(request, run, owner, None, modes))


def _answer(job: RunJob) -> str:
    if job.status == "error":
        first = (job.error or "unknown error").splitlines()[0][:300]
        raise HTTPException(502, f"the agent's run {job.run_id} failed ({first}); GET /trajectories/{job.run_id} "
                                 "shows its steps")
    if (job.output or {}).get("__interrupt__"):
        return "(the run paused for approval; approval needs a thread: use the /threads API)"
    return job.answer or ""


def _usage(output: dict[str, Any], prompt_messages: int) -> dict[str, int]:
    prompt = completion = 0
    for m in (output.get("messages") or [])[prompt_messages:]:
        u = m.get("usage_metadata") or {}
        prompt += int(u.get("input_tokens", 0))
        completion += int(u.get("output_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@router.post("/chat/completions", responses={200: {"content": {"text/event-stream": {}},
                                                    "description": "a completion, or chunks when stream=true"}})
async def chat_completions(request: Request, body: ChatCompletionRequest, owner: str = Depends(owner_of)) -> Response:
    runs: RunManager = request.app.state.runs
    created, completion_id = int(time.time()), "chatcmpl-" + uuid.uuid4().hex
    if not body.stream:
        job = _job(request, body, owner, frozenset())
        await runs.wait(job)
        reply = {
            "id": completion_id, "object": "chat.completion", "created": created, "model": body.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": _answer(job)},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": _usage(job.output or {}, len(body.messages)),
        }
        return Response(dumps(reply), media_type="application/json")

    job = _job(request, body, owner, frozenset({"messages"}))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return b"data: " + dumps({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                                  "model": body.model, "choices": [{"index": 0, "delta": delta,
                                                                    "finish_reason": finish, "logprobs": None}]}) + b"\n\n"

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        streamed = False
        async for _event, data in runs.watch(job):
            text = orjson.loads(data)[0].get("content")
            if text:
                streamed = True
                yield chunk({"content": text})
        try:
            answer = _answer(job)
        except HTTPException as exc:
            yield b"data: " + dumps({"error": {"message": exc.detail, "type": "agent_error"}}) + b"\n\n"
            return
        if not streamed and answer:
            yield chunk({"content": answer})
        yield chunk({}, "stop")
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
