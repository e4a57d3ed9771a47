"""The OpenAI-compatible backend against a fake ``/v1/chat/completions`` server on 127.0.0.1.

The fake server records every request body it receives and answers from a per-test script: a
list of :class:`Reply` (one per request, in order) or a function of the request body. Replies are
JSON, or SSE events when the test streams. Everything goes through the real ``openai`` client, so
retries, error mapping and streaming are exercised as they run against vLLM, llama.cpp or OpenAI.
"""

from __future__ import annotations

import functools
import json
import operator
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from agentrt.tools import calculator
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from agentrt.models import registry
from agentrt.models.base import ModelError
from agentrt.models.openai_backend import OpenAIChatModel
from agentrt.models.registry import load_model
from agentrt.tool_runner import run_tool_calls, tools_by_name

# ---------------------------------------------------------------------------------- fake server


@dataclass
class Reply:
    body: Any = None  # a JSON body ...
    events: list[dict[str, Any]] | None = None  # ... or these SSE events, then [DONE]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Script = list[Reply] | Callable[[dict[str, Any]], Reply]


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: Script = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                script = fake.script
                reply = script(body) if callable(script) else script.pop(0)
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                if reply.events is None:
                    data = json.dumps(reply.body).encode()
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()  # HTTP/1.0: the stream ends when the connection closes
                for event in [*reply.events, "[DONE]"]:
                    self.wfile.write(f"data: {event if event == '[DONE]' else json.dumps(event)}\n\n".encode())
                    self.wfile.flush()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.spec = f"{self.base_url}#fake-model"
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()

    def model(self, **fields: Any) -> OpenAIChatModel:
        """A model built directly, for client settings the registry does not expose."""
        return OpenAIChatModel(spec=self.spec, model="fake-model", base_url=self.base_url, **fields)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    monkeypatch.setattr(registry, "_loaded", OrderedDict())  # load_model caches per spec
    monkeypatch.delenv("AGENTRT_API_KEY", raising=False)
    fake = FakeOpenAI()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def completion(*contents: str | None, tool_calls: list[dict[str, Any]] | None = None,
               finish_reason: str = "stop", usage: tuple[int, int] = (12, 5)) -> Reply:
    """A chat.completion body: one choice per content (one empty choice if none)."""
    choices = [
        {"index": i, "finish_reason": finish_reason,
         "message": {"role": "assistant", "content": c, "tool_calls": tool_calls}}
        for i, c in enumerate(contents or [None])
    ]
    return Reply({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "fake-model", "choices": choices,
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
    })


