"""Trajectories of the server's runs, scoped to the calling key: list, fetch, export as JSONL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from agentrt.server.auth import owner_of
from agentrt.trajectory import STATUSES, RunSummary, Trajectory
from agentrt.trajectory_store import TrajectoryStore, TrajectoryStoreError

router = APIRouter(tags=["trajectories"])

StatusFilter = Query(None, description=f"one of {', '.join(STATUSES)}", pattern="^(" + "|".join(STATUSES) + ")$")


@router.get("/trajectories", response_model=list[RunSummary])
async def list_trajectories(request: Request, graph: str | None = None, status: str | None = StatusFilter,
                            thread_id: str | None = None, limit: int = Query(50, ge=1, le=1000),
                            owner: str = Depends(owner_of)) -> Any:
    store: TrajectoryStore = request.app.state.trajectories
    return store.list(limit=limit, graph=graph, status=status, thread_id=thread_id, owner=owner)


@router.get("/trajectories/export", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}, "description": "one trajectory per line"}})
async def export_trajectories(request: Request, graph: str | None = None, status: str | None = StatusFilter,
                              thread_id: str | None = None, owner: str = Depends(owner_of)) -> StreamingResponse:
    store: TrajectoryStore = request.app.state.trajectories

    def lines() -> Iterator[str]:
        for traj in store.iter(graph=graph, status=status, thread_id=thread_id, owner=owner):
            yield traj.model_dump_json() + "\n"

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
    return traj
