"""Threads: create, search, get, delete, state (now or at a checkpoint) and history. Thread ids
are per API key; the checkpointer's key for a thread is its ``state_key``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response

from agentrt.server.auth import owner_of
from agentrt.server.schemas import (
    HistoryRequest,
    Thread,
    ThreadCreate,
    ThreadSearch,
    ThreadState,
)
from agentrt.server.serialize import jsonable, raw_json
from agentrt.server.store import ServerStore

router = APIRouter()
Owner = Depends(owner_of)


def thread_or_404(request: Request, thread_id: str, owner: str) -> dict[str, Any]:
    thread = request.app.state.store.get_thread(thread_id, owner)
    if thread is None:
        raise HTTPException(404, f"no thread {thread_id!r} (it never existed, was deleted, or belongs to another key)")
    return thread


def thread_state_of(request: Request, thread: dict[str, Any], checkpoint_id: str | None = None) -> dict[str, Any]:
    graph_id = thread["metadata"].get("graph_id")
    if not isinstance(graph_id, str) or graph_id not in request.app.state.graphs.stateful:
        return {"values": {}, "next": [], "tasks": [], "interrupts": [], "checkpoint": None, "metadata": None}
    graph = request.app.state.graphs.get(graph_id)
    config: dict[str, Any] = {"configurable": {"thread_id": thread["state_key"]}}
    if checkpoint_id:
        config["configurable"]["checkpoint_id"] = checkpoint_id
    return snapshot(graph.get_state(config), thread["thread_id"])


def snapshot(snap: Any, thread_id: str) -> dict[str, Any]:
    """A state snapshot as the API shows it, under the thread id its client knows."""
    tasks = [{"id": t.id, "name": t.name, "error": repr(t.error) if t.error else None,
              "interrupts": jsonable(list(t.interrupts))} for t in snap.tasks]
    cp = (snap.config or {}).get("configurable", {})
    parent = (snap.parent_config or {}).get("configurable", {})
    return {
        "values": jsonable(snap.values), "next": list(snap.next), "tasks": tasks,
        "interrupts": jsonable(list(snap.interrupts)),
        "checkpoint": {"thread_id": thread_id, "checkpoint_id": cp.get("checkpoint_id"),
                       "checkpoint_ns": cp.get("checkpoint_ns", "")} if cp else None,
        "parent_checkpoint": {"thread_id": thread_id, "checkpoint_id": parent.get("checkpoint_id"),
                              "checkpoint_ns": parent.get("checkpoint_ns", "")} if parent else None,
        "metadata": jsonable(snap.metadata), "created_at": snap.created_at,
    }


@router.post("/threads", response_model=Thread, tags=["threads"])
async def create_thread(request: Request, body: ThreadCreate, owner: str = Owner) -> Any:
    store: ServerStore = request.app.state.store
    if body.thread_id:
        existing = store.get_thread(body.thread_id, owner)
        if existing is not None:
            if body.if_exists == "do_nothing":
                return existing
            raise HTTPException(409, f"thread {body.thread_id} exists; pass if_exists='do_nothing' to reuse it")
    return raw_json(store.create_thread(owner, body.metadata, body.thread_id))


@router.post("/threads/search", response_model=list[Thread], tags=["threads"])
async def search_threads(request: Request, body: ThreadSearch, owner: str = Owner) -> Any:
    return request.app.state.store.search_threads(owner, status=body.status, metadata=body.metadata,
                                                  limit=body.limit, offset=body.offset)


@router.get("/threads/{thread_id}", response_model=Thread, tags=["threads"])
async def get_thread(request: Request, thread_id: str, owner: str = Owner) -> Any:
    thread = thread_or_404(request, thread_id, owner)
    return {**thread, "values": thread_state_of(request, thread)["values"]}


@router.delete("/threads/{thread_id}", status_code=204, tags=["threads"])
async def delete_thread(request: Request, thread_id: str, owner: str = Owner) -> Response:
    thread = thread_or_404(request, thread_id, owner)
    run_id = request.app.state.runs.active_run_of(thread["state_key"])
    if run_id:
        raise HTTPException(409, f"thread {thread_id} has a run in progress ({run_id}); cancel it first")
    request.app.state.store.delete_thread(thread_id, owner)
    request.app.state.checkpointer.delete_thread(thread["state_key"])
    return Response(status_code=204)


@router.get("/threads/{thread_id}/state", response_model=ThreadState, tags=["threads"])
async def thread_state(request: Request, thread_id: str, owner: str = Owner) -> Any:
    return thread_state_of(request, thread_or_404(request, thread_id, owner))


@router.get("/threads/{thread_id}/state/{checkpoint_id}", response_model=ThreadState, tags=["threads"])
async def thread_state_at(request: Request, thread_id: str, checkpoint_id: str, owner: str = Owner) -> Any:
    return thread_state_of(request, thread_or_404(request, thread_id, owner), checkpoint_id)


def history(request: Request, thread_id: str, owner: str, limit: int, before: dict[str, Any] | None) -> Any:
    thread = thread_or_404(request, thread_id, owner)
    graph_id = thread["metadata"].get("graph_id")
    if not isinstance(graph_id, str) or graph_id not in request.app.state.graphs.stateful:
        return []
    graph = request.app.state.graphs.get(graph_id)
    config = {"configurable": {"thread_id": thread["state_key"]}}
    before_cfg = {"configurable": {**before, "thread_id": thread["state_key"]}} if before else None
    return [snapshot(s, thread_id) for s in graph.get_state_history(config, limit=limit, before=before_cfg)]


@router.post("/threads/{thread_id}/history", response_model=list[ThreadState], tags=["threads"])
async def thread_history(request: Request, thread_id: str, body: HistoryRequest, owner: str = Owner) -> Any:
    return history(request, thread_id, owner, body.limit, body.before)


@router.get("/threads/{thread_id}/history", response_model=list[ThreadState], tags=["threads"])
async def thread_history_get(request: Request, thread_id: str, limit: int = Query(10, ge=1, le=1000),
                             owner: str = Owner) -> Any:
    return history(request, thread_id, owner, limit, None)

# runs on a thread
