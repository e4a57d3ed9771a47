"""Graphs the server tests serve, in the server's own process: a tool agent whose scripted model
calls ``calculator`` (for human-in-the-loop approval) and one that naps (for cancel, queueing and
kill -9 durability)."""

from __future__ import annotations

import time

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from agentrt.agent import build_tool_agent
from agentrt.models import registry
from agentrt.models.scripted import ScriptedChatModel, call
from agentrt.tool import tool
from tools import calculator


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

calc = build_tool_agent([calculator], default_model="scripted:calc").compile(name="calc")
slow = build_tool_agent([nap], default_model="scripted:nap").compile(name="slow")
