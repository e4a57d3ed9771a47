"""Runs on a bounded pool of worker threads, with a bounded queue in front of it.

A graph run is synchronous Python (model backends, tools, LangGraph's sync checkpointer), so
each run goes whole to a worker thread: one hop per run, not one per node. Load beyond
``workers + queue_size`` is refused at once (the API turns that into 503 with Retry-After)
instead of piling up memory. The worker appends each event to the run's buffer; the event loop
is woken only when someone is watching (a stream, a join), so a plain wait costs one wake-up.

Cancelling is cooperative: the worker closes the run's event stream at the next event, which
the runner records as interrupted, and the thread's last checkpoint is where a later run
resumes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from langgraph.types import Command

from agentrt.runner import RunEvent, stream_run
from agentrt.server.serialize import dumps, jsonable
from agentrt.server.store import ServerStore
from agentrt.trajectory_store import TrajectoryStore, TrajectoryStoreError


class Busy(Exception):
    """Every worker is busy and the queue is full: come back later."""


class ThreadBusy(Exception):
    """The thread already has a run in progress."""


@dataclass
class RunJob:
    run_id: str
    thread_id: str | None
    owner: str
    assistant_id: str
    graph: Any
    input: Any
    config: dict[str, Any]
    modes: frozenset[str]
    stream_kwargs: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    events: list[tuple[str, bytes]] = field(default_factory=list)
    output: dict[str, Any] | None = None
    answer: str | None = None  # the runner's final answer (what the OpenAI endpoint replies)
    status: str = "pending"
    error: str | None = None
    cancel_requested: bool = False
    watched: bool = False
    done: asyncio.Future[Any] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def state_key(self) -> str | None:
        """The thread's key in the checkpointer (thread ids are per API key)."""
        return self.config.get("configurable", {}).get("thread_id")


