"""Reading caption annotations into image records, failing early with errors that say where.

Two families of files are supported:

* Karpathy split JSON (``dataset_coco.json``, ``dataset_flickr8k.json``,
  ``dataset_flickr30k.json`` and the scenes of :mod:`seq2seq.data.scenes`): one object per
  image with its file name, split and tokenised reference sentences.
* Tables: CSV or TSV with a header row (columns ``image``, ``caption`` and optionally
  ``split``), or JSON lines with the same keys. Each row is one caption; the rows of an image
  are grouped into one record.

Every reader returns :class:`ImageRecord` objects in file order. Errors are
:class:`AnnotationError` and name the file with the line (tables) or the JSON path (Karpathy
files, e.g. ``images[12].sentences[0].tokens``) and what was expected there.
:func:`check_images` then finds the records whose image file is missing.
"""

from __future__ import annotations

import csv
import io
import json
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seq2seq.data.images import ImageError, load_image

SPLITS = ("train", "val", "test")
#: Splits of the Karpathy files; "restval" is the part of COCO val2014 outside val and test.
KARPATHY_SPLITS = (*SPLITS, "restval")
ON_MISSING = ("error", "skip")
#: Table extensions and their field delimiter; ``None`` marks JSON lines.
TABLE_FORMATS: dict[str, str | None] = {".csv": ",", ".tsv": "\t", ".jsonl": None}
SUPPORTED_EXTENSIONS = (".json", ".jsonl", ".csv", ".tsv")

# Distinguishes a missing key from an explicit null in error messages.
_MISSING = object()
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
    return _karpathy_records(_parse_json(path, _read_text(path)), path, Path(image_root), restval)


