"""uvicorn's HTTP/1.1 protocol with a header deadline.

uvicorn times a connection out only while it idles between requests; a client that sends
its request line and headers a byte at a time (or nothing at all) holds a connection for
as long as it likes. Here a request whose headers have not all arrived within
``header_timeout`` seconds of the connection opening (or of the keep-alive wait after a
response) gets a 408
with an OpenAI-style error body and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from dgterm.server.protocol import ApiError


def guarded(header_timeout: float) -> type[H11Protocol]:
    """The protocol class to give uvicorn (``Config(http=...)``) for this deadline."""

    class Guarded(H11Protocol):
        deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # the request line and headers are in
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():  # an idle connection is uvicorn's keep-alive's to close
                self._arm(self.timeout_keep_alive)

        def _arm(self, idle: float = 0.0) -> None:
            self._disarm()
            self.deadline = self.loop.call_later(idle + header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def _too_slow(self) -> None:
            self.deadline = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            body = json.dumps(ApiError(408, f"The request headers did not arrive within {header_timeout:g} "
                                            "seconds.", kind="timeout").body()).encode()
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                 b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            self.transport.close()

    return Guarded
