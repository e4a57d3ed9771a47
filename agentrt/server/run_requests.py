"""From a run request to a queued job: which graph, what input or resume command, what config."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import HTTPException, Request
from langgraph.types import Command

from agentrt.server.runs import RunJob
from agentrt.server.schemas import RunCreate


def _merge_config(base: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest's config, then the request's; a request's ``null`` setting leaves the
    manifest's value in place (it must not unset an operator's choice, e.g. the model)."""
    out = {**base, **(override or {})}
    asked = {k: v for k, v in (override or {}).get("configurable", {}).items() if v is not None}
    out["configurable"] = {**base.get("configurable", {}), **asked}
    return out


def new_job(request: Request, body: RunCreate, owner: str, thread_id: str | None, modes: frozenset[str],
            state_key: str | None = None) -> RunJob:
    """A run from its request: the graph (stateful only on a thread), the input or resume
    command, and the config (the manifest's, then the request's; the checkpointer's thread key
    always ours, ``state_key``)."""
    graphs = request.app.state.graphs
    graph = graphs.get(body.assistant_id, stateful=thread_id is not None)
    request.app.state.policy.check(body.assistant_id, (body.config or {}).get("configurable"), body.context)
    config = _merge_config(graphs.base_config(body.assistant_id), body.config)
    if thread_id:
        config["configurable"]["thread_id"] = state_key or thread_id
    else:
        config["configurable"].pop("thread_id", None)
    config["metadata"] = {**config.get("metadata", {}), **body.metadata}
    if body.command is not None:
        payload: Any = Command(resume=body.command.resume, update=body.command.update,
                               goto=body.command.goto or ())
    else:
        payload = body.input
    if payload is None and thread_id is None:
        raise HTTPException(422, "input: a stateless run needs an input (only a thread run can continue without one)")
    kwargs = {"interrupt_before": body.interrupt_before, "interrupt_after": body.interrupt_after}
    if body.context is not None:
        kwargs["context"] = body.context
    return RunJob(
        run_id=str(uuid.uuid4()), thread_id=thread_id, owner=owner, assistant_id=body.assistant_id, graph=graph,
        input=payload, config=config, modes=modes,
        stream_kwargs={k: v for k, v in kwargs.items() if v is not None},
    )


def recovered_job(graphs: Any, row: dict[str, Any]) -> RunJob:
    """A run acknowledged before a crash and never started, rebuilt from its stored request."""
    kwargs = row["kwargs"]
    if "command" in kwargs:
        command = kwargs["command"] or {}
        payload: Any = Command(resume=command.get("resume"), update=command.get("update"),
                               goto=command.get("goto") or ())
    else:
        payload = kwargs.get("input")
    stream_kwargs = {k: kwargs[k] for k in ("interrupt_before", "interrupt_after", "context") if kwargs.get(k)}
    return RunJob(
        run_id=row["run_id"], thread_id=row["thread_id"], owner=row["owner"], assistant_id=row["assistant_id"],
        graph=graphs.get(row["assistant_id"], stateful=row["thread_id"] is not None), input=payload,
        config=kwargs.get("config") or {}, modes=frozenset(kwargs.get("stream_mode") or ()),
        stream_kwargs=stream_kwargs, attempt=row.get("attempt", 1),
    )


def stream_modes(body: RunCreate) -> frozenset[str]:
    modes = body.stream_mode if isinstance(body.stream_mode, list) else [body.stream_mode]
    return frozenset("messages" if m == "messages-tuple" else m for m in modes)
