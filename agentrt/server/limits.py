"""Request size limit as raw ASGI middleware (Starlette's BaseHTTPMiddleware would add a task
and a copy per request on the hot path). A declared Content-Length over the limit is refused
before the body is read; a chunked body is counted as it arrives."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import HTTPException


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` while a route reads a chunked body. An ``HTTPException``, so that
    FastAPI's body parsing passes it on as the 413 it is instead of turning it into a 400."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


class BodySizeLimit:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return await self._refuse(send, 400, "Content-Length is not a number")
                if declared > self.max_bytes:
                    return await self._refuse(send, 413, self._message(declared))
                break
        seen = 0
        started = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self._message(seen))
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, 413, self._message(seen))

    def _message(self, size: int) -> str:
        return (f"request body of {size} bytes is over this server's limit of {self.max_bytes} bytes "
                "(agentrt serve --max-body-bytes)")

    @staticmethod
    async def _refuse(send: Any, status: int, detail: str) -> None:
        body = orjson.dumps({"detail": detail})
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
