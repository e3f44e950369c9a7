"""Image records, the caption normalisation and the errors shared by every annotation reader.

Every reader (:mod:`~seq2seq.captioning.annotations.karpathy`,
:mod:`~seq2seq.captioning.annotations.tables`) returns :class:`ImageRecord` objects in file
order; its errors are :class:`AnnotationError` and name the file with the line (tables) or the
JSON path (Karpathy files, e.g. ``images[12].sentences[0].tokens``) and what was expected there.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPLITS = ("train", "val", "test")


# Distinguishes a missing key from an explicit null in error messages.
MISSING = object()


# Decimal numbers stay whole ("2.5"), words keep inner apostrophes and hyphens ("dog's",
# "t-shirt"), and every other non-space character is a token of its own.
_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|\w+(?:['’-]\w+)*|[^\w\s]")


class AnnotationError(ValueError):
    """An annotation file is missing or malformed; the message names the file and the place."""


@dataclass(frozen=True)
class ImageRecord:
    """One image and its reference captions.

    Attributes:
        image_id: unique key of the image within its annotation file: the image path relative
            to the image root, with ``/`` separators.
        path: the image file, ``image_root / image_id``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        captions: normalised reference captions, at least one.
        objects: per-image object annotations (e.g. ``{"shape", "colour", "size", "box":
            [x0, y0, x1, y1]}``), passed through unchanged from a Karpathy file's
            ``"objects"`` key; empty when the file has none.
        size: ``(width, height)`` when the annotation file gives it, else ``None``.
    """

    image_id: str
    path: Path
    split: str
    captions: tuple[str, ...]
    objects: tuple[dict[str, Any], ...] = ()
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if not self.captions:
            raise ValueError(f"image {self.image_id!r} needs at least one caption")


def normalise_caption(text: str) -> str:
    """Lowercase a caption and put single spaces between its words and punctuation.

    Punctuation characters become tokens of their own and trailing full stops are dropped, so
    ``"A dog, running."`` becomes ``"a dog , running"``. Apostrophes and hyphens inside a word
    (``"dog's"``, ``"t-shirt"``) and decimal points inside a number (``"2.5"``) stay put.

    Args:
        text: a raw caption.

    Returns:
        The normalised caption; empty when ``text`` held no words (callers decide whether that
        is an error).
    """
    tokens = _TOKEN.findall(text.lower())
    # Most captions end with a full stop and some do not; keeping it would make the model
    # learn an arbitrary choice and change BLEU for no reason.
    while tokens and tokens[-1] == ".":
        tokens.pop()
    return " ".join(tokens)


def split_records(records: Iterable[ImageRecord]) -> dict[str, list[ImageRecord]]:
    """Group records by split.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` with every split present (possibly
        empty) and records in input order.
    """
    splits: dict[str, list[ImageRecord]] = {split: [] for split in SPLITS}
    for record in records:
        splits[record.split].append(record)
    return splits


def read_text(path: Path) -> str:
    """The UTF-8 text of a file, without a byte-order mark."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AnnotationError(f"{path}: file not found") from None
    except OSError as exc:
        raise AnnotationError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    try:
        # utf-8-sig drops the byte-order mark that Windows editors add; left in, it would
        # stick to the first column name or make the JSON invalid.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise AnnotationError(
            f"{path}:{line}: invalid UTF-8 byte(s) {exc.object[exc.start : exc.end]!r} "
            f"({exc.reason}); expected UTF-8 text"
        ) from None


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a large annotation file is parsed.

    Parsing COCO's Karpathy file creates millions of lists, dicts and records that all stay
    alive; each time enough of them pile up, the collector walks every one made so far, which
    made parsing its JSON six times slower (4.6 s instead of 0.7 on a 2-CPU machine). Nothing
    parsed here forms a reference cycle, so there is nothing for the collector to free.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            # What was made meanwhile sits in the youngest generation, which the collector
            # would walk in full at its next step; moving it to the oldest one (through the
            # permanent one) leaves it for the rare full collections.
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def parse_json(path: Path, text: str) -> Any:
    """Parse a whole JSON document."""
    try:
        with paused_gc():
            return json.loads(text)
    except json.JSONDecodeError as exc:
        raise json_error(path, exc) from None


def json_error(path: Path, exc: json.JSONDecodeError) -> AnnotationError:
    """An :class:`AnnotationError` with the line and column of a JSON syntax error."""
    return AnnotationError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})")


def found(value: Any) -> str:
    """A short description of a JSON value for error messages."""
    if value is MISSING:
        return "nothing (key missing)"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)" if value else "an empty list"
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 40 else shown[:37] + "..."
