"""One base for every error a user can act on.

Each subsystem raises its own subclass (``ModelError``, ``TrajectoryStoreError``, ...), whose
message says what was wrong and what to do. The command line prints any :class:`AgentrtError` as
one red line and exits 2; the server maps them to HTTP statuses. Anything else is a bug.
"""

from __future__ import annotations


class AgentrtError(Exception):
    """A problem the user can fix; the message says how."""
