"""Any supported annotation file, its reader chosen by extension and content."""

from __future__ import annotations

import json
from pathlib import Path

from seq2seq.captioning.annotations.karpathy import karpathy_records
from seq2seq.captioning.annotations.records import (
    AnnotationError,
    ImageRecord,
    found,
    json_error,
    paused_gc,
    read_text,
)
from seq2seq.captioning.annotations.tables import (
    TABLE_FORMATS,
    looks_like_json_lines,
    read_table,
    table_records,
)

SUPPORTED_EXTENSIONS = (".json", ".jsonl", ".csv", ".tsv")


def read_annotations(
    path: str | Path,
    image_root: str | Path,
    *,
    restval: str = "train",
    default_split: str | None = None,
) -> list[ImageRecord]:
    """Read any supported annotation file, choosing the reader by extension and content.

    ``.csv``, ``.tsv`` and ``.jsonl`` go to :func:`read_table`. A ``.json`` file holding an
    object with an ``images`` key goes to :func:`read_karpathy`; one holding JSON lines (one
    object with an ``image`` key per line) goes to :func:`read_table`.

    Args:
        path: the annotation file.
        image_root: directory the image paths are relative to.
        restval: see :func:`read_karpathy` (ignored for tables).
        default_split: see :func:`read_table` (ignored for Karpathy files).

    Returns:
        The records of the file.

    Raises:
        AnnotationError: the extension is not supported, or the file is malformed.
    """
    with paused_gc():
        return _read(Path(path), Path(image_root), restval, default_split)


def _read(path: Path, root: Path, restval: str, default_split: str | None) -> list[ImageRecord]:
    suffix = path.suffix.lower()
    if suffix in TABLE_FORMATS:
        return read_table(path, root, default_split=default_split)
    if suffix != ".json":
        raise AnnotationError(
            f"{path}: unsupported annotation format {suffix or '(no extension)'!r}; expected "
            f"one of {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if looks_like_json_lines(text):
            return table_records(path, text, root, default_split)
        raise json_error(path, exc) from None
    if isinstance(data, dict) and "image" in data and "images" not in data:
        # A JSON lines file with a single line is also a valid JSON document.
        return table_records(path, text, root, default_split)
    if not isinstance(data, dict) or "images" not in data:
        raise AnnotationError(
            f"{path}: expected a Karpathy split object with an 'images' list, or JSON lines "
            f"with 'image' and 'caption'; found {found(data)}"
        )
    return karpathy_records(data, path, root, restval)
