"""agentrt: an agentic tool-use and retrieval runtime built on LangGraph."""

__version__ = "0.1.0"
