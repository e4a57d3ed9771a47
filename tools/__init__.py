"""agentrt's built-in tools: a calculator, a Python runner, a web fetcher, a file reader and a
document search.

Each module exports a ready-made tool with safe defaults and, where limits or scope are a
deployment decision, a factory to make one with other settings (``make_python_exec``,
``make_http_get``, ``make_read_file``, ``make_search``). ``BUILTIN_TOOLS`` maps each tool's name to its default
instance, for looking tools up by name (e.g. from a config file or the CLI).
"""

from agentrt.tools.calculator import calculator
from agentrt.tools.http_get import http_get, make_http_get
from agentrt.tools.python_exec import make_python_exec, python_exec
from agentrt.tools.read_file import make_read_file, read_file
from agentrt.tools.search import make_search, search
from langchain_core.tools import BaseTool

BUILTIN_TOOLS: dict[str, BaseTool] = {t.name: t for t in (calculator, python_exec, http_get, read_file, search)}

__all__ = [
    "BUILTIN_TOOLS",
    "calculator",
    "http_get",
    "make_http_get",
    "make_python_exec",
    "make_read_file",
    "make_search",
    "python_exec",
    "read_file",
    "search",
]
