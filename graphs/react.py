"""The tool-calling agent: model, tools, back to the model until it answers.

Configurable per run (``config["configurable"]``): ``model`` (a model spec), sampling
parameters (``temperature``, ``max_tokens``, ``seed``...) and budgets (``max_steps``,
``max_tool_calls``, ``max_seconds``).
"""

from agentrt.tools import calculator, http_get, python_exec, read_file

from agentrt.agent import build_tool_agent

SYSTEM_PROMPT = (
    "You are a careful assistant with tools. Call a tool when it gives a more reliable answer "
    "(arithmetic, code, web pages, files); answer directly otherwise. When a tool result "
    "answers the question, reply with the final answer in one short sentence."
)

TOOLS = [calculator, python_exec, http_get, read_file]

graph = build_tool_agent(TOOLS, system_prompt=SYSTEM_PROMPT).compile(name="react")
