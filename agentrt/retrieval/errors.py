"""The errors retrieval raises on purpose: each message says what is wrong and what to do.

They subclass ``ValueError`` so a caller that already reports bad input cleanly (the main CLI
catches ``ValueError`` in its ``KNOWN_ERRORS``) shows them as one line instead of a traceback.
"""

from __future__ import annotations

from agentrt.errors import AgentrtError


class RetrievalError(AgentrtError, ValueError):
    """An index, query or corpus that cannot be used as asked (missing, corrupt, incompatible)."""


class EmbedderError(RetrievalError):
    """An embedder spec that names nothing usable, or an embedding server that fails."""


class CorpusError(RetrievalError):
    """A corpus file that cannot be read into documents (the message names the line)."""
