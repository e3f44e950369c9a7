"""Loading captioning images as plain 8-bit RGB, with errors that name the file.

Real image collections are messy: greyscale and palette PNGs, transparent emoji, CMYK JPEGs
from print workflows, 16-bit scans, phone photos that are stored sideways with an EXIF
orientation tag, and the odd truncated download. :func:`load_image` turns all of these into
the same thing (an upright RGB image) and turns every failure into an :class:`ImageError` that
says which file was at fault, so one bad file among 100k is easy to find.
"""

from __future__ import annotations

import stat
import warnings
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from seq2seq.captioning.annotations.records import ImageRecord

#: File name extensions of the image formats commonly found in captioning datasets.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

#: Transparent pixels are composited onto this colour; white matches how viewers show them.
BACKGROUND = (255, 255, 255)

_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})


class ImageError(ValueError):
    """An image file cannot be used; the message names the file and what was wrong."""


def load_image(path: str | Path) -> Image.Image:
    """Open an image file and return it fully loaded, upright, in RGB mode.

    Greyscale (``1``, ``L``), palette (``P``), CMYK and similar modes are converted to RGB;
    images with an alpha channel or a transparent palette entry are composited onto a white
    background; 16-bit and floating-point images are scaled to 8 bits (see
    :func:`_to_8bit`); the EXIF orientation tag is applied.

    Args:
        path: the image file.

    Returns:
        A new RGB image of size ``(width, height)`` after EXIF rotation, detached from the file.

    Raises:
        ImageError: the file is missing, a directory, empty, not an image Pillow can read,
            truncated or corrupt, has zero width or height, or is so large that decoding it
            could be a decompression bomb.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ImageError(f"{path}: image file not found") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read image file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{path}: is a directory, expected an image file")
    if not stat.S_ISREG(info.st_mode):
        # Opening a FIFO or device would block or read garbage rather than fail.
        raise ImageError(f"{path}: not a regular file, expected an image file")
    if info.st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes), expected image data")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a warning per file
            # would scroll past unnoticed during training, so treat it as the error it hints at.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return _finish(image, path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"{path}: refusing to decode a possible decompression bomb ({exc}); raise "
            "PIL.Image.MAX_IMAGE_PIXELS if the image is genuine"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except PermissionError as exc:
        raise ImageError(f"{path}: cannot read image file ({exc.strerror or exc})") from None
    except (OSError, SyntaxError, EOFError) as exc:
        # Pillow reports truncated or corrupt data as OSError from load(), and some plugins
        # report a broken header as SyntaxError or EOFError.
        raise ImageError(f"{path}: truncated or corrupt image data ({exc})") from None


def _finish(image: Image.Image, path: Path) -> Image.Image:
    """Check the size of a loaded image, rotate it upright and convert it to RGB."""
    if image.width == 0 or image.height == 0:
        raise ImageError(f"{path}: image has zero size {image.size}, expected width and height > 0")
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:
        # A broken EXIF block should not cost us an otherwise readable picture; the worst
        # case is an image that stays sideways, as it would in most viewers.
        upright = image
    return to_rgb(upright)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to a new RGB image (never the input object itself)."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _to_8bit(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        # Going through RGBA keeps palette transparency; converting a transparent palette
        # image straight to RGB would give the transparent colour (often black) instead.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    """Scale a 16-bit integer (``I;16*``), 32-bit integer (``I``) or float (``F``) image to ``L``.

    ``I;16`` images use their full 0..65535 range. ``I`` and ``F`` images carry no bit depth,
    so it is guessed from the values: ``F`` within 0..1 is scaled by 255, values within
    0..255 are kept, integers within 0..65535 are treated as 16-bit, and anything else
    (negative values, larger floats) is stretched from its minimum to its maximum.
    """
    low, high = image.getextrema()
    if image.mode.startswith("I;16"):
        scale, offset = 255 / 65535, 0.0
    elif image.mode == "F" and 0 <= low <= high <= 1:
        scale, offset = 255.0, 0.0
    elif 0 <= low <= high <= 255:
        scale, offset = 1.0, 0.0
    elif image.mode == "I" and 0 <= low <= high <= 65535:
        scale, offset = 255 / 65535, 0.0
    else:
        scale = 255 / (high - low) if high > low else 0.0
        offset = -low * scale
    # Work in float so the scaling does not overflow or truncate early; +0.5 rounds, as the
    # conversion to L truncates (and clips to 0..255).
    return image.convert("F").point(lambda v: v * scale + offset + 0.5).convert("L")


ON_MISSING = ("error", "skip")


def check_images(
    records: Iterable[ImageRecord], *, on_missing: str = "error"
) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Split records into those whose image file exists and those whose file does not.

    A file counts as missing when it does not exist, is not a regular file, or is empty. Only
    the file system is consulted; whether the file decodes is left to
    :func:`seq2seq.captioning.images.load_image`.

    Args:
        records: the records to check.
        on_missing: ``"error"`` raises if any file is missing; ``"skip"`` returns the
            records with missing files separately (the caller should log how many).

    Returns:
        ``(kept, skipped)``, both in input order; ``skipped`` is empty with ``"error"``.

    Raises:
        ImageError: with ``"error"``, naming the first missing file and how many are missing.
        ValueError: ``on_missing`` is not ``"error"`` or ``"skip"``.
    """
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
    kept: list[ImageRecord] = []
    skipped: list[ImageRecord] = []
    first_problem = ""
    for record in records:
        problem = _file_problem(record.path)
        if problem is None:
            kept.append(record)
            continue
        first_problem = first_problem or problem
        skipped.append(record)
    if skipped and on_missing == "error":
        first = skipped[0]
        raise ImageError(
            f"{first.path}: {first_problem} (image {first.image_id!r}); {len(skipped)} of "
            f"{len(kept) + len(skipped)} image files are missing, empty or not regular files. "
            "Check the image root, or set data.on_missing=skip to drop those images"
        )
    return kept, skipped


def find_unreadable_images(
    records: Iterable[ImageRecord],
) -> tuple[list[ImageRecord], list[tuple[ImageRecord, str]]]:
    """Decode every image and split off those that cannot be used.

    Unlike :func:`check_images`, this reads each file in full, so it finds truncated and
    corrupt files, and files that are not images, at the cost of one decode per image.

    Returns:
        ``(kept, unreadable)``, in input order; ``unreadable`` pairs each record with the
        :class:`~seq2seq.captioning.images.ImageError` message (which names the file).
    """
    kept: list[ImageRecord] = []
    unreadable: list[tuple[ImageRecord, str]] = []
    for record in records:
        try:
            load_image(record.path)
        except ImageError as err:
            unreadable.append((record, str(err)))
        else:
            kept.append(record)
    return kept, unreadable


def _file_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable image file, or ``None`` if it exists and is not empty."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return "image file not found"
    except OSError as exc:
        return f"cannot read image file ({exc.strerror or exc})"
    if stat.S_ISDIR(info.st_mode):
        return "is a directory, expected an image file"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file, expected an image file"
    if info.st_size == 0:
        return "empty file (0 bytes)"
    return None
