"""uvicorn's settings for the app, and the one thing uvicorn lacks: a deadline for headers.

uvicorn's ``timeout_keep_alive`` is cancelled by any byte that arrives, so a client that
sends a request's headers a byte at a time, or stops halfway, holds its connection for ever
(and, past ``--max-connections`` such clients, the server answers everyone else 503). The
body's deadline is :class:`~seq2seq.serve.body.BodyGuard`'s; the headers' is here: a
connection must deliver a request's complete headers within ``header_timeout_s`` of opening,
or of the previous response, or it is closed.
"""

from __future__ import annotations

import asyncio

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


class _HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline on request headers (``header_timeout_s``)."""

    header_timeout_s = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        # h11 leaves IDLE only once a request's headers are complete.
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def server_config(
    app: object,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_connections: int = 128,
    header_timeout_s: float = 10.0,
    log_level: str = "info",
) -> uvicorn.Config:
    """The uvicorn config of ``seq2seq-serve`` (and of the tests' servers)."""
    protocol = type("HeaderDeadline", (_HeaderDeadline,), {"header_timeout_s": header_timeout_s})
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        http=protocol,
        limit_concurrency=max_connections,
        timeout_keep_alive=5,
        log_level=log_level,
    )
