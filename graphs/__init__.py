"""Agent graphs people run and serve. Each module exposes a compiled LangGraph ``graph``."""
