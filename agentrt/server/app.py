"""agentrt's HTTP server: LangGraph's server API for the manifest's graphs, plus an
OpenAI-compatible face (``/v1``), on FastAPI.

State is durable by default: thread state in LangGraph's SQLite checkpointer, trajectories in
the trajectory store, threads/runs/keys in the server's own table, all under one data folder.
A server that starts again marks what was in flight as interrupted; a new run with no input on
such a thread resumes it from its last checkpoint.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse

from agentrt.checkpoints import sqlite_checkpointer
from agentrt.manifest import ManifestError, find_manifest, load_graph, load_manifest
from agentrt.models.registry import set_max_loaded
from agentrt.server import openai_api, trajectories_api
from agentrt.server.auth import Auth, owner_of
from agentrt.server.limits import BodySizeLimit
from agentrt.server.policy import ModelPolicy
from agentrt.server.run_requests import new_job, recovered_job, stream_modes
from agentrt.server.runs import Busy, RunJob, RunManager, ThreadBusy
from agentrt.server.schemas import (
    MAX_OFFSET,
    THREAD_ID_PATTERN,
    Assistant,
    AssistantSchemas,
    AssistantSearch,
    HistoryRequest,
    Problem,
    Run,
    RunCreate,
    Thread,
    ThreadCreate,
    ThreadSearch,
    ThreadState,
)
from agentrt.server.serialize import dumps, jsonable
from agentrt.server.store import ServerStore
from agentrt.trajectory_store import TrajectoryStore


@dataclass
class ServerSettings:
    manifest: Path | None = None
    data_dir: Path = Path(".agentrt-server")
    workers: int = 8
    queue_size: int = 256
    max_body_bytes: int = 1_000_000
    require_key: bool | None = None  # None: required as soon as a key exists
    allow_models: tuple[str, ...] = ()  # model specs every graph's runs may choose
    max_models: int | None = None  # loaded models kept at once (None: AGENTRT_MAX_MODELS or 4)
    graceful_timeout: float = 3.0  # on shutdown, how long runs in progress get to finish


class Graphs:
    """The manifest's graphs, each compiled twice: with the checkpointer (thread runs) and
    without (stateless runs, which keep no state)."""

    def __init__(self, manifest: Path | None, checkpointer: Any) -> None:
        self.manifest = load_manifest(find_manifest(manifest))
        self.created = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        self.stateless: dict[str, Any] = {}
        self.stateful: dict[str, Any] = {}
        for name in self.manifest.graphs:
            graph = load_graph(name, self.manifest.path)
            if hasattr(graph, "compile") and not hasattr(graph, "stream"):
                graph = graph.compile(name=name)
            if not hasattr(graph, "stream"):
                raise ManifestError(f"{name} in {self.manifest.path} is not a LangGraph graph (no .stream)")
            self.stateless[name] = graph
            self.stateful[name] = graph.copy(update={"checkpointer": checkpointer})

    def get(self, name: str, stateful: bool = True) -> Any:
        graphs = self.stateful if stateful else self.stateless
        if name not in graphs:
            raise HTTPException(404, f"no assistant {name!r}; this server has: {', '.join(graphs) or 'none'}")
        return graphs[name]

    def assistant(self, name: str) -> dict[str, Any]:
        self.get(name)
        entry = self.manifest.entry(name)
        return {"assistant_id": name, "graph_id": name, "name": name, "description": entry.description,
                "config": entry.config, "created_at": self.created, "updated_at": self.created}

    def base_config(self, name: str) -> dict[str, Any]:
        return self.manifest.entry(name).config


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        data = settings.data_dir
        data.mkdir(parents=True, exist_ok=True)
        store = ServerStore(data / "server.sqlite")
        trajectories = TrajectoryStore(data / "trajectories.sqlite")
        checkpointer = sqlite_checkpointer(data / "checkpoints.sqlite")
        recovered = store.recover()  # (the trajectory store closed its dead runs when it opened)
        app.state.graphs = Graphs(settings.manifest, checkpointer)
        app.state.policy = ModelPolicy(app.state.graphs.manifest, settings.allow_models)
        set_max_loaded(settings.max_models)
        app.state.store, app.state.trajectories, app.state.checkpointer = store, trajectories, checkpointer
        app.state.auth = Auth(store, settings.require_key)
        app.state.runs = RunManager(store, trajectories, workers=settings.workers, queue_size=settings.queue_size)
        for row in recovered:  # queued when the server died: started now, in the order they came
            try:
                app.state.runs.submit(recovered_job(app.state.graphs, row), recovered=True)
            except (HTTPException, ThreadBusy) as exc:
                why = exc.detail if isinstance(exc, HTTPException) else "its thread has another run in progress"
                store.end_run(row["run_id"], "error", f"could not be started again after a restart: {why}",
                              row["thread_id"], "idle")
        # Graphs, models and modules loaded above live as long as the server: freezing them out
        # of the collector's scans (and collecting less often) cut p99 latency under load.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        try:
            yield
        finally:
            app.state.runs.shutdown(settings.graceful_timeout)
            store.close()
            trajectories.close()
            checkpointer.conn.close()

    app = FastAPI(
        title="agentrt", version="1", lifespan=lifespan,
        description="LangGraph-compatible agent server with an OpenAI-compatible chat endpoint.",
        responses={401: {"model": Problem}, 413: {"model": Problem}, 422: {"model": Problem}},
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Busy, _busy)
    app.include_router(_routes())
    app.include_router(trajectories_api.router)
    app.include_router(openai_api.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the assistant names this server has as enums where a request
    names one, so clients and fuzzers see the valid values instead of any string."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    graphs = getattr(app.state, "graphs", None)
    if graphs is not None:
        names = sorted(graphs.stateful)
        schemas = doc.get("components", {}).get("schemas", {})
        for model, field in (("RunCreate", "assistant_id"), ("ChatCompletionRequest", "model")):
            prop = schemas.get(model, {}).get("properties", {}).get(field)
            if prop is not None:
                prop["enum"] = names
    app.openapi_schema = doc
    return doc


# errors


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": [_printable(x) for x in e.get("loc", ())], "msg": _printable(e.get("msg", "")),
               "type": e.get("type")} for e in exc.errors()]  # not the input: it may not even be UTF-8
    parts = [".".join(str(x) for x in e["loc"]) + f": {e['msg']}" for e in errors]
    return _error(request, 422, "invalid request: " + "; ".join(parts), errors=errors)


def _printable(value: Any) -> Any:
    if isinstance(value, int):
        return value
    return str(value).encode("utf-8", "replace").decode("utf-8")


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return _error(request, exc.status_code, str(exc.detail), headers=exc.headers)


def _error(request: Request, status: int, detail: str, headers: Any = None, **extra: Any) -> JSONResponse:
    """``{"detail": ...}``; under ``/v1`` also OpenAI's ``{"error": {"message": ...}}``, which the
    openai client shows as the exception's message."""
    body: dict[str, Any] = {"detail": detail, **extra}
    if request.url.path.startswith("/v1/"):
        body["error"] = {"message": detail, "type": "invalid_request_error" if status < 500 else "server_error",
                         "param": None, "code": status}
    return JSONResponse(body, status_code=status, headers=headers)


