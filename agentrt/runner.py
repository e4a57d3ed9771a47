"""Running any LangGraph graph with its trajectory recorded.

The runner streams the graph (``updates`` for the record, ``messages`` for live tokens) and
writes each node's update to the trajectory store as it happens, so a crash mid-run keeps every
step already taken. It knows no particular graph: the answer is the state's ``answer`` if a graph
sets one, else the last model message; the stop reason is the state's ``stop_reason``, else
"answered".
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, convert_to_messages, message_to_dict
from langgraph.types import Command
from pydantic import BaseModel, Field

from agentrt.agent import final_answer
from agentrt.models.registry import DEFAULT_MODEL
from agentrt.trajectory import INPUT_NODE, PROMPT_NODE, RESUME_NODE, prompt_digest
from agentrt.trajectory_store import TrajectoryStore


class RunResult(BaseModel):
    run_id: str
    thread_id: str | None
    status: str  # completed | failed | interrupted
    answer: str | None
    stop_reason: str | None
    error: str | None = None
    duration_s: float
    state: dict[str, Any] | None = Field(default=None, exclude=True)  # the graph's final state


class RunEvent(BaseModel):
    """What a viewer sees while a run goes: a token, a node's update, or the end."""

    kind: str  # "token" | "update" | "values" | "end"
    node: str | None = None
    data: Any = None


def run_config(
    *, model: str | None = None, thread_id: str | None = None, **configurable: Any
) -> dict[str, Any]:
    conf = {k: v for k, v in configurable.items() if v is not None}
    if model:
        conf["model"] = model
    if thread_id:
        conf["thread_id"] = thread_id
    return {"configurable": conf}


def stream_run(
    graph: Any,
    graph_name: str,
    input: Any,
    config: dict[str, Any],
    store: TrajectoryStore | None,
    *,
    tokens: bool = True,
    values: bool = False,
    run_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    **stream_kwargs: Any,
) -> Iterator[RunEvent]:
    """Run ``graph`` on ``input`` (``None`` resumes the thread's last checkpoint; a
    ``Command`` resumes an interrupt), yielding events; the last one is ``end`` with a
    :class:`RunResult`. ``values=True`` also yields the full state after each step;
    ``stream_kwargs`` go to ``graph.stream`` (``interrupt_before``, ``durability``...).

    Closing the generator early cancels the run: it is recorded as interrupted, and its
    thread's last checkpoint is where a later run resumes."""
    run_id = run_id or str(uuid.uuid4())
    conf = config.setdefault("configurable", {})
    thread_id = conf.get("thread_id")
    config.setdefault("run_id", run_id)  # LangChain callbacks and LangSmith see the same id
    started = time.time()
    if store:
        store.start_run(
            run_id=run_id, thread_id=thread_id, graph=graph_name, model=conf.get("model") or DEFAULT_MODEL,
            input=_describe(input), metadata={"configurable": _json_safe(conf), **(metadata or {})},
            started_at=started,
        )
        record_history(store, run_id, graph, config, at=started)
        record_input(store, run_id, input, at=started)
        config["callbacks"] = _with_recorder(config.get("callbacks"), PromptRecorder(store, run_id))
    state: dict[str, Any] = {}
    status, error, interrupted = "completed", None, False
    modes = ["updates", "values", "messages"] if tokens else ["updates", "values"]
    try:
        for mode, chunk in graph.stream(input, config, stream_mode=modes, **stream_kwargs):
            if mode == "values":
                state = chunk if isinstance(chunk, dict) else {"value": chunk}
                if values:
                    yield RunEvent(kind="values", data=state)
                continue
            if mode == "messages":
                message, meta = chunk
                if isinstance(message.content, str) and message.content and type(message).__name__.endswith("Chunk"):
                    yield RunEvent(kind="token", node=meta.get("langgraph_node"), data=message.content)
                continue
            for node, update in chunk.items():
                if node == "__interrupt__":
                    interrupted = True
                    update = {"interrupts": [{"value": getattr(i, "value", i), "id": getattr(i, "id", None)}
                                             for i in update]}
                if store:
                    store.add_event(run_id, node, _payload(update))
                yield RunEvent(kind="update", node=node, data=update)
    except KeyboardInterrupt:
        status, error = "interrupted", "stopped by the user"
        raise
    except GeneratorExit:
        status, error = "interrupted", "cancelled"
        raise
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        answer = final_answer(state) if status == "completed" else None
        stop_reason = "interrupt" if interrupted else state.get("stop_reason") or ("answered" if answer else None)
        if interrupted:
            status = "interrupted"
        if store:
            store.finish_run(run_id, status=status, final_answer=answer, stop_reason=stop_reason, error=error)
    yield RunEvent(
        kind="end",
        data=RunResult(
            run_id=run_id, thread_id=thread_id, status=status, answer=answer, stop_reason=stop_reason,
            error=error, duration_s=time.time() - started, state=state,
        ),
    )


def run(graph: Any, graph_name: str, input: Any, config: dict[str, Any], store: TrajectoryStore | None) -> RunResult:
    """Run to the end without streaming tokens; the result of :func:`stream_run`."""
    *_, end = stream_run(graph, graph_name, input, config, store, tokens=False)
    return end.data


