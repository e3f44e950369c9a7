"""The HTTP app: ``/translate``, ``/caption``, ``/health`` and the page at ``/``.

:func:`create_app` takes the loaded models; each gets its own :class:`Batcher` (one worker
thread that runs the model on batches of the items of concurrent requests). Request bodies
are read by :class:`~seq2seq.serve.body.BodyGuard` before any route runs, bounded in size and
time. See ``docs/serve.md`` for the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, JSONResponse
from starlette.staticfiles import StaticFiles

from seq2seq.serve.batching import Batcher, QueueFull
from seq2seq.serve.body import BodyGuard
from seq2seq.serve.limits import Limits, RequestError, error_response
from seq2seq.serve.models import CaptioningModel, TranslationModel
from seq2seq.serve.requests import caption_items, translate_items

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"

Item = TypeVar("Item")
Result = TypeVar("Result")


async def _run(batcher: Batcher[Item, Result], items: Sequence[Item]) -> list[Result]:
    """The results of ``items``, run through ``batcher`` with whatever else is waiting."""
    try:
        futures = batcher.submit(items)
    except QueueFull as err:
        raise RequestError(503, str(err), "max_queue") from None
    try:
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))
    except asyncio.CancelledError:
        for future in futures:
            future.cancel()  # items not yet run are skipped
        raise


def create_app(
    *,
    translation: TranslationModel | None = None,
    captioning: CaptioningModel | None = None,
    limits: Limits | None = None,
    max_batch: int = 32,
    max_wait_ms: float = 5.0,
) -> FastAPI:
    """The server's ASGI app for the given models (at least one).

    Args:
        translation: answers ``/translate``; without it that route answers 404.
        captioning: answers ``/caption``; likewise.
        limits: request limits (:class:`Limits` defaults).
        max_batch: most items (texts or images) per model call.
        max_wait_ms: how long a model call waits for more items after the first.
    """
    if translation is None and captioning is None:
        raise ValueError("a server needs a translation or a captioning model")
    limits = limits or Limits()
    text_batcher = image_batcher = None
    if translation is not None:
        text_batcher = Batcher(
            translation.run, max_batch=max_batch, max_wait_ms=max_wait_ms,
            max_queue=limits.max_queue, name="translation-model",
        )  # fmt: skip
    if captioning is not None:
        image_batcher = Batcher(
            captioning.run, max_batch=max_batch, max_wait_ms=max_wait_ms,
            max_queue=limits.max_queue, name="captioning-model",
        )  # fmt: skip
    batchers = {"translation": text_batcher, "captioning": image_batcher}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for batcher in batchers.values():
            if batcher is not None:
                batcher.stop()

    # No /docs: FastAPI's pages load their scripts from a CDN, and nothing here may.
    app = FastAPI(
        title="seq2seq", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.batchers = batchers
    app.state.limits = limits

    @app.exception_handler(RequestError)
    async def _refused(request: Request, err: RequestError) -> JSONResponse:
        return err.response()

    @app.exception_handler(HTTPException)
    async def _http(request: Request, err: HTTPException) -> JSONResponse:
        return error_response(err.status_code, str(err.detail), None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return error_response(422, str(err.errors()[0].get("msg", err)), "schema")

    @app.exception_handler(Exception)
    async def _failed(request: Request, err: Exception) -> JSONResponse:
        log.exception("request failed")
        return error_response(500, f"internal error: {type(err).__name__}: {err}", None)

    def _need(task: str) -> Batcher[Any, Any]:
        batcher = batchers[task]
        if batcher is None:
            raise RequestError(404, f"this server holds no {task} model", None)
        return batcher

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "tasks": [task for task, batcher in batchers.items() if batcher is not None],
            "beam": {
                "translation": None if translation is None else translation.beam,
                "captioning": None if captioning is None else captioning.beam,
            },
            "max_batch": max_batch,
            "max_wait_ms": max_wait_ms,
            "limits": asdict(limits),
            "model_calls": {t: b.calls for t, b in batchers.items() if b is not None},
            "items": {t: b.items for t, b in batchers.items() if b is not None},
        }

    @app.post("/translate")
    async def translate(request: Request) -> dict[str, Any]:
        batcher = _need("translation")
        items = await translate_items(request, limits)
        return {"translations": await _run(batcher, items)}

    @app.post("/caption")
    async def caption(request: Request) -> dict[str, Any]:
        batcher = _need("captioning")
        names, items = await caption_items(request, limits)
        results = await _run(batcher, items)
        return {"images": [{"name": n, **r} for n, r in zip(names, results, strict=True)]}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(
        BodyGuard, max_body_bytes=limits.max_body_bytes, timeout_s=limits.body_timeout_s
    )
    return app