async def _busy(request: Request, exc: Busy) -> JSONResponse:
    return JSONResponse({"detail": "every run worker is busy and the queue is full; retry after the delay"},
                        status_code=503, headers={"Retry-After": "1"})


def raw_json(value: Any, status_code: int = 200) -> Response:
    return Response(dumps(value), status_code=status_code, media_type="application/json")


# helpers the routes share


def _thread_or_404(request: Request, thread_id: str, owner: str) -> dict[str, Any]:
    thread = request.app.state.store.get_thread(thread_id, owner)
    if thread is None:
        raise HTTPException(404, f"no thread {thread_id!r} (it never existed, was deleted, or belongs to another key)")
    return thread


def _state(request: Request, thread: dict[str, Any], checkpoint_id: str | None = None) -> dict[str, Any]:
    graph_id = thread["metadata"].get("graph_id")
    if not graph_id or graph_id not in request.app.state.graphs.stateful:
        return {"values": {}, "next": [], "tasks": [], "interrupts": [], "checkpoint": None, "metadata": None}
    graph = request.app.state.graphs.get(graph_id)
    config: dict[str, Any] = {"configurable": {"thread_id": thread["state_key"]}}
    if checkpoint_id:
        config["configurable"]["checkpoint_id"] = checkpoint_id
    return _snapshot(graph.get_state(config), thread["thread_id"])


