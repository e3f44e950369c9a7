"""Loading captioning images as plain 8-bit RGB, with errors that name the file.

Real image collections are messy: greyscale and palette PNGs, transparent emoji, CMYK JPEGs
from print workflows, 16-bit scans, phone photos that are stored sideways with an EXIF
orientation tag, and the odd truncated download. :func:`load_image` turns all of these into
the same thing (an upright RGB image) and turns every failure into an :class:`ImageError` that
says which file was at fault, so one bad file among 100k is easy to find.

Pillow refuses images over ``PIL.Image.MAX_IMAGE_PIXELS`` (about 89 million pixels) as possible
decompression bombs; a genuine scan or panorama can be larger. Every function here takes a
:class:`PixelLimit`, the limit and the setting a user changes it with (``data.max_image_pixels``
for training), so the error can name that setting. :func:`read_header` applies the limit
without decoding any pixels, so that data sets can be checked in seconds before costly work.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import sys
import threading
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from seq2seq.captioning.annotations.records import ImageRecord
from seq2seq.data.progress import Progress

#: File name extensions of the image formats commonly found in captioning datasets.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

#: Transparent pixels are composited onto this colour; white matches how viewers show them.
BACKGROUND = (255, 255, 255)

_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})


class ImageError(ValueError):
    """An image file cannot be used; the message names the file and what was wrong."""


#: Default of ``data.max_image_pixels``: 200 million pixels (a 14142 x 14142 image, 600 MB as
#: RGB), over twice Pillow's default, so large genuine photos and scans pass while a file
#: claiming billions of pixels is still refused.
DEFAULT_MAX_PIXELS = 200_000_000


@dataclass(frozen=True)
class PixelLimit:
    """The most pixels an image may have before it is refused as a possible decompression bomb.

    Attributes:
        pixels: the limit; None: Pillow's ``PIL.Image.MAX_IMAGE_PIXELS`` (when that is None
            too, there is no limit).
        key: the setting that changes the limit, named in the error
            (``data.max_image_pixels``, ``--max-image-pixels``, ...).
    """

    pixels: int | None = None
    key: str = "PIL.Image.MAX_IMAGE_PIXELS"

    def __post_init__(self) -> None:
        if self.pixels is not None and (
            isinstance(self.pixels, bool) or not isinstance(self.pixels, int) or self.pixels < 1
        ):
            raise ValueError(
                f"{self.key} must be a positive number of pixels, or null for Pillow's default "
                f"({Image.MAX_IMAGE_PIXELS}); got {self.pixels!r}"
            )


#: Pillow's own limit, named as Pillow names it.
PILLOW_LIMIT = PixelLimit()

# Pillow reads its limit from the module global PIL.Image.MAX_IMAGE_PIXELS, and checks it while
# opening a file (the header, and a frame or tile size where a format has them), not while
# decoding. Each open sets the global to its own limit and restores it; the lock keeps two
# threads from opening under each other's limit or restoring each other's value.
_PILLOW_GLOBAL = threading.Lock()


def _new_lock_after_fork() -> None:
    # A child forked while another thread held the lock would wait for it forever.
    global _PILLOW_GLOBAL
    _PILLOW_GLOBAL = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


def _open(path: Path, limit: PixelLimit) -> Image.Image:
    """``Image.open(path)`` (the header only, no pixels decoded) under ``limit``.

    Raises:
        ImageError: the file is missing or not a regular file, empty, not an image Pillow can
            read, or over the limit.
    """
    problem = _file_problem(path)
    if problem is not None:
        raise ImageError(f"{path}: {problem}")
    with _PILLOW_GLOBAL:
        saved = Image.MAX_IMAGE_PIXELS
        pixels = saved if limit.pixels is None else limit.pixels
        try:
            Image.MAX_IMAGE_PIXELS = pixels
            with warnings.catch_warnings():
                # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a warning per file
                # would scroll past unnoticed during training, so it is the error it hints at.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                return Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            Image.MAX_IMAGE_PIXELS = None  # to read the size for the message
            raise ImageError(_too_large(path, pixels, limit.key, exc)) from None
        except UnidentifiedImageError:
            raise ImageError(f"{path}: not an image file Pillow can read") from None
        except PermissionError as exc:
            raise ImageError(f"{path}: cannot read image file ({exc.strerror or exc})") from None
        except (OSError, SyntaxError, EOFError, ValueError) as exc:
            # Some plugins report a broken header as SyntaxError, EOFError or ValueError.
            raise ImageError(f"{path}: truncated or corrupt image header ({exc})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _too_large(path: Path, limit: int | None, key: str, exc: Exception) -> str:
    """The one-line error for an image over ``limit`` pixels (Pillow's limit is lifted)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
        size = f"is {width}x{height} = {width * height:,} pixels"
    except Exception:
        size = f"is too large ({exc})"  # the bomb is in a frame or tile, not the header
    return (
        f"{path}: image {size}, over the limit of {limit or 0:,} pixels ({key}); refusing to "
        f"decode a possible decompression bomb. If the image is genuine, raise {key}"
    )


def read_header(path: str | Path, limit: PixelLimit = PILLOW_LIMIT) -> tuple[str, tuple[int, int]]:
    """The format and ``(width, height)`` of an image file, read from its header alone.

    Costs a few kilobytes of reading per file, so a data set's every image can be checked
    before training; whether the pixel data decodes is only known to :func:`load_image`.

    Raises:
        ImageError: the file is missing, a directory, empty, not an image Pillow can read,
            has zero width or height, or is over ``limit``.
    """
    path = Path(path)
    with _open(path, limit) as image:
        size, format = image.size, image.format or "unknown"
    if size[0] == 0 or size[1] == 0:
        raise ImageError(f"{path}: image has zero size {size}, expected width and height > 0")
    return format, size


def load_image(path: str | Path, limit: PixelLimit = PILLOW_LIMIT) -> Image.Image:
    """Open an image file and return it fully loaded, upright, in RGB mode.

    Greyscale (``1``, ``L``), palette (``P``), CMYK and similar modes are converted to RGB;
    images with an alpha channel or a transparent palette entry are composited onto a white
    background; 16-bit and floating-point images are scaled to 8 bits (see
    :func:`_to_8bit`); the EXIF orientation tag is applied.

    Args:
        path: the image file.
        limit: images with more pixels are refused (Pillow's limit by default).

    Returns:
        A new RGB image of size ``(width, height)`` after EXIF rotation, detached from the file.

    Raises:
        ImageError: the file is missing, a directory, empty, not an image Pillow can read,
            truncated or corrupt, has zero width or height, or is over ``limit``, so large
            that decoding it could be a decompression bomb.
    """
    path = Path(path)
    try:
        with _open(path, limit) as image:
            image.load()
            return _finish(image, path)
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


def check_headers(
    records: list[ImageRecord],
    limit: PixelLimit = PILLOW_LIMIT,
    *,
    what: str = "reading image headers",
) -> tuple[list[ImageRecord], list[tuple[ImageRecord, str]]]:
    """Read every image's header (:func:`read_header`) and split off those that cannot be used.

    Finds files that are not images, have a broken header, or are over ``limit``, in seconds
    for thousands of images, with progress shown as ``what``.

    Returns:
        ``(kept, bad)``, in input order; ``bad`` pairs each record with the
        :class:`ImageError` message (which names the file).
    """
    return _split(records, "header", limit, what)


def find_unreadable_images(
    records: list[ImageRecord],
    limit: PixelLimit = PILLOW_LIMIT,
    *,
    what: str = "decoding images to check them",
) -> tuple[list[ImageRecord], list[tuple[ImageRecord, str]]]:
    """Decode every image and split off those that cannot be used.

    Unlike :func:`check_headers`, this reads each file in full, so it also finds truncated
    and corrupt pixel data, at the cost of one decode per image (progress shown as ``what``).

    Returns:
        ``(kept, unreadable)``, in input order; ``unreadable`` pairs each record with the
        :class:`ImageError` message (which names the file).
    """
    return _split(records, "decode", limit, what)


#: Below this many images, starting worker processes costs more than it saves.
POOL_MIN_IMAGES = 4096
#: Images per task of a worker process: large enough that sending paths and results back is
#: cheap next to reading the files, small enough for the progress display to move.
_CHUNK = 1024


def check_workers(count: int) -> int:
    """How many processes check ``count`` image files: one below :data:`POOL_MIN_IMAGES` or
    with fewer than 4 CPUs, else one per CPU this process may use (at most 8), where processes
    can be forked (Linux)."""
    if count < POOL_MIN_IMAGES or not sys.platform.startswith("linux"):
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    # On 2 CPUs shared with other work, two workers measured 10% slower than one process
    # (docs/caption_scale.md): the gain needs CPUs to spare.
    return 1 if cpus < 4 else min(cpus, 8)


def _problem(kind: str, path: Path, limit: PixelLimit) -> str | None:
    """The :class:`ImageError` message of ``path`` under check ``kind``, or None if it passes.

    The functions are looked up when called, so that a test replacing one sees every call.
    """
    try:
        if kind == "header":
            read_header(path, limit)
        else:
            load_image(path, limit)
    except ImageError as err:
        return str(err)
    return None


def _check_chunk(kind: str, paths: Sequence[Path], start: int, limit: PixelLimit) -> dict[int, str]:
    """``{position: message}`` of the files of ``paths`` (at ``start``...) that fail."""
    problems: dict[int, str] = {}
    for offset, path in enumerate(paths):
        message = _problem(kind, path, limit)
        if message is not None:
            problems[start + offset] = message
    return problems


def _split(
    records: list[ImageRecord], kind: str, limit: PixelLimit, what: str
) -> tuple[list[ImageRecord], list[tuple[ImageRecord, str]]]:
    """Split ``records`` by whether check ``kind`` (``"header"`` or ``"decode"``) of their file
    raises :class:`ImageError`.

    Pillow parses headers in Python, so reading COCO's 123k headers is bound by the CPU (and
    the GIL) rather than the disk: several thousand images are checked by forked worker
    processes, in chunks, with the same functions and messages as one process.
    """
    problems: dict[int, str] = {}
    workers = check_workers(len(records))
    with Progress(what, len(records), "images") as progress:
        if workers == 1:
            for i, record in enumerate(records):
                message = _problem(kind, record.path, limit)
                if message is not None:
                    problems[i] = message
                progress.update()
        else:
            paths = [record.path for record in records]
            # Forked, not spawned: a child starts at once with the modules already imported,
            # and never re-runs the parent's main script.
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                tasks = {
                    pool.submit(_check_chunk, kind, paths[start : start + _CHUNK], start, limit): (
                        min(_CHUNK, len(paths) - start)
                    )
                    for start in range(0, len(paths), _CHUNK)
                }
                for task in as_completed(tasks):
                    problems.update(task.result())
                    progress.update(tasks[task])
    kept = [record for i, record in enumerate(records) if i not in problems]
    bad = [(records[i], problems[i]) for i in sorted(problems)]
    return kept, bad


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
        # Opening a FIFO or device would block or read garbage rather than fail.
        return "not a regular file, expected an image file"
    if info.st_size == 0:
        return "empty file (0 bytes), expected image data"
    return None