def native_call(name: str, arguments: str, id: str = "call_1") -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chunk(delta: dict[str, Any] | None = None, finish_reason: str | None = None,
          usage: tuple[int, int] | None = None) -> dict[str, Any]:
    """A chat.completion.chunk: a delta, or (with ``usage``) the final usage-only chunk."""
    event: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                             "model": "fake-model", "choices": []}
    if usage:
        event["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    else:
        event["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}]
    return event


def streamed_text(*pieces: str, usage: tuple[int, int] = (9, 4)) -> Reply:
    return Reply(events=[
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": p}) for p in pieces),
        chunk({}, finish_reason="stop"),
        chunk(usage=usage),
    ])


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return Reply(body, status=status, headers=headers or {})


CALC = [calculator]
QUESTION = [HumanMessage("What is 17 * 23 + 4?")]

# ---------------------------------------------------------------------------------- plain calls


def test_plain_answer_carries_usage_and_metadata(server: FakeOpenAI) -> None:
    server.script = [completion("Hello there.", usage=(12, 5))]
    reply = load_model(server.spec).invoke([HumanMessage("Hi")])

    assert reply.content == "Hello there."
    assert reply.usage_metadata == {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17}
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.response_metadata["latency_s"] >= 0
    assert reply.response_metadata["model"] == server.spec
    (request,) = server.requests
    assert request["model"] == "fake-model"
    assert request["messages"] == [{"role": "user", "content": "Hi"}]
    assert "tools" not in request


def test_native_tool_calls_become_langchain_tool_calls(server: FakeOpenAI) -> None:
    server.script = [completion(tool_calls=[native_call("calculator", '{"expression": "17 * 23 + 4"}')],
                                finish_reason="tool_calls")]
    reply = load_model(server.spec).bind_tools(CALC).invoke(QUESTION)

    assert reply.tool_calls == [
        {"name": "calculator", "args": {"expression": "17 * 23 + 4"}, "id": "call_1", "type": "tool_call"}
    ]
    assert reply.invalid_tool_calls == []
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    (tool,) = server.requests[0]["tools"]
    assert tool["type"] == "function"
    assert tool["function"]["name"] == "calculator"
    assert tool["function"]["parameters"]["properties"]["expression"]["type"] == "string"


def test_tool_call_arguments_that_are_not_json_become_invalid_tool_calls(server: FakeOpenAI) -> None:
    server.script = [completion(tool_calls=[native_call("calculator", '{"expression": 17 *')])]
    reply = load_model(server.spec).bind_tools(CALC).invoke(QUESTION)

    assert reply.tool_calls == []
    (bad,) = reply.invalid_tool_calls
    assert (bad["name"], bad["id"], bad["args"]) == ("calculator", "call_1", '{"expression": 17 *')
    assert "JSON" in bad["error"]


def test_invalid_tool_call_is_sent_back_paired_with_its_error(server: FakeOpenAI) -> None:
    """OpenAI rejects a tool message that answers no tool call of the assistant turn before it."""
    server.script = [completion(tool_calls=[native_call("calculator", "{oops")]), completion("Sorry.")]
    model = load_model(server.spec).bind_tools(CALC)
    turn = model.invoke(QUESTION)
    model.invoke([*QUESTION, turn, *run_tool_calls(turn, tools_by_name(CALC))])

    assistant, tool = server.requests[1]["messages"][1:]
    (call,) = assistant["tool_calls"]
    assert call["id"] == "call_1" and call["function"]["name"] == "calculator"
    assert tool["role"] == "tool" and tool["tool_call_id"] == "call_1" and "Error" in tool["content"]


def test_tool_call_written_as_text_is_parsed(server: FakeOpenAI) -> None:
    """A plain vLLM / llama.cpp server without a tool parser returns the call as content."""
    text = 'Let me compute.\n<tool_call>{"name": "calculator", "arguments": {"expression": "17*23+4"}}</tool_call>'
    server.script = [completion(text)]
    reply = load_model(server.spec).bind_tools(CALC).invoke(QUESTION)

    (call,) = reply.tool_calls
    assert (call["name"], call["args"]) == ("calculator", {"expression": "17*23+4"})
    assert call["id"]
    assert reply.content == "Let me compute."


def test_sampling_params_reach_the_server(server: FakeOpenAI) -> None:
    server.script = [completion("a"), completion("x", "y", "z", usage=(10, 3))]
    model = load_model(server.spec, temperature=0.7, top_p=0.9, max_tokens=64, seed=7, stop=["END"])
    model.invoke([HumanMessage("Hi")])
    samples = model.sample([HumanMessage("Hi")], n=3)

    first, second = server.requests
    assert {k: first[k] for k in ("temperature", "top_p", "max_tokens", "seed", "n", "stop")} == {
        "temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "seed": 7, "n": 1, "stop": ["END"],
    }
    assert second["n"] == 3 and second["temperature"] == 0.7 and second["seed"] == 7
    assert [s.content for s in samples] == ["x", "y", "z"]
    assert all(isinstance(s, AIMessage) for s in samples)


def test_greedy_defaults_and_per_call_overrides(server: FakeOpenAI) -> None:
    server.script = [completion("a"), completion("b")]
    model = load_model(server.spec)
    model.invoke([HumanMessage("Hi")])
    model.invoke([HumanMessage("Hi")], stop=["\n"], max_tokens=8)

    default, override = server.requests
    assert (default["temperature"], default["n"], default["max_tokens"]) == (0.0, 1, 512)
    assert "seed" not in default and "stop" not in default
    assert (override["stop"], override["max_tokens"]) == (["\n"], 8)


# ---------------------------------------------------------------------------------- errors


def test_rate_limit_and_server_error_are_retried_by_the_client(server: FakeOpenAI) -> None:
    server.script = [error(429, "slow down", {"Retry-After": "0"}), error(500, "boom"), completion("finally")]
    started = time.perf_counter()
    reply = server.model(max_retries=2).invoke([HumanMessage("Hi")])

    assert reply.content == "finally"
    assert len(server.requests) == 3
    assert time.perf_counter() - started < 5  # the client's backoff: ~0.5 s, then ~1 s


@pytest.mark.parametrize(("status", "message"), [(400, "max_tokens is too large"), (401, "Incorrect API key")])
def test_client_errors_raise_model_error_without_retrying(server: FakeOpenAI, status: int, message: str) -> None:
    server.script = [error(status, message)]
    with pytest.raises(ModelError) as info:
        load_model(server.spec).invoke([HumanMessage("Hi")])

    assert f"HTTP {status}" in str(info.value)
    assert message in str(info.value)
    assert len(server.requests) == 1


def test_unreachable_server_raises_model_error() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = OpenAIChatModel(spec="dead", model="m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(ModelError, match="cannot reach"):
        model.invoke([HumanMessage("Hi")])


def test_openai_spec_without_api_key_says_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_loaded", OrderedDict())
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        load_model("openai:gpt-4o-mini")


# ---------------------------------------------------------------------------------- streaming


def test_stream_yields_text_chunk_by_chunk_with_usage(server: FakeOpenAI) -> None:
    server.script = [streamed_text("The ", "answer ", "is 395.", usage=(9, 4))]
    chunks = list(load_model(server.spec).stream([HumanMessage("Hi")]))

    assert [c.content for c in chunks if c.content] == ["The ", "answer ", "is 395."]
    merged = functools.reduce(operator.add, chunks)
    assert merged.content == "The answer is 395."
    assert merged.usage_metadata == {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13}
    assert merged.response_metadata["finish_reason"] == "stop"
    (request,) = server.requests
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}


def test_streamed_native_tool_call_merges_into_a_tool_call(server: FakeOpenAI) -> None:
    server.script = [Reply(events=[
        chunk({"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_9", "type": "function", "function": {"name": "calculator", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"expres'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'sion": "17 * 23 + 4"}'}}]}),
        chunk({}, finish_reason="tool_calls"),
        chunk(usage=(20, 11)),
    ])]
    chunks = list(load_model(server.spec).bind_tools(CALC).stream(QUESTION))

    merged = functools.reduce(operator.add, chunks)
    assert merged.tool_calls == [
        {"name": "calculator", "args": {"expression": "17 * 23 + 4"}, "id": "call_9", "type": "tool_call"}
    ]
    assert merged.usage_metadata == {"input_tokens": 20, "output_tokens": 11, "total_tokens": 31}
    assert merged.response_metadata["finish_reason"] == "tool_calls"


def test_streamed_text_tool_call_is_held_back_and_parsed(server: FakeOpenAI) -> None:
    server.script = [streamed_text(
        "Let me compute. <tool", '_call>{"name": "calculator", ', '"arguments": {"expression": "2+2"}}</tool_call>'
    )]
    chunks = list(load_model(server.spec).bind_tools(CALC).stream(QUESTION))

    assert "".join(str(c.content) for c in chunks) == "Let me compute."  # the call text never shows
    merged = functools.reduce(operator.add, chunks)
    (call,) = merged.tool_calls
    assert (call["name"], call["args"]) == ("calculator", {"expression": "2+2"})


# ---------------------------------------------------------------------------------- agent graph


def react_script() -> Callable[[dict[str, Any]], Reply]:
    """Call the calculator first; answer once the tool result "395" is in the conversation."""

    def respond(body: dict[str, Any]) -> Reply:
        if any(m["role"] == "tool" and m["content"] == "395" for m in body["messages"]):
            return streamed_text("The answer ", "is 395.") if body.get("stream") else completion("The answer is 395.")
        if body.get("stream"):  # as a server without a tool parser streams it: plain text
            return streamed_text('<tool_call>{"name": "calculator", "arguments": {"expression": "17 * 23 + 4"}}</tool_call>')
        return completion(tool_calls=[native_call("calculator", '{"expression": "17 * 23 + 4"}')],
                          finish_reason="tool_calls")

    return respond


def test_react_graph_calls_the_calculator_then_answers(server: FakeOpenAI) -> None:
    from agentrt.graphs.react import graph

    server.script = react_script()
    state = graph.invoke({"messages": list(QUESTION)}, config={"configurable": {"model": server.spec}})

    human, call, result, answer = state["messages"]
    assert call.tool_calls[0]["name"] == "calculator"
    assert isinstance(result, ToolMessage) and result.content == "395"
    assert answer.content == "The answer is 395."
    assert len(server.requests) == 2
    (tool_message,) = [m for m in server.requests[1]["messages"] if m["role"] == "tool"]
    assert (tool_message["tool_call_id"], tool_message["content"]) == ("call_1", "395")


def test_react_graph_streaming_tokens_from_a_server_without_tool_parser(server: FakeOpenAI) -> None:
    """With ``stream_mode="messages"`` (the runner's token stream) the model streams; a call
    written as text must still reach the tool node."""
    from agentrt.graphs.react import graph

    server.script = react_script()
    config = {"configurable": {"model": server.spec}}
    tokens, final = [], None
    for mode, data in graph.stream({"messages": list(QUESTION)}, config, stream_mode=["messages", "values"]):
        if mode == "messages" and data[1]["langgraph_node"] == "model":
            tokens.append(data[0].content)
        elif mode == "values":
            final = data

    assert all(r["stream"] for r in server.requests)
    assert [m.content for m in final["messages"][2:]] == ["395", "The answer is 395."]
    assert "<tool_call>" not in "".join(tokens)