class RunManager:
    def __init__(self, store: ServerStore, trajectories: TrajectoryStore, *, workers: int, queue_size: int) -> None:
        self.store, self.trajectories = store, trajectories
        self.workers, self.capacity = workers, workers + queue_size
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="agentrt-run")
        self._jobs: dict[str, RunJob] = {}
        self._threads: dict[str, str] = {}  # thread_id -> run_id of its active run
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    @property
    def active(self) -> int:
        return len(self._jobs)

    def job(self, run_id: str) -> RunJob | None:
        return self._jobs.get(run_id)

    def active_run_of(self, state_key: str) -> str | None:
        return self._threads.get(state_key)

    def submit(self, job: RunJob, *, recovered: bool = False) -> RunJob:
        """Queue ``job``; raises :class:`Busy` beyond capacity, :class:`ThreadBusy` if its
        thread is running something already. The run row is written before the worker sees it.
        A ``recovered`` job (queued before a crash) already has its row and is never refused."""
        self._loop = self._loop or asyncio.get_running_loop()
        with self._lock:
            if len(self._jobs) >= self.capacity and not recovered:
                raise Busy
            if job.thread_id and job.state_key in self._threads:
                raise ThreadBusy(self._threads[job.state_key])
            self._jobs[job.run_id] = job
            if job.thread_id:
                self._threads[job.state_key] = job.run_id
        job.done = self._loop.create_future()
        try:
            if not recovered:
                self.store.begin_run(
                    run_id=job.run_id, thread_id=job.thread_id, owner=job.owner, assistant_id=job.assistant_id,
                    metadata=job.config.get("metadata", {}), kwargs=run_kwargs(job),
                )
            self._pool.submit(self._execute, job)
        except BaseException:
            self._release(job)
            raise
        return job

    def cancel(self, run_id: str) -> bool:
        job = self._jobs.get(run_id)
        if job is None:
            return False
        job.cancel_requested = True
        return True

    async def wait(self, job: RunJob) -> dict[str, Any]:
        assert job.done is not None
        return await asyncio.shield(job.done)

    async def watch(self, job: RunJob) -> AsyncIterator[tuple[str, bytes]]:
        """Every event of ``job`` from its start (so a late joiner misses nothing), then its end."""
        job.watched = True
        seen = 0
        while True:
            job.changed.clear()
            with self._lock:
                new = job.events[seen:]
            seen += len(new)
            for item in new:
                yield item
            if job.done is not None and job.done.done() and seen == len(job.events):
                return
            await job.changed.wait()

    def shutdown(self, timeout: float = 3.0) -> None:
        """Stop: queued runs stay pending (the next start runs them); runs in progress are asked
        to stop at their next step and get ``timeout`` seconds to do so; any still going then (a
        long tool call) are marked interrupted here, since the process is about to exit."""
        with self._lock:
            jobs = list(self._jobs.values())
        self._stopping = True
        for job in jobs:
            job.cancel_requested = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout
        for job in jobs:
            if job.status != "running":
                continue
            while job.status == "running" and time.monotonic() < deadline:
                time.sleep(0.02)
            if job.status == "running":
                job.status, job.error = "interrupted", "the server was stopped during this run"
                self.store.end_run(job.run_id, "interrupted", job.error, job.thread_id, "interrupted")
                try:
                    self.trajectories.finish_run(job.run_id, status="interrupted", error=job.error)
                except TrajectoryStoreError:
                    pass  # not recorded yet: nothing to close

    # worker side
    def _publish(self, job: RunJob, event: str, data: Any) -> None:
        if event not in job.modes:
            return
        with self._lock:
            job.events.append((event, dumps(data)))
        if job.watched:
            self._call(job.changed.set)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the server is stopping
            pass

    def _execute(self, job: RunJob) -> None:
        if self._stopping:
            return  # the server is stopping: the run stays pending and runs after the restart
        interrupts: list[Any] = []
        result = None
        try:
            if job.cancel_requested:
                if self._stopping:  # the server is stopping: it stays pending and runs after the restart
                    return
                job.status, job.error = "interrupted", "cancelled before it started"
                return
            self.store.set_running(job.run_id)  # before any work: a crash from here on interrupts it
            job.status = "running"
            events = stream_run(
                job.graph, job.assistant_id, job.input, job.config, self.trajectories,
                tokens="messages" in job.modes, values="values" in job.modes, run_id=job.run_id,
                metadata={"owner": job.owner, "assistant_id": job.assistant_id}, **job.stream_kwargs,
            )
            for ev in events:
                if job.cancel_requested:
                    events.close()
                    job.status, job.error = "interrupted", "cancelled"
                    return
                self._on_event(job, ev, interrupts)
                if ev.kind == "end":
                    result = ev.data
            assert result is not None
            job.status = {"completed": "success", "failed": "error"}.get(result.status, "interrupted")
            job.error = result.error
            job.answer = result.answer
            job.output = {**jsonable(result.state or {})}
            if interrupts:
                job.output["__interrupt__"] = interrupts
            if job.status == "error":
                job.output["__error__"] = {"error": (result.error or "").split(":")[0], "message": result.error}
        except Exception as exc:  # noqa: BLE001 - a bug in the server's own bookkeeping: the run fails, the server goes on
            job.status, job.error = "error", f"{type(exc).__name__}: {exc}"
            job.output = {"__error__": {"error": type(exc).__name__, "message": str(exc)}}
        finally:
            self._finish(job, interrupts)

    def _on_event(self, job: RunJob, ev: RunEvent, interrupts: list[Any]) -> None:
        if ev.kind == "values":
            self._publish(job, "values", ev.data)
        elif ev.kind == "update":
            if ev.node == "__interrupt__":
                interrupts.extend(jsonable(ev.data["interrupts"]))
                self._publish(job, "updates", {"__interrupt__": interrupts})
            else:
                self._publish(job, "updates", {ev.node: ev.data})
        elif ev.kind == "token":
            chunk = {"type": "AIMessageChunk", "content": ev.data, "id": job.run_id}
            self._publish(job, "messages", [chunk, {"langgraph_node": ev.node, "run_id": job.run_id}])

    def _finish(self, job: RunJob, interrupts: list[Any]) -> None:
        if job.output is None:
            job.output = {}
        if job.error and job.status == "interrupted":
            job.output.setdefault("__error__", {"error": "Cancelled", "message": job.error})
        thread_status = {"success": "idle", "error": "error"}.get(job.status, "interrupted")
        if job.status == "interrupted" and not interrupts:
            thread_status = "idle"  # cancelled: the thread can take a new run
        try:
            if job.status != "pending":  # a run never started (the server is stopping) keeps its queued row
                self.store.end_run(job.run_id, job.status, job.error, job.thread_id, thread_status)
        finally:
            self._call(self._settle, job)

    def _settle(self, job: RunJob) -> None:
        self._release(job)
        if job.done is not None and not job.done.done():
            job.done.set_result(job.output)
        job.changed.set()

    def _release(self, job: RunJob) -> None:
        with self._lock:
            self._jobs.pop(job.run_id, None)
            if job.thread_id and self._threads.get(job.state_key) == job.run_id:
                del self._threads[job.state_key]


def run_kwargs(job: RunJob) -> dict[str, Any]:
    """The request as stored with the run: enough to start it again after a crash."""
    if isinstance(job.input, Command):
        goto = job.input.goto
        payload = {"command": {"resume": jsonable(job.input.resume), "update": jsonable(job.input.update),
                               "goto": list(goto) if isinstance(goto, (list, tuple)) else goto or None}}
    else:
        payload = {"input": jsonable(job.input)}
    return {**payload, "config": jsonable(job.config), "stream_mode": sorted(job.modes), **{
        k: jsonable(v) for k, v in job.stream_kwargs.items() if v is not None}}
