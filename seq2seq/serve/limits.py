"""What a request may ask of the server, and the one error shape every refusal takes.

Every refusal is a JSON body ``{"error": "<one line>", "limit": "<name>"}``: ``limit`` names
the limit (the field of :class:`Limits`, which is also the command-line flag without its
dashes) or the rule of the API the request broke (``content_type``, ``encoding``, ``json``,
``schema``, ``image_format``), so a client can react to it without parsing the message.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from starlette.responses import JSONResponse


@dataclass(frozen=True)
class Limits:
    """Bounds on one request; each field is a ``--max-...`` / ``--body-timeout-s`` flag.

    Attributes:
        max_text_chars: characters in one text to translate.
        max_texts: texts in one ``/translate`` request.
        max_images: images in one ``/caption`` request.
        max_image_bytes: bytes of one uploaded image file.
        max_image_pixels: width × height of one image, read from its header before any pixel
            is decoded (a small file can claim a huge image: a decompression bomb).
        max_body_bytes: bytes of a whole request body (checked against ``Content-Length``
            before reading, and while reading a body sent without one).
        body_timeout_s: seconds from the start of a request until its body has arrived; a
            client that stalls mid-body gets a 408 and its connection is closed.
        max_nbest: hypotheses per input; the beam is never smaller than this.
        max_queue: items (texts or images) waiting for the model; beyond it, 503.
    """

    max_text_chars: int = 1000
    max_texts: int = 64
    max_images: int = 8
    max_image_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 25_000_000
    max_body_bytes: int = 16 * 1024 * 1024
    body_timeout_s: float = 10.0
    max_nbest: int = 5
    max_queue: int = 1024

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{field.name} must be a positive number, got {value!r}")


class RequestError(Exception):
    """A request the server refuses: an HTTP status, a one-line message and the limit's name."""

    def __init__(self, status: int, message: str, limit: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.limit = limit

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.limit)


def error_response(
    status: int, message: str, limit: str | None, *, close: bool = False
) -> JSONResponse:
    """The JSON error every refusal is sent as. ``close`` asks the server to close the
    connection: a body left unread must never be parsed as the next request."""
    headers = {"Retry-After": "1"} if status == 503 else {}
    if close:
        headers["Connection"] = "close"
    return JSONResponse({"error": message, "limit": limit}, status_code=status, headers=headers)


def too_large(what: str, size: int, limit: int, name: str) -> RequestError:
    """``413``: ``what`` has ``size``, over ``limit`` (the limit ``name``)."""
    return RequestError(413, f"{what} is {size:,}, over the limit of {limit:,} ({name})", name)
