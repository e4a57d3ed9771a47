"""API keys: who is calling, so each key sees only its own threads and runs.

Keys are made by ``agentrt keys create`` and only their SHA-256 is stored. A server requires a
key as soon as one exists (or when told to); without keys every caller is the same local
owner. The key may come as ``X-API-Key`` (LangGraph's SDK) or ``Authorization: Bearer``
(the openai client).
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from agentrt.server.store import ANONYMOUS, ServerStore


class Auth:
    def __init__(self, store: ServerStore, require: bool | None) -> None:
        self.store = store
        self.required = store.has_keys() if require is None else require
        if self.required and not store.has_keys():
            raise ValueError("the server was told to require API keys but has none: make one with "
                             "`agentrt keys create NAME` (same --data-dir)")

    def owner(self, request: Request) -> str:
        if not self.required:
            return ANONYMOUS
        key = request.headers.get("x-api-key")
        if not key:
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            key = value.strip() if scheme.lower() == "bearer" else None
        if not key:
            raise HTTPException(401, "this server requires an API key: send it as X-API-Key or "
                                     "Authorization: Bearer KEY (make one with `agentrt keys create`)",
                                headers={"WWW-Authenticate": "Bearer"})
        owner = self.store.key_owner(key)
        if owner is None:
            raise HTTPException(401, "the API key is not valid (unknown or revoked)",
                                headers={"WWW-Authenticate": "Bearer"})
        return owner


async def owner_of(request: Request) -> str:
    """FastAPI dependency: the calling key's id (the owner of what it creates). Async on
    purpose: FastAPI runs a sync dependency in a thread pool, two thread hops per request."""
    return request.app.state.auth.owner(request)
