"""Which API key goes to which model endpoint.

A key belongs to one endpoint, configured by whoever runs agentrt, and is never sent to an
address that only a model spec named: a served run's spec can come from a client, and a key
sent wherever a spec points is a key handed to whoever runs that address. So:

- ``OPENAI_API_KEY`` goes only to the OpenAI API (``openai:MODEL`` specs);
- ``AGENTRT_API_KEY`` goes only to the endpoint ``AGENTRT_API_BASE`` names (for example
  ``http://127.0.0.1:8000/v1``), compared after normalising scheme, host, port and path;
- every other ``http(s)://`` spec is called with no key.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

KEY_VAR, BASE_VAR = "AGENTRT_API_KEY", "AGENTRT_API_BASE"


def normalise(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) with defaults filled in and trailing slashes dropped."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:  # a port that is not a number: this never equals a configured endpoint
        port = -1
    return scheme, (parts.hostname or "").lower().rstrip("."), port, parts.path.rstrip("/")


def key_for(base_url: str) -> str | None:
    """``AGENTRT_API_KEY`` if ``base_url`` is the endpoint ``AGENTRT_API_BASE`` configures, else None."""
    key, base = os.environ.get(KEY_VAR), os.environ.get(BASE_VAR)
    if not key or not base:
        return None
    return key if normalise(base) == normalise(base_url) else None


def openai_key() -> str | None:
    return os.environ.get("OPENAI_API_KEY")


def missing_key_hint(base_url: str | None) -> str:
    """What to set when an endpoint says the key is missing or wrong."""
    if base_url is None:
        return "Check OPENAI_API_KEY."
    if os.environ.get(KEY_VAR) and not key_for(base_url):
        return (f"{KEY_VAR} is set but was not sent: it goes only to the endpoint in {BASE_VAR} "
                f"(set {BASE_VAR}={base_url} if this endpoint is the one it is for).")
    return f"Set {KEY_VAR} and {BASE_VAR}={base_url} to send a key to this endpoint."
