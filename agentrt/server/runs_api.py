"""Runs: on a thread (wait, stream, background with status, cancel, join, join-stream) and stateless.
Every run goes through the run manager's bounded queue."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse

from agentrt.server.auth import owner_of
from agentrt.server.run_requests import new_job, stream_modes
from agentrt.server.runs import RunJob, RunManager, ThreadBusy
from agentrt.server.schemas import (
    MAX_OFFSET,
    THREAD_ID_PATTERN,
    Run,
    RunCreate,
)
from agentrt.server.serialize import dumps, raw_json
from agentrt.server.store import ServerStore
from agentrt.server.threads_api import thread_or_404, thread_state_of

router = APIRouter()
Owner = Depends(owner_of)


def start_run(request: Request, body: RunCreate, owner: str, thread_id: str | None, modes: frozenset[str]) -> RunJob:
    store: ServerStore = request.app.state.store
    key = None
    if thread_id is not None:
        thread = store.get_thread(thread_id, owner)
        if thread is None:
            if body.if_not_exists != "create":
                thread_or_404(request, thread_id, owner)
            if not re.fullmatch(THREAD_ID_PATTERN, thread_id):  # the rules of ids given to POST /threads
                raise HTTPException(422, "thread_id: a new thread's id is 1-128 letters, digits, . _ : or -")
            thread = store.create_thread(owner, {"graph_id": body.assistant_id}, thread_id)
        elif thread["metadata"].get("graph_id") not in (None, body.assistant_id):
            raise HTTPException(409, f"thread {thread_id} runs {thread['metadata']['graph_id']!r}; "
                                     f"start a new thread for {body.assistant_id!r}")
        key = thread["state_key"]
    job = new_job(request, body, owner, thread_id, modes, state_key=key)
    try:
        return request.app.state.runs.submit(job)
    except ThreadBusy as busy:
        raise HTTPException(409, f"thread {thread_id} already has a run in progress ({busy}); wait for it "
                                 "(GET .../runs/{run_id}/join) or cancel it") from None


def sse(request: Request, job: RunJob) -> StreamingResponse:
    runs: RunManager = request.app.state.runs

    async def events() -> AsyncIterator[bytes]:
        yield b"event: metadata\ndata: " + dumps({"run_id": job.run_id, "attempt": job.attempt}) + b"\n\n"
        async for event, data in runs.watch(job):
            yield b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
        if job.status == "error":
            yield b"event: error\ndata: " + dumps({"error": "RunError", "message": job.error}) + b"\n\n"

    where = f"/threads/{quote(job.thread_id, safe='')}/runs/{job.run_id}" if job.thread_id else f"/runs/{job.run_id}"
    headers = {"Content-Location": where, "Cache-Control": "no-store"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def run_or_404(request: Request, thread_id: str, run_id: str, owner: str) -> dict[str, Any]:
    run = request.app.state.store.get_run(run_id, owner)
    if run is None or run["thread_id"] != thread_id:
        raise HTTPException(404, f"no run {run_id!r} on thread {thread_id!r}")
    return live(request, run)


def live(request: Request, run: dict[str, Any]) -> dict[str, Any]:
    """A run row with its status as the worker sees it now ("running" is not written down)."""
    job = request.app.state.runs.job(run["run_id"])
    return {**run, "status": job.status} if job is not None else run


@router.post("/threads/{thread_id}/runs/wait", tags=["runs"])
async def wait_run(request: Request, thread_id: str, body: RunCreate, owner: str = Owner) -> Response:
    job = start_run(request, body, owner, thread_id, frozenset())
    return raw_json(await request.app.state.runs.wait(job))


@router.post("/threads/{thread_id}/runs", response_model=Run, tags=["runs"])
async def create_run(request: Request, thread_id: str, body: RunCreate, owner: str = Owner) -> Any:
    job = start_run(request, body, owner, thread_id, stream_modes(body))
    return live(request, request.app.state.store.get_run(job.run_id, owner))


@router.post("/threads/{thread_id}/runs/stream", tags=["runs"],
        responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
async def stream_run(request: Request, thread_id: str, body: RunCreate, owner: str = Owner) -> Response:
    return sse(request, start_run(request, body, owner, thread_id, stream_modes(body)))


@router.get("/threads/{thread_id}/runs", response_model=list[Run], tags=["runs"])
async def list_runs(request: Request, thread_id: str, limit: int = Query(10, ge=1, le=1000),
                    offset: int = Query(0, ge=0, le=MAX_OFFSET), status: str | None = None, owner: str = Owner) -> Any:
    thread_or_404(request, thread_id, owner)
    rows = request.app.state.store.list_runs(owner, thread_id=thread_id, status=status, limit=limit,
                                             offset=offset)
    return [live(request, r) for r in rows]


@router.get("/threads/{thread_id}/runs/{run_id}", response_model=Run, tags=["runs"])
async def get_run(request: Request, thread_id: str, run_id: str, owner: str = Owner) -> Any:
    return run_or_404(request, thread_id, run_id, owner)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel", status_code=202, tags=["runs"])
async def cancel_run(request: Request, thread_id: str, run_id: str, wait: bool = False,
                     owner: str = Owner) -> Response:
    run = run_or_404(request, thread_id, run_id, owner)
    runs: RunManager = request.app.state.runs
    job = runs.job(run_id)
    if job is None:
        raise HTTPException(409, f"run {run_id} is {run['status']}, not in progress: nothing to cancel")
    runs.cancel(run_id)
    if wait:
        await runs.wait(job)
    return Response(status_code=202 if not wait else 204)


@router.get("/threads/{thread_id}/runs/{run_id}/join", tags=["runs"])
async def join_run(request: Request, thread_id: str, run_id: str, owner: str = Owner) -> Response:
    run_or_404(request, thread_id, run_id, owner)
    job = request.app.state.runs.job(run_id)
    if job is not None:
        return raw_json(await request.app.state.runs.wait(job))
    return raw_json(thread_state_of(request, thread_or_404(request, thread_id, owner))["values"])


@router.get("/threads/{thread_id}/runs/{run_id}/stream", tags=["runs"],
       responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
async def join_stream(request: Request, thread_id: str, run_id: str, owner: str = Owner) -> Response:
    run = run_or_404(request, thread_id, run_id, owner)
    job = request.app.state.runs.job(run_id)
    if job is None:
        raise HTTPException(409, f"run {run_id} is {run['status']}; join streams only a run in progress "
                                 "(GET .../join gives a finished run's result)")
    return sse(request, job)

# stateless runs


@router.post("/runs/wait", tags=["stateless runs"])
async def stateless_wait(request: Request, body: RunCreate, owner: str = Owner) -> Response:
    job = start_run(request, body, owner, None, frozenset())
    return raw_json(await request.app.state.runs.wait(job))


@router.post("/runs/stream", tags=["stateless runs"],
        responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
async def stateless_stream(request: Request, body: RunCreate, owner: str = Owner) -> Response:
    return sse(request, start_run(request, body, owner, None, stream_modes(body)))
