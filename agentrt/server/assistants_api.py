"""Assistants (the manifest's graphs, with their schemas) and the system routes (``/ok``, ``/info``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from agentrt.server.auth import owner_of
from agentrt.server.runs import RunManager
from agentrt.server.schemas import (
    Assistant,
    AssistantSchemas,
    AssistantSearch,
)
from agentrt.server.serialize import jsonable

router = APIRouter()
Owner = Depends(owner_of)




@router.get("/ok", tags=["system"])
async def ok() -> dict[str, bool]:
    return {"ok": True}


@router.get("/info", tags=["system"])
async def info(request: Request) -> dict[str, Any]:
    runs: RunManager = request.app.state.runs
    return {"version": "agentrt", "workers": runs.workers, "capacity": runs.capacity, "active_runs": runs.active,
            "keys_required": request.app.state.auth.required}

# assistants


@router.post("/assistants/search", response_model=list[Assistant], tags=["assistants"])
async def search_assistants(request: Request, body: AssistantSearch, owner: str = Owner) -> list[dict[str, Any]]:
    graphs = request.app.state.graphs
    found = [graphs.assistant(n) for n in graphs.stateful
             if (body.graph_id in (None, n)) and (body.name in (None, n))]
    return found[body.offset: body.offset + body.limit]


@router.get("/assistants/{assistant_id}", response_model=Assistant, tags=["assistants"])
async def get_assistant(request: Request, assistant_id: str, owner: str = Owner) -> dict[str, Any]:
    return request.app.state.graphs.assistant(assistant_id)


@router.get("/assistants/{assistant_id}/schemas", response_model=AssistantSchemas, tags=["assistants"])
async def assistant_schemas(request: Request, assistant_id: str, owner: str = Owner) -> dict[str, Any]:
    g = request.app.state.graphs.get(assistant_id)
    return {"graph_id": assistant_id, "input_schema": g.get_input_jsonschema(),
            "output_schema": g.get_output_jsonschema(), "state_schema": g.get_output_jsonschema(),
            "config_schema": g.get_config_jsonschema(), "context_schema": g.get_context_jsonschema()}


@router.get("/assistants/{assistant_id}/graph", tags=["assistants"])
async def assistant_graph(request: Request, assistant_id: str, owner: str = Owner) -> dict[str, Any]:
    return jsonable(request.app.state.graphs.get(assistant_id).get_graph().to_json())

# threads
