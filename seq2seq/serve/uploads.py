"""Uploaded image bytes to RGB images, under the server's byte and pixel limits.

The bytes go through the very functions training and ``seq2seq-caption`` use
(:func:`~seq2seq.captioning.images.read_header`, then
:func:`~seq2seq.captioning.images.load_image`), so an upload is converted exactly as a file
on disk would be (EXIF rotation, transparency over white, 16-bit scaled). Those read paths,
so each upload is written to a private temporary file first; their messages name that file,
and are rewritten to name the upload instead.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

from seq2seq.captioning.images import ImageError, PixelLimit, load_image, read_header
from seq2seq.serve.limits import Limits, RequestError, too_large

#: The header is read with Pillow's own check lifted, so that the server's check below gives
#: its own message; decoding (load_image) then runs under the server's limit again.
_HEADER_ONLY = PixelLimit(sys.maxsize // 4, "header")

#: Names of uploads are echoed in errors and results: cut long ones.
MAX_NAME_CHARS = 100


def display_name(filename: str | None, index: int) -> str:
    """The upload's file name as sent, cut to :data:`MAX_NAME_CHARS`, or ``image <index>``."""
    name = (filename or "").strip()
    return name[:MAX_NAME_CHARS] if name else f"image {index}"


def decode_upload(data: bytes, name: str, limits: Limits) -> Image.Image:
    """An upright RGB image from the bytes of an uploaded file.

    Raises:
        RequestError: 413 over ``max_image_bytes`` or ``max_image_pixels``; 400 for bytes
            that are empty, not an image, or truncated or corrupt.
    """
    if len(data) > limits.max_image_bytes:
        raise too_large(f"{name}: image file size", len(data), limits.max_image_bytes,
                        "max_image_bytes")  # fmt: skip
    if not data:
        raise RequestError(400, f"{name}: empty file, expected image data", "image_format")
    limit = PixelLimit(limits.max_image_pixels, "max_image_pixels")
    with tempfile.TemporaryDirectory(prefix="seq2seq-serve-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(data)
        try:
            _, (width, height) = read_header(path, _HEADER_ONLY)
            if width * height > limits.max_image_pixels:
                raise RequestError(
                    413,
                    f"{name}: image is {width}x{height} = {width * height:,} pixels, over the "
                    f"limit of {limits.max_image_pixels:,} (max_image_pixels); refusing to "
                    "decode a possible decompression bomb",
                    "max_image_pixels",
                )
            return load_image(path, limit)
        except ImageError as err:
            message = str(err).replace(str(path), name)
            # A bomb can hide in a frame or tile past the header: load_image still refuses it.
            if "decompression bomb" in message:
                raise RequestError(413, message, "max_image_pixels") from None
            raise RequestError(400, message, "image_format") from None
