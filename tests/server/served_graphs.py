"""Graphs the server tests serve, in the server's own process: a tool agent whose scripted model
calls ``calculator`` (for human-in-the-loop approval) and one that naps (for cancel, queueing and
kill -9 durability)."""

from __future__ import annotations

import time

from agentrt.tools import calculator, http_get, python_exec, read_file
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from agentrt.agent import build_tool_agent
from agentrt.models import registry
from agentrt.models.scripted import ScriptedChatModel, call
from agentrt.tool import tool


def _calc_script(messages: list[BaseMessage]) -> AIMessage:
    """Ask the calculator the user's expression; once it answered (or was refused), say so."""
    last = messages[-1]
    if isinstance(last, ToolMessage):
        return AIMessage(content=f"result: {last.content}")
    return call("calculator", expression=str(last.content))


@tool(timeout=30)
def nap(seconds: float) -> str:
    """Sleep, standing in for a slow tool.

    Args:
        seconds: how long
    """
    time.sleep(seconds)
    return "rested"


def _nap_script(messages: list[BaseMessage]) -> AIMessage:
    last = messages[-1]
    if isinstance(last, ToolMessage):
        return AIMessage(content="done napping")
    return call("nap", seconds=float(str(last.content)))


registry.register("scripted:calc", ScriptedChatModel(spec="scripted:calc", script=_calc_script))
registry.register("scripted:nap", ScriptedChatModel(spec="scripted:nap", script=_nap_script))

calc = build_tool_agent([calculator], system_prompt="You are a calculator.", default_model="scripted:calc").compile(
    name="calc")
slow = build_tool_agent([nap], default_model="scripted:nap").compile(name="slow")


def _relay(tool_name: str, arg: str):
    """A script that calls ``tool_name`` with the user's message as ``arg``, then repeats what the
    tool said: so a test sends an attack through the real server and reads back its outcome."""

    def script(messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return AIMessage(content=f"[{last.status}] {last.content}")
        return call(tool_name, **{arg: str(last.content)})

    return script


registry.register("scripted:exec", ScriptedChatModel(spec="scripted:exec", script=_relay("python_exec", "code")))
registry.register("scripted:files", ScriptedChatModel(spec="scripted:files", script=_relay("read_file", "path")))
registry.register("scripted:fetch", ScriptedChatModel(spec="scripted:fetch", script=_relay("http_get", "url")))

# What a model may make the server run: code, files, URLs (the real tools, default limits).
exec_agent = build_tool_agent([python_exec], default_model="scripted:exec").compile(name="exec")
files_agent = build_tool_agent([read_file], default_model="scripted:files").compile(name="files")
fetch_agent = build_tool_agent([http_get], default_model="scripted:fetch").compile(name="fetch")

# A tool-less chat agent on the real SmolLM2 (the end-to-end loop from served runs to a served adapter).
chat = build_tool_agent([], system_prompt="Answer in a few words.", default_model="local:smollm2-135m").compile(
    name="chat")
