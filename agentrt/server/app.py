"""agentrt's HTTP server: LangGraph's server API for the manifest's graphs, plus an
OpenAI-compatible face (``/v1``), on FastAPI.

State is durable by default: thread state in LangGraph's SQLite checkpointer, trajectories in
the trajectory store, threads/runs/keys in the server's own table, all under one data folder.
A server that starts again marks what was in flight as interrupted; a new run with no input on
such a thread resumes it from its last checkpoint.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from agentrt.checkpoints import sqlite_checkpointer
from agentrt.errors import AgentrtError
from agentrt.manifest import ManifestError, find_manifest, load_graph, load_manifest
from agentrt.models.base import ModelError
from agentrt.models.registry import set_max_loaded
from agentrt.server import (
    assistants_api,
    openai_api,
    runs_api,
    threads_api,
    trajectories_api,
)
from agentrt.server.auth import Auth
from agentrt.server.limits import BodySizeLimit
from agentrt.server.policy import ModelPolicy
from agentrt.server.run_requests import recovered_job
from agentrt.server.runs import Busy, RunManager, ThreadBusy
from agentrt.server.schemas import (
    Problem,
)
from agentrt.server.store import ServerStore, ServerStoreError
from agentrt.trajectory_store import TrajectoryStore, TrajectoryStoreError


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
    app.add_exception_handler(AgentrtError, _agentrt_error)
    app.include_router(threads_api.router)
    app.include_router(runs_api.router)
    app.include_router(assistants_api.router)
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


async def _agentrt_error(request: Request, exc: AgentrtError) -> JSONResponse:
    """A user-fixable error raised while answering a request: its message, with the status that
    says whose move it is (a model backend that failed: 502; a damaged store: 503; else 400)."""
    if isinstance(exc, ModelError):
        status = 502
    elif isinstance(exc, (TrajectoryStoreError, ServerStoreError)):
        status = 503
    else:
        status = 400
    return _error(request, status, str(exc))