def read_table(
    path: str | Path, image_root: str | Path, *, default_split: str | None = None
) -> list[ImageRecord]:
    """Read a CSV, TSV or JSON lines file with one caption per row.

    CSV and TSV files (chosen by extension) need a header row naming the columns ``image`` and
    ``caption``, and optionally ``split``, in any order. CSV fields may be quoted; TSV fields
    are split on tabs only, since quotes are ordinary text in captions. JSON lines files
    (``.jsonl``, or ``.json`` holding one object per line) hold objects with string fields
    ``image``, ``caption`` and optionally ``split``. Blank lines are ignored. Rows of the same
    image become one record with several captions, in the order the rows appear.

    Args:
        path: the file.
        image_root: directory the ``image`` paths are relative to.
        default_split: split of rows that give none; without it every row needs a split.

    Returns:
        One record per distinct image, in order of first appearance.

    Raises:
        AnnotationError: the file is unreadable or malformed; the message gives ``file:line``.
        ValueError: ``default_split`` is not a split.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (*TABLE_FORMATS, ".json"):
        raise AnnotationError(
            f"{path}: unsupported table format {suffix or '(no extension)'!r}; expected .csv, "
            ".tsv, .jsonl or .json (JSON lines)"
        )
    return _table_records(path, _read_text(path), Path(image_root), default_split)


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
    path = Path(path)
    root = Path(image_root)
    suffix = path.suffix.lower()
    if suffix in TABLE_FORMATS:
        return read_table(path, root, default_split=default_split)
    if suffix != ".json":
        raise AnnotationError(
            f"{path}: unsupported annotation format {suffix or '(no extension)'!r}; expected "
            f"one of {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if _looks_like_json_lines(text):
            return _table_records(path, text, root, default_split)
        raise _json_error(path, exc) from None
    if isinstance(data, dict) and "image" in data and "images" not in data:
        # A JSON lines file with a single line is also a valid JSON document.
        return _table_records(path, text, root, default_split)
    if not isinstance(data, dict) or "images" not in data:
        raise AnnotationError(
            f"{path}: expected a Karpathy split object with an 'images' list, or JSON lines "
            f"with 'image' and 'caption'; found {_found(data)}"
        )
    return _karpathy_records(data, path, root, restval)


def check_images(
    records: Iterable[ImageRecord], *, on_missing: str = "error"
) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Split records into those whose image file exists and those whose file does not.

    A file counts as missing when it does not exist, is not a regular file, or is empty. Only
    the file system is consulted; whether the file decodes is left to
    :func:`seq2seq.data.images.load_image`.

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
        :class:`~seq2seq.data.images.ImageError` message (which names the file).
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


# --- Karpathy JSON -------------------------------------------------------------------------


def _karpathy_records(data: Any, path: Path, root: Path, restval: str) -> list[ImageRecord]:
    """Records from a parsed Karpathy split document."""
    if restval not in (*SPLITS, "skip"):
        raise ValueError(f"restval must be one of {', '.join(SPLITS)} or 'skip', got {restval!r}")
    images = data.get("images", _MISSING) if isinstance(data, dict) else _MISSING
    if not isinstance(images, list):
        raise AnnotationError(
            f"{path}: expected a JSON object with an 'images' list at the top level "
            f"(Karpathy split format), found {_found(images if isinstance(data, dict) else data)}"
        )
    records: list[ImageRecord] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(entry, dict):
            raise AnnotationError(f"{path}: {where}: expected an object, found {_found(entry)}")
        filename = entry.get("filename", _MISSING)
        if not isinstance(filename, str) or not filename.strip():
            raise AnnotationError(
                f"{path}: {where}.filename: expected a non-empty string, found {_found(filename)}"
            )
        filepath = entry.get("filepath") or ""
        if not isinstance(filepath, str):
            raise AnnotationError(
                f"{path}: {where}.filepath: expected a string, found {_found(filepath)}"
            )
        split = entry.get("split", _MISSING)
        if not isinstance(split, str) or split not in KARPATHY_SPLITS:
            raise AnnotationError(
                f"{path}: {where}.split: expected one of {', '.join(KARPATHY_SPLITS)}, found "
                f"{_found(split)}"
            )
        image_id = Path(filepath, filename).as_posix()
        if image_id in seen:
            raise AnnotationError(
                f"{path}: {where}: duplicate image {image_id!r}, already given at "
                f"images[{seen[image_id]}]; expected each image once"
            )
        seen[image_id] = i
        captions = _karpathy_captions(entry.get("sentences", _MISSING), path, where)
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
            f"{_found(sentences)}"
        )
    captions: list[str] = []
    for j, sentence in enumerate(sentences):
        here = f"{where}.sentences[{j}]"
        if not isinstance(sentence, dict):
            raise AnnotationError(
                f"{path}: {here}: expected an object with 'tokens' or 'raw', found "
                f"{_found(sentence)}"
            )
        caption = ""
        tokens = sentence.get("tokens")
        if tokens is not None:
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise AnnotationError(
                    f"{path}: {here}.tokens: expected a list of strings, found {_found(tokens)}"
                )
            # Splitting again collapses blank tokens and any whitespace inside one.
            caption = " ".join(" ".join(tokens).lower().split())
        if not caption:
            raw = sentence.get("raw")
            if raw is not None and not isinstance(raw, str):
                raise AnnotationError(f"{path}: {here}.raw: expected a string, found {_found(raw)}")
            caption = normalise_caption(raw or "")
        if not caption:
            raise AnnotationError(
                f"{path}: {here}: expected non-empty 'tokens' or 'raw' text, found neither"
            )
        captions.append(caption)
    return tuple(captions)


def _karpathy_objects(objects: Any, path: Path, where: str) -> tuple[dict[str, Any], ...]:
    """The optional object list of an image entry, unchanged."""
    if objects is None:
        return ()
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise AnnotationError(
            f"{path}: {where}.objects: expected a list of objects, found {_found(objects)}"
        )
    return tuple(objects)


def _karpathy_size(entry: dict[str, Any], path: Path, where: str) -> tuple[int, int] | None:
    """``(width, height)`` when the entry gives both, else ``None``."""
    if "width" not in entry and "height" not in entry:
        return None
    for key in ("width", "height"):
        value = entry.get(key, _MISSING)
        # bool is an int subclass, but true is no width.
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise AnnotationError(
                f"{path}: {where}.{key}: expected a positive integer (width and height go "
                f"together), found {_found(value)}"
            )
    return entry["width"], entry["height"]


# --- Tables ---------------------------------------------------------------------------------

# (line number, image, caption, split or None) for each row of a table.
_Row = tuple[int, str, str, str | None]


def _table_records(
    path: Path, text: str, root: Path, default_split: str | None
) -> list[ImageRecord]:
    """Group the rows of a table file into one record per image."""
    if default_split is not None and default_split not in SPLITS:
        raise ValueError(
            f"default_split must be one of {', '.join(SPLITS)} or None, got {default_split!r}"
        )
    delimiter = TABLE_FORMATS.get(path.suffix.lower())
    rows = _json_lines(path, text) if delimiter is None else _csv_rows(path, text, delimiter)
    # image_id -> (first line, split, captions); dicts keep first-seen order.
    groups: dict[str, tuple[int, str, list[str]]] = {}
    for line, image, caption, split in rows:
        if not image.strip():
            raise AnnotationError(f"{path}:{line}: empty 'image' field; expected an image path")
        image_id = Path(image.strip()).as_posix()
        normalised = normalise_caption(caption)
        if not normalised:
            raise AnnotationError(
                f"{path}:{line}: empty 'caption' for image {image_id!r}; expected caption text"
            )
        split = (split or "").strip() or default_split
        if split is None:
            raise AnnotationError(
                f"{path}:{line}: no split for image {image_id!r}; add a 'split' column "
                "(train, val or test) or pass default_split"
            )
        if split not in SPLITS:
            raise AnnotationError(
                f"{path}:{line}: 'split' is {split!r}; expected one of {', '.join(SPLITS)}"
            )
        if image_id not in groups:
            groups[image_id] = (line, split, [normalised])
            continue
        first_line, first_split, captions = groups[image_id]
        if split != first_split:
            raise AnnotationError(
                f"{path}:{line}: image {image_id!r} is in split {split!r} here but in "
                f"{first_split!r} on line {first_line}; expected one split per image"
            )
        captions.append(normalised)
    return [
        ImageRecord(image_id, root / image_id, split, tuple(captions))
        for image_id, (_, split, captions) in groups.items()
    ]


def _csv_rows(path: Path, text: str, delimiter: str) -> Iterator[_Row]:
    """Rows of a CSV or TSV file with a header naming ``image``, ``caption`` and ``split``."""
    # newline="" lets csv see the raw line endings (needed for quoted fields spanning lines);
    # StringIO then splits lines on \n and \r only, never inside a caption on U+2028.
    source = io.StringIO(text, newline="")
    if delimiter == "\t":
        reader = csv.reader(source, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(source, delimiter=delimiter, strict=True)
    kind = "tab" if delimiter == "\t" else "comma"
    try:
        header = next((row for row in reader if any(f.strip() for f in row)), None)
        if header is None:
            raise AnnotationError(
                f"{path}: empty file; expected a header row with columns 'image' and 'caption' "
                "(optionally 'split')"
            )
        names = [name.strip().lower() for name in header]
        missing = [name for name in ("image", "caption") if name not in names]
        repeated = sorted({name for name in names if name and names.count(name) > 1})
        if missing or repeated:
            problem = (
                "lacks " + ", ".join(map(repr, missing))
                if missing
                else "repeats " + ", ".join(map(repr, repeated))
            )
            raise AnnotationError(
                f"{path}:{reader.line_num}: header {problem}; expected {kind}-separated columns "
                f"'image' and 'caption' (optionally 'split') once each, found {header}"
            )
        image_col, caption_col = names.index("image"), names.index("caption")
        split_col = names.index("split") if "split" in names else None
        for row in reader:
            if not any(field.strip() for field in row):
                continue
            if len(row) != len(names):
                raise AnnotationError(
                    f"{path}:{reader.line_num}: expected {len(names)} {kind}-separated fields as "
                    f"in the header, found {len(row)}"
                )
            split = row[split_col] if split_col is not None else None
            yield reader.line_num, row[image_col], row[caption_col], split
    except csv.Error as exc:
        raise AnnotationError(
            f"{path}:{reader.line_num}: malformed {kind}-separated line ({exc})"
        ) from None


def _json_lines(path: Path, text: str) -> Iterator[_Row]:
    """Rows of a JSON lines file of ``{"image", "caption", "split"?}`` objects."""
    # Split on \n only: str.splitlines would also split inside a caption holding U+2028.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AnnotationError(
                f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}); expected "
                "one object per line"
            ) from None
        if not isinstance(item, dict):
            raise AnnotationError(
                f"{path}:{number}: expected an object with 'image' and 'caption', found "
                f"{_found(item)}"
            )
        for key in ("image", "caption", "split"):
            value = item.get(key, _MISSING)
            if value is _MISSING and key == "split":
                continue
            if not isinstance(value, str):
                raise AnnotationError(
                    f"{path}:{number}: field {key!r} must be a string, found {_found(value)}"
                )
        yield number, item["image"], item["caption"], item.get("split")


def _looks_like_json_lines(text: str) -> bool:
    """Whether the first non-blank line of ``text`` is a JSON object on its own."""
    first = next((line for line in text.split("\n") if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


# --- Shared helpers -------------------------------------------------------------------------


def _read_text(path: Path) -> str:
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


def _parse_json(path: Path, text: str) -> Any:
    """Parse a whole JSON document."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _json_error(path, exc) from None


def _json_error(path: Path, exc: json.JSONDecodeError) -> AnnotationError:
    """An :class:`AnnotationError` with the line and column of a JSON syntax error."""
    return AnnotationError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})")


def _found(value: Any) -> str:
    """A short description of a JSON value for error messages."""
    if value is _MISSING:
        return "nothing (key missing)"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)" if value else "an empty list"
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 40 else shown[:37] + "..."


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
