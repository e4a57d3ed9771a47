"""The plain tool-calling agent over the document index: the model calls ``search`` as often as
it likes, then answers. The baseline CR-Planner and SIM-RAG are compared against.

Configurable per run like ``react`` (``model``, sampling, ``max_steps``, ``max_tool_calls``,
``max_seconds``).
"""

from agentrt.tools import search

from agentrt.agent import Budget, build_tool_agent

SYSTEM_PROMPT = (
    "You answer questions using a search tool over Wikipedia paragraphs. Call search with a few "
    "keywords to find the facts you need; search again if the passages do not answer. Then reply "
    "with the shortest possible answer: a name, a date, a number, or yes/no."
)

graph = build_tool_agent([search], system_prompt=SYSTEM_PROMPT, budget=Budget(max_steps=4)).compile(name="rag_agent")
