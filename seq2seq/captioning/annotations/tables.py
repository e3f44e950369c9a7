"""Caption tables: CSV or TSV with a header row (columns ``image``, ``caption`` and optionally
``split``), or JSON lines with the same keys. Each row is one caption; the rows of an image are
grouped into one record.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from seq2seq.captioning.annotations.records import (
    MISSING,
    SPLITS,
    AnnotationError,
    ImageRecord,
    found,
    normalise_caption,
    paused_gc,
    read_text,
)

#: Table extensions and their field delimiter; ``None`` marks JSON lines.
TABLE_FORMATS: dict[str, str | None] = {".csv": ",", ".tsv": "\t", ".jsonl": None}


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
    return table_records(path, read_text(path), Path(image_root), default_split)


# (line number, image, caption, split or None) for each row of a table.
_Row = tuple[int, str, str, str | None]


def table_records(
    path: Path, text: str, root: Path, default_split: str | None
) -> list[ImageRecord]:
    """Group the rows of a table file into one record per image."""
    with paused_gc():
        return _grouped(path, text, root, default_split)


def _grouped(path: Path, text: str, root: Path, default_split: str | None) -> list[ImageRecord]:
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
                f"{found(item)}"
            )
        for key in ("image", "caption", "split"):
            value = item.get(key, MISSING)
            if value is MISSING and key == "split":
                continue
            if not isinstance(value, str):
                raise AnnotationError(
                    f"{path}:{number}: field {key!r} must be a string, found {found(value)}"
                )
        yield number, item["image"], item["caption"], item.get("split")


def looks_like_json_lines(text: str) -> bool:
    """Whether the first non-blank line of ``text`` is a JSON object on its own."""
    first = next((line for line in text.split("\n") if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False
