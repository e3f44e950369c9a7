"""Request bodies to checked items: the JSON of ``/translate``, the multipart of ``/caption``.

Bodies are parsed here rather than by FastAPI's declared parameters so that every refusal,
down to a byte that is not UTF-8, is the one error shape of :mod:`seq2seq.serve.limits` and
names what was wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from seq2seq.serve.limits import Limits, RequestError, too_large
from seq2seq.serve.models import ImageItem, TextItem
from seq2seq.serve.uploads import decode_upload, display_name


class TranslateRequest(BaseModel):
    """``POST /translate``: ``{"texts": [...], "nbest": 1, "alignment": false}``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    texts: list[str]
    nbest: int = 1
    alignment: bool = False


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _require_media_type(request: Request, expected: str) -> None:
    found = _media_type(request)
    if found != expected:
        raise RequestError(
            415, f"Content-Type is {found or 'missing'!r}; expected {expected!r}", "content_type"
        )


def _check_nbest(nbest: int, limits: Limits) -> None:
    if nbest < 1:
        raise RequestError(422, f"nbest must be at least 1, got {nbest}", "schema")
    if nbest > limits.max_nbest:
        raise RequestError(
            422, f"nbest is {nbest}, over the limit of {limits.max_nbest} (max_nbest)", "max_nbest"
        )


def _schema_error(err: ValidationError) -> RequestError:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return RequestError(422, f"{where}: {first['msg']}", "schema")


async def translate_items(request: Request, limits: Limits) -> list[TextItem]:
    """The texts of a ``/translate`` request, checked against ``limits``.

    Raises:
        RequestError: the content type, encoding, JSON, schema or a limit is broken.
    """
    _require_media_type(request, "application/json")
    body = await request.body()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RequestError(
            400, f"request body is not valid UTF-8 ({err.reason} at byte {err.start})", "encoding"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise RequestError(400, f"request body is not JSON: {err}", "json") from None
    try:
        parsed = TranslateRequest.model_validate(data)
    except ValidationError as err:
        raise _schema_error(err) from None
    if len(parsed.texts) > limits.max_texts:
        raise too_large("number of texts", len(parsed.texts), limits.max_texts, "max_texts")
    _check_nbest(parsed.nbest, limits)
    for i, sentence in enumerate(parsed.texts):
        if len(sentence) > limits.max_text_chars:
            raise too_large(
                f"texts.{i} length in characters", len(sentence), limits.max_text_chars,
                "max_text_chars",
            )  # fmt: skip
        try:
            sentence.encode("utf-8")
        except UnicodeEncodeError:
            # JSON escapes can spell a lone surrogate ("\ud800"), which is no character.
            raise RequestError(
                400, f"texts.{i} holds a lone surrogate escape, not a character", "encoding"
            ) from None
    return [TextItem(t, parsed.nbest, parsed.alignment) for t in parsed.texts]


@dataclass
class _CaptionOptions:
    nbest: int = 1
    attention: bool = False


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


def _options(fields: dict[str, str], limits: Limits) -> _CaptionOptions:
    options = _CaptionOptions()
    for name, value in fields.items():
        if name == "nbest":
            try:
                options.nbest = int(value)
            except ValueError:
                raise RequestError(
                    422, f"nbest: expected an integer, got {value!r}", "schema"
                ) from None
        elif name == "attention":
            if value.lower() not in _TRUE + _FALSE:
                raise RequestError(
                    422, f"attention: expected true or false, got {value!r}", "schema"
                )
            options.attention = value.lower() in _TRUE
        else:
            raise RequestError(
                422,
                f"unknown form field {name[:40]!r} (expected images, nbest, attention)",
                "schema",
            )
    _check_nbest(options.nbest, limits)
    return options


async def caption_items(request: Request, limits: Limits) -> tuple[list[str], list[ImageItem]]:
    """The names and decoded images of a ``/caption`` request, checked against ``limits``.

    Raises:
        RequestError: the content type, multipart form, an image or a limit is broken.
    """
    _require_media_type(request, "multipart/form-data")
    try:
        # One file more than allowed is parsed so that "too many" gets its own message below.
        form = await request.form(max_files=limits.max_images + 1, max_fields=16)
    except (MultiPartException, HTTPException) as err:
        text = str(getattr(err, "detail", None) or getattr(err, "message", None) or err)
        if "Too many files" in text:
            raise RequestError(
                413, f"more than {limits.max_images} images, the limit (max_images)", "max_images"
            ) from None
        raise RequestError(400, f"malformed multipart form: {text}", "content_type") from None
    try:
        uploads: list[UploadFile] = []
        fields: dict[str, str] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                uploads.append(value)
            else:
                fields[name] = value
        options = _options(fields, limits)
        if not uploads:
            raise RequestError(
                422, "no image uploaded (send files in the 'images' field)", "schema"
            )
        if len(uploads) > limits.max_images:
            raise too_large("number of images", len(uploads), limits.max_images, "max_images")
        names, items = [], []
        for index, upload in enumerate(uploads):
            name = display_name(upload.filename, index)
            if upload.size is not None and upload.size > limits.max_image_bytes:
                raise too_large(
                    f"{name}: image file size", upload.size, limits.max_image_bytes,
                    "max_image_bytes",
                )  # fmt: skip
            data = await upload.read(limits.max_image_bytes + 1)
            # Decoding is CPU work: off the event loop, which keeps serving other requests.
            image = await run_in_threadpool(decode_upload, data, name, limits)
            names.append(name)
            items.append(ImageItem(image, options.nbest, options.attention))
        return names, items
    finally:
        await form.close()