def record_call(store: TrajectoryStore, *, graph: str, model: str, prompt: list[BaseMessage], reply: Any,
                tools: list[dict[str, Any]], metadata: dict[str, Any]) -> str:
    """One model call recorded as a whole run, as the runner records a graph's: the prompt's
    messages, the system prompt and tools it was offered, the reply. For samples drawn outside a
    graph (RFT's single-turn tasks), so they read back, export and train like any run."""
    run_id = str(uuid.uuid4())
    store.start_run(run_id=run_id, thread_id=None, graph=graph, model=model, input=_describe({"messages": prompt}),
                    metadata=metadata)
    record_input(store, run_id, {"messages": prompt})
    store.add_event(run_id, PROMPT_NODE, _prompt_event(prompt, tools)[1])
    store.add_event(run_id, "model", _payload({"messages": [reply]}))
    store.finish_run(run_id, status="completed", final_answer=str(reply.content).strip() or None,
                     stop_reason="answered")
    return run_id


def record_history(store: TrajectoryStore, run_id: str, graph: Any, config: dict[str, Any], at: float) -> None:
    """On a thread, the conversation the run continues (what the model will see before the new
    input): a resumed run's record then holds the whole exchange, e.g. the user's question and
    the model's original tool call that a reviewer edited, not only what came after."""
    if not config.get("configurable", {}).get("thread_id") or getattr(graph, "checkpointer", None) is None:
        return
    try:
        values = graph.get_state(config).values
    except Exception:  # noqa: BLE001 - no usable checkpoint: the run itself will say what is wrong
        return
    prior = values.get("messages") if isinstance(values, dict) else None
    if prior:
        store.add_event(run_id, INPUT_NODE, _payload({"messages": _messages(prior)}), at=at)


def record_input(store: TrajectoryStore, run_id: str, input: Any, at: float | None = None) -> None:
    """The run's input as its first event, in every form a graph accepts: LangChain messages,
    OpenAI-style dicts, ``(role, text)`` pairs or bare strings become messages; a ``Command``
    records its resume value (a reviewer's decision) and any messages it adds."""
    if input is None:
        return
    if isinstance(input, Command):
        update = input.update if isinstance(input.update, dict) else {}
        if input.resume is not None:
            store.add_event(run_id, RESUME_NODE, {"resume": _json_safe(input.resume)}, at=at)
        if update.get("messages"):
            store.add_event(run_id, INPUT_NODE, _payload({"messages": _messages(update["messages"])}), at=at)
        return
    if isinstance(input, dict) and "messages" in input:
        input = {**input, "messages": _messages(input["messages"])}
    store.add_event(run_id, INPUT_NODE, _payload(input), at=at)


def _messages(raw: Any) -> list[BaseMessage]:
    try:
        return convert_to_messages(raw if isinstance(raw, list) else [raw])
    except Exception:  # noqa: BLE001 - LangChain raises KeyError too; the graph itself will refuse it
        return []


class PromptRecorder(BaseCallbackHandler):
    """Records, once per distinct pair in a run, the system prompt and tool schemas a chat model
    was called with, read from LangChain's own callback (so it sees every model call of every
    graph, whichever node makes it). Each reply of an agentrt model names its pair by the same
    digest (``response_metadata["prompt_id"]``)."""

    def __init__(self, store: TrajectoryStore, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any) -> None:
        tools = (kwargs.get("invocation_params") or {}).get("tools") or []
        for batch in messages:
            digest, event = _prompt_event(batch, tools)
            with self._lock:
                if digest in self._seen:
                    continue
                self._seen.add(digest)
            self.store.add_event(self.run_id, PROMPT_NODE, event)


def _prompt_event(messages: list[BaseMessage], tools: list[Any]) -> tuple[str, dict[str, Any]]:
    """(id, payload) of a prompt record: the system prompt and tools, under the id models stamp."""
    system, digest = prompt_digest(messages, tools)
    return digest, {"id": digest, "system": system, "tools": _json_safe(list(tools))}


def _with_recorder(callbacks: Any, recorder: PromptRecorder) -> Any:
    if callbacks is None:
        return [recorder]
    if isinstance(callbacks, list):
        return [*callbacks, recorder]
    manager = callbacks.copy()  # a callback manager
    manager.add_handler(recorder, inherit=True)
    return manager


def _payload(update: Any) -> dict[str, Any]:
    """A node update as JSON: messages losslessly (LangChain's own dict form), the rest as-is
    where it is JSON and as text where it is not."""
    if not isinstance(update, dict):
        return {"value": _json_safe(update)}
    out: dict[str, Any] = {}
    for key, value in update.items():
        if key == "messages":
            items = value if isinstance(value, list) else [value]
            out[key] = [message_to_dict(m) for m in items if isinstance(m, BaseMessage)]
        else:
            out[key] = _json_safe(value)
    return out


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _describe(input: Any) -> str:
    if input is None:
        return "(resume)"
    if isinstance(input, Command):
        return f"(resume: {input.resume!r})"[:500]
    if isinstance(input, dict) and input.get("messages"):
        last = input["messages"][-1]
        return str(getattr(last, "content", last))
    return json.dumps(_json_safe(input))[:2000]
