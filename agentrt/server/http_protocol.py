"""uvicorn's HTTP protocol with a deadline on reading a request's headers.

uvicorn bounds how long an idle keep-alive connection lives, but not how long a client may take
to send its headers: a client that opens connections and sends one header byte now and then
(slowloris) holds each one forever, and with enough of them the server runs out of sockets.
Here a connection that has not finished its request line and headers within
``header_timeout`` seconds of starting them (or of connecting) gets a 408 and is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEADER_TIMEOUT_S = 10.0
_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                     b"content-length: 63\r\n\r\n"
                     b'{"detail":"the request headers did not arrive in time; resend"}')


def header_timeout_protocol(header_timeout: float = DEFAULT_HEADER_TIMEOUT_S) -> type[HttpToolsProtocol]:
    """The protocol class to give ``uvicorn.run(http=...)``."""

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:  # the next request on a kept-alive connection
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expire(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.write(_TIMEOUT_RESPONSE)
                self.transport.close()

    return HeaderTimeoutProtocol
