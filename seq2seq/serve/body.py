"""An ASGI middleware that reads every request body itself: bounded in size and in time.

uvicorn's ``timeout_keep_alive`` only closes idle connections *between* requests; a client
that sends its headers and part of a body, then nothing, would hold a connection (and a
half-parsed upload) for ever. Here the whole body is read before the app sees the request,
under one deadline counted from when its headers were parsed; a client that stalls past it gets a
408 and its connection is closed. A ``Content-Length`` over the limit is refused before a
byte of the body is read, and a body sent without one (chunked) is refused as soon as it
passes the limit. The app then reads the body from memory, so parsing JSON or multipart never
waits on the network.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seq2seq.serve.limits import error_response


class BodyGuard:
    """Wraps ``app``: bodies of at most ``max_body_bytes``, received within ``timeout_s``."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._check_length(scope)
        if refusal is not None:
            await self._refuse(scope, receive, send, 413, refusal, "max_body_bytes")
            return
        deadline = time.monotonic() + self.timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0))
            except asyncio.TimeoutError:
                text = (
                    f"request body not received within {self.timeout_s:g} s "
                    f"({size:,} bytes arrived; body_timeout_s)"
                )
                await self._refuse(scope, receive, send, 408, text, "body_timeout_s")
                return
            if message["type"] == "http.disconnect":
                return  # the client left: there is no one to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                text = (
                    f"request body is over {self.max_body_bytes:,} bytes, the limit "
                    "(max_body_bytes)"
                )
                await self._refuse(scope, receive, send, 413, text, "max_body_bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _check_length(self, scope: Scope) -> str | None:
        """Why the declared ``Content-Length`` is refused, or None."""
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return None  # the server's HTTP parser refuses a malformed one itself
                if length > self.max_body_bytes:
                    return (
                        f"request body is {length:,} bytes (Content-Length), over the limit "
                        f"of {self.max_body_bytes:,} (max_body_bytes)"
                    )
        return None

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, status: int, text: str, limit: str
    ) -> None:
        # The unread rest of the body must not be taken for a next request: close.
        await error_response(status, text, limit, close=True)(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` as one message, then waits on the real one (for the
    disconnect that ends a streaming response)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