def _snapshot(snap: Any, thread_id: str) -> dict[str, Any]:
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


def _start(request: Request, body: RunCreate, owner: str, thread_id: str | None, modes: frozenset[str]) -> RunJob:
    store: ServerStore = request.app.state.store
    key = None
    if thread_id is not None:
        thread = store.get_thread(thread_id, owner)
        if thread is None:
            if body.if_not_exists != "create":
                _thread_or_404(request, thread_id, owner)
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


def _sse(request: Request, job: RunJob) -> StreamingResponse:
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


def _run_or_404(request: Request, thread_id: str, run_id: str, owner: str) -> dict[str, Any]:
    run = request.app.state.store.get_run(run_id, owner)
    if run is None or run["thread_id"] != thread_id:
        raise HTTPException(404, f"no run {run_id!r} on thread {thread_id!r}")
    return _live(request, run)


def _live(request: Request, run: dict[str, Any]) -> dict[str, Any]:
    """A run row with its status as the worker sees it now ("running" is not written down)."""
    job = request.app.state.runs.job(run["run_id"])
    return {**run, "status": job.status} if job is not None else run


def _routes() -> APIRouter:
    r = APIRouter()
    Owner = Depends(owner_of)

    # the two routes of every thread+run cycle first: Starlette tries routes in order
    @r.post("/threads", response_model=Thread, tags=["threads"])
    async def create_thread(request: Request, body: ThreadCreate, owner: str = Owner) -> Any:
        store: ServerStore = request.app.state.store
        if body.thread_id:
            existing = store.get_thread(body.thread_id, owner)
            if existing is not None:
                if body.if_exists == "do_nothing":
                    return existing
                raise HTTPException(409, f"thread {body.thread_id} exists; pass if_exists='do_nothing' to reuse it")
        return raw_json(store.create_thread(owner, body.metadata, body.thread_id))

    @r.post("/threads/{thread_id}/runs/wait", tags=["runs"])
    async def wait_run(request: Request, thread_id: str, body: RunCreate, owner: str = Owner) -> Response:
        job = _start(request, body, owner, thread_id, frozenset())
        return raw_json(await request.app.state.runs.wait(job))


    @r.get("/ok", tags=["system"])
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @r.get("/info", tags=["system"])
    async def info(request: Request) -> dict[str, Any]:
        runs: RunManager = request.app.state.runs
        return {"version": "agentrt", "workers": runs.workers, "capacity": runs.capacity, "active_runs": runs.active,
                "keys_required": request.app.state.auth.required}

    # assistants
    @r.post("/assistants/search", response_model=list[Assistant], tags=["assistants"])
    async def search_assistants(request: Request, body: AssistantSearch, owner: str = Owner) -> list[dict[str, Any]]:
        graphs = request.app.state.graphs
        found = [graphs.assistant(n) for n in graphs.stateful
                 if (body.graph_id in (None, n)) and (body.name in (None, n))]
        return found[body.offset: body.offset + body.limit]

    @r.get("/assistants/{assistant_id}", response_model=Assistant, tags=["assistants"])
    async def get_assistant(request: Request, assistant_id: str, owner: str = Owner) -> dict[str, Any]:
        return request.app.state.graphs.assistant(assistant_id)

    @r.get("/assistants/{assistant_id}/schemas", response_model=AssistantSchemas, tags=["assistants"])
    async def assistant_schemas(request: Request, assistant_id: str, owner: str = Owner) -> dict[str, Any]:
        g = request.app.state.graphs.get(assistant_id)
        return {"graph_id": assistant_id, "input_schema": g.get_input_jsonschema(),
                "output_schema": g.get_output_jsonschema(), "state_schema": g.get_output_jsonschema(),
                "config_schema": g.get_config_jsonschema(), "context_schema": g.get_context_jsonschema()}

    @r.get("/assistants/{assistant_id}/graph", tags=["assistants"])
    async def assistant_graph(request: Request, assistant_id: str, owner: str = Owner) -> dict[str, Any]:
        return jsonable(request.app.state.graphs.get(assistant_id).get_graph().to_json())

    # threads
    @r.post("/threads/search", response_model=list[Thread], tags=["threads"])
    async def search_threads(request: Request, body: ThreadSearch, owner: str = Owner) -> Any:
        return request.app.state.store.search_threads(owner, status=body.status, metadata=body.metadata,
                                                      limit=body.limit, offset=body.offset)

    @r.get("/threads/{thread_id}", response_model=Thread, tags=["threads"])
    async def get_thread(request: Request, thread_id: str, owner: str = Owner) -> Any:
        thread = _thread_or_404(request, thread_id, owner)
        return {**thread, "values": _state(request, thread)["values"]}

    @r.delete("/threads/{thread_id}", status_code=204, tags=["threads"])
    async def delete_thread(request: Request, thread_id: str, owner: str = Owner) -> Response:
        thread = _thread_or_404(request, thread_id, owner)
        run_id = request.app.state.runs.active_run_of(thread["state_key"])
        if run_id:
            raise HTTPException(409, f"thread {thread_id} has a run in progress ({run_id}); cancel it first")
        request.app.state.store.delete_thread(thread_id, owner)
        request.app.state.checkpointer.delete_thread(thread["state_key"])
        return Response(status_code=204)

    @r.get("/threads/{thread_id}/state", response_model=ThreadState, tags=["threads"])
    async def thread_state(request: Request, thread_id: str, owner: str = Owner) -> Any:
        return _state(request, _thread_or_404(request, thread_id, owner))

    @r.get("/threads/{thread_id}/state/{checkpoint_id}", response_model=ThreadState, tags=["threads"])
    async def thread_state_at(request: Request, thread_id: str, checkpoint_id: str, owner: str = Owner) -> Any:
        return _state(request, _thread_or_404(request, thread_id, owner), checkpoint_id)

    def _history(request: Request, thread_id: str, owner: str, limit: int, before: dict[str, Any] | None) -> Any:
        thread = _thread_or_404(request, thread_id, owner)
        graph_id = thread["metadata"].get("graph_id")
        if not graph_id or graph_id not in request.app.state.graphs.stateful:
            return []
        graph = request.app.state.graphs.get(graph_id)
        config = {"configurable": {"thread_id": thread["state_key"]}}
        before_cfg = {"configurable": {**before, "thread_id": thread["state_key"]}} if before else None
        return [_snapshot(s, thread_id) for s in graph.get_state_history(config, limit=limit, before=before_cfg)]

    @r.post("/threads/{thread_id}/history", response_model=list[ThreadState], tags=["threads"])
    async def thread_history(request: Request, thread_id: str, body: HistoryRequest, owner: str = Owner) -> Any:
        return _history(request, thread_id, owner, body.limit, body.before)

    @r.get("/threads/{thread_id}/history", response_model=list[ThreadState], tags=["threads"])
    async def thread_history_get(request: Request, thread_id: str, limit: int = Query(10, ge=1, le=1000),
                                 owner: str = Owner) -> Any:
        return _history(request, thread_id, owner, limit, None)

    # runs on a thread
    @r.post("/threads/{thread_id}/runs", response_model=Run, tags=["runs"])
    async def create_run(request: Request, thread_id: str, body: RunCreate, owner: str = Owner) -> Any:
        job = _start(request, body, owner, thread_id, stream_modes(body))
        return _live(request, request.app.state.store.get_run(job.run_id, owner))

    @r.post("/threads/{thread_id}/runs/stream", tags=["runs"],
            responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
    async def stream_run(request: Request, thread_id: str, body: RunCreate, owner: str = Owner) -> Response:
        return _sse(request, _start(request, body, owner, thread_id, stream_modes(body)))

    @r.get("/threads/{thread_id}/runs", response_model=list[Run], tags=["runs"])
    async def list_runs(request: Request, thread_id: str, limit: int = Query(10, ge=1, le=1000),
                        offset: int = Query(0, ge=0, le=MAX_OFFSET), status: str | None = None, owner: str = Owner) -> Any:
        _thread_or_404(request, thread_id, owner)
        rows = request.app.state.store.list_runs(owner, thread_id=thread_id, status=status, limit=limit,
                                                 offset=offset)
        return [_live(request, r) for r in rows]

    @r.get("/threads/{thread_id}/runs/{run_id}", response_model=Run, tags=["runs"])
    async def get_run(request: Request, thread_id: str, run_id: str, owner: str = Owner) -> Any:
        return _run_or_404(request, thread_id, run_id, owner)

    @r.post("/threads/{thread_id}/runs/{run_id}/cancel", status_code=202, tags=["runs"])
    async def cancel_run(request: Request, thread_id: str, run_id: str, wait: bool = False,
                         owner: str = Owner) -> Response:
        run = _run_or_404(request, thread_id, run_id, owner)
        runs: RunManager = request.app.state.runs
        job = runs.job(run_id)
        if job is None:
            raise HTTPException(409, f"run {run_id} is {run['status']}, not in progress: nothing to cancel")
        runs.cancel(run_id)
        if wait:
            await runs.wait(job)
        return Response(status_code=202 if not wait else 204)

    @r.get("/threads/{thread_id}/runs/{run_id}/join", tags=["runs"])
    async def join_run(request: Request, thread_id: str, run_id: str, owner: str = Owner) -> Response:
        _run_or_404(request, thread_id, run_id, owner)
        job = request.app.state.runs.job(run_id)
        if job is not None:
            return raw_json(await request.app.state.runs.wait(job))
        return raw_json(_state(request, _thread_or_404(request, thread_id, owner))["values"])

    @r.get("/threads/{thread_id}/runs/{run_id}/stream", tags=["runs"],
           responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
    async def join_stream(request: Request, thread_id: str, run_id: str, owner: str = Owner) -> Response:
        run = _run_or_404(request, thread_id, run_id, owner)
        job = request.app.state.runs.job(run_id)
        if job is None:
            raise HTTPException(409, f"run {run_id} is {run['status']}; join streams only a run in progress "
                                     "(GET .../join gives a finished run's result)")
        return _sse(request, job)

    # stateless runs
    @r.post("/runs/wait", tags=["stateless runs"])
    async def stateless_wait(request: Request, body: RunCreate, owner: str = Owner) -> Response:
        job = _start(request, body, owner, None, frozenset())
        return raw_json(await request.app.state.runs.wait(job))

    @r.post("/runs/stream", tags=["stateless runs"],
            responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
    async def stateless_stream(request: Request, body: RunCreate, owner: str = Owner) -> Response:
        return _sse(request, _start(request, body, owner, None, stream_modes(body)))

    return r
