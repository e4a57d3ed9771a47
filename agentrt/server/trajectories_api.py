"""Trajectories of the server's runs, scoped to the calling key: list, fetch, export as JSONL, and
feedback on a run (``POST /runs/{run_id}/feedback``), which exports and fine-tuning filter on.

Thread ids are per key, and the trajectory store keeps the checkpointer's key (which carries the
owner): the API takes and shows the thread id its client knows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from agentrt.server.auth import owner_of
from agentrt.server.schemas import FeedbackCreate
from agentrt.server.store import state_key
from agentrt.trajectory import STATUSES, Feedback, RunSummary, Trajectory
from agentrt.trajectory_store import TrajectoryStore, TrajectoryStoreError

router = APIRouter(tags=["trajectories"])

StatusFilter = Query(None, description=f"one of {', '.join(STATUSES)}", pattern="^(" + "|".join(STATUSES) + ")$")


@router.get("/trajectories", response_model=list[RunSummary])
async def list_trajectories(request: Request, graph: str | None = None, status: str | None = StatusFilter,
                            thread_id: str | None = None, limit: int = Query(50, ge=1, le=1000),
                            owner: str = Depends(owner_of)) -> Any:
    store: TrajectoryStore = request.app.state.trajectories
    found = store.list(limit=limit, graph=graph, status=status, thread_id=_key(owner, thread_id), owner=owner)
    return [_shown(owner, r) for r in found]


def _key(owner: str, thread_id: str | None) -> str | None:
    return None if thread_id is None else state_key(owner, thread_id)


def _shown(owner: str, item: Any) -> Any:
    """A run summary or trajectory under the thread id its client knows."""
    prefix = state_key(owner, "")
    if item.thread_id and prefix and item.thread_id.startswith(prefix):
        return item.model_copy(update={"thread_id": item.thread_id[len(prefix):]})
    return item


@router.get("/trajectories/export", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}, "description": "one trajectory per line"}})
async def export_trajectories(request: Request, graph: str | None = None, status: str | None = StatusFilter,
                              thread_id: str | None = None, owner: str = Depends(owner_of)) -> StreamingResponse:
    store: TrajectoryStore = request.app.state.trajectories

    def lines() -> Iterator[str]:
        for traj in store.iter(graph=graph, status=status, thread_id=_key(owner, thread_id), owner=owner):
            yield _shown(owner, traj).model_dump_json() + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="trajectories.jsonl"'})


@router.get("/trajectories/{run_id}", response_model=Trajectory)
async def get_trajectory(request: Request, run_id: str, owner: str = Depends(owner_of)) -> Any:
    store: TrajectoryStore = request.app.state.trajectories
    try:
        traj = store.get(run_id)
    except (KeyError, TrajectoryStoreError):
        traj = None
    if traj is None or traj.metadata.get("owner") != owner:
        raise HTTPException(404, f"no trajectory for run {run_id!r} under this key")
    return _shown(owner, traj)


@router.post("/runs/{run_id}/feedback", response_model=Feedback, tags=["runs"])
async def add_feedback(request: Request, run_id: str, body: FeedbackCreate, owner: str = Depends(owner_of)) -> Any:
    """Judge a whole run (``correct``, ``thumbs``, ...): kept with its trajectory, for exports and
    ``agentrt rft train --min-feedback`` to choose runs by."""
    if request.app.state.store.get_run(run_id, owner) is None:
        raise HTTPException(404, f"no run {run_id!r} under this key")
    feedback = Feedback(key=body.key, score=float(body.score), comment=body.comment, source=owner)
    try:
        request.app.state.trajectories.add_feedback(run_id, feedback)
    except TrajectoryStoreError:
        raise HTTPException(409, f"run {run_id} has not started yet: give feedback once it has run") from None
    return feedback
