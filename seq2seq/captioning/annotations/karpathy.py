"""Karpathy split JSON (``dataset_coco.json``, ``dataset_flickr8k.json``,
``dataset_flickr30k.json`` and the scenes of :mod:`seq2seq.datasets.scenes`): one object per
image with its file name, split and tokenised reference sentences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seq2seq.captioning.annotations.records import (
    MISSING,
    SPLITS,
    AnnotationError,
    ImageRecord,
    found,
    normalise_caption,
    parse_json,
    paused_gc,
    read_text,
)

#: Splits of the Karpathy files; "restval" is the part of COCO val2014 outside val and test.
KARPATHY_SPLITS = (*SPLITS, "restval")


def read_karpathy(
    json_path: str | Path, image_root: str | Path, *, restval: str = "train"
) -> list[ImageRecord]:
    """Read a Karpathy split file (``{"images": [{"filename", "split", "sentences"}, ...]}``).

    An image's file is ``image_root / filepath / filename`` (``filepath`` is optional; COCO
    uses it for ``train2014`` / ``val2014``). A sentence's caption is its ``tokens`` joined by
    spaces and lowercased, or, when it has no tokens, its ``raw`` text normalised by
    :func:`normalise_caption`. An optional ``objects`` list is passed through, and optional
    integer ``width`` and ``height`` become :attr:`ImageRecord.size`.

    Args:
        json_path: the JSON file.
        image_root: directory the image paths are relative to.
        restval: split that ``"restval"`` images join; Karpathy's convention adds them to
            ``"train"``, and ``"skip"`` drops them.

    Returns:
        One record per image, in file order (skipped restval images left out).

    Raises:
        AnnotationError: the file is unreadable, not JSON, or not in the expected format.
        ValueError: ``restval`` is not a split or ``"skip"``.
    """
    path = Path(json_path)
    with paused_gc():
        return karpathy_records(parse_json(path, read_text(path)), path, Path(image_root), restval)


def karpathy_records(data: Any, path: Path, root: Path, restval: str) -> list[ImageRecord]:
    """Records from a parsed Karpathy split document."""
    with paused_gc():
        return _records(data, path, root, restval)


def _records(data: Any, path: Path, root: Path, restval: str) -> list[ImageRecord]:
    if restval not in (*SPLITS, "skip"):
        raise ValueError(f"restval must be one of {', '.join(SPLITS)} or 'skip', got {restval!r}")
    images = data.get("images", MISSING) if isinstance(data, dict) else MISSING
    if not isinstance(images, list):
        raise AnnotationError(
            f"{path}: expected a JSON object with an 'images' list at the top level "
            f"(Karpathy split format), found {found(images if isinstance(data, dict) else data)}"
        )
    records: list[ImageRecord] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(entry, dict):
            raise AnnotationError(f"{path}: {where}: expected an object, found {found(entry)}")
        filename = entry.get("filename", MISSING)
        if not isinstance(filename, str) or not filename.strip():
            raise AnnotationError(
                f"{path}: {where}.filename: expected a non-empty string, found {found(filename)}"
            )
        filepath = entry.get("filepath") or ""
        if not isinstance(filepath, str):
            raise AnnotationError(
                f"{path}: {where}.filepath: expected a string, found {found(filepath)}"
            )
        split = entry.get("split", MISSING)
        if not isinstance(split, str) or split not in KARPATHY_SPLITS:
            raise AnnotationError(
                f"{path}: {where}.split: expected one of {', '.join(KARPATHY_SPLITS)}, found "
                f"{found(split)}"
            )
        image_id = Path(filepath, filename).as_posix()
        if image_id in seen:
            raise AnnotationError(
                f"{path}: {where}: duplicate image {image_id!r}, already given at "
                f"images[{seen[image_id]}]; expected each image once"
            )
        seen[image_id] = i
        captions = _karpathy_captions(entry.get("sentences", MISSING), path, where)
        objects = _karpathy_objects(entry.get("objects"), path, where)
        size = _karpathy_size(entry, path, where)
        if split == "restval":
            if restval == "skip":
                continue
            split = restval
        records.append(ImageRecord(image_id, root / image_id, split, captions, objects, size))
    return records


def _karpathy_captions(sentences: Any, path: Path, where: str) -> tuple[str, ...]:
    """The captions of one Karpathy image entry, from tokens where present, else from raw."""
    if not isinstance(sentences, list) or not sentences:
        raise AnnotationError(
            f"{path}: {where}.sentences: expected a non-empty list of sentences, found "
            f"{found(sentences)}"
        )
    captions: list[str] = []
    # The place (images[i].sentences[j]) is spelt out only in an error: formatting it for
    # each of COCO's 600k sentences took longer than the checks.
    for j, sentence in enumerate(sentences):
        if not isinstance(sentence, dict):
            raise AnnotationError(
                f"{path}: {where}.sentences[{j}]: expected an object with 'tokens' or 'raw', "
                f"found {found(sentence)}"
            )
        caption = ""
        tokens = sentence.get("tokens")
        if tokens is not None:
            try:
                # str.join refuses any item that is not a string: the check of every token
                # in one C loop, without a Python call per token (600k captions in COCO).
                joined = " ".join(tokens) if isinstance(tokens, list) else None
            except TypeError:
                joined = None
            if joined is None:
                raise AnnotationError(
                    f"{path}: {where}.sentences[{j}].tokens: expected a list of strings, "
                    f"found {found(tokens)}"
                )
            # Splitting again collapses blank tokens and any whitespace inside one.
            caption = " ".join(joined.lower().split())
        if not caption:
            raw = sentence.get("raw")
            if raw is not None and not isinstance(raw, str):
                raise AnnotationError(
                    f"{path}: {where}.sentences[{j}].raw: expected a string, found {found(raw)}"
                )
            caption = normalise_caption(raw or "")
        if not caption:
            raise AnnotationError(
                f"{path}: {where}.sentences[{j}]: expected non-empty 'tokens' or 'raw' text, "
                "found neither"
            )
        captions.append(caption)
    return tuple(captions)


def _karpathy_objects(objects: Any, path: Path, where: str) -> tuple[dict[str, Any], ...]:
    """The optional object list of an image entry, unchanged."""
    if objects is None:
        return ()
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise AnnotationError(
            f"{path}: {where}.objects: expected a list of objects, found {found(objects)}"
        )
    return tuple(objects)


def _karpathy_size(entry: dict[str, Any], path: Path, where: str) -> tuple[int, int] | None:
    """``(width, height)`` when the entry gives both, else ``None``."""
    if "width" not in entry and "height" not in entry:
        return None
    for key in ("width", "height"):
        value = entry.get(key, MISSING)
        # bool is an int subclass, but true is no width.
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise AnnotationError(
                f"{path}: {where}.{key}: expected a positive integer (width and height go "
                f"together), found {found(value)}"
            )
    return entry["width"], entry["height"]
