"""Reading parallel text corpora, failing early with errors that say where and why.

Two layouts are supported: a pair of line-aligned plain text files (``train.en`` and
``train.fr``) and a single tab-separated file with one column per language. Both return a
:class:`Corpus` with the surrounding whitespace of every sentence stripped and the pairs where
either side is empty dropped (and counted).

Training does not read a corpus into memory this way: :mod:`seq2seq.translation.scan` and
:mod:`seq2seq.translation.prepare` read it once, streaming, into the corpus store, with the
same rules and the same errors (:func:`invalid_utf8` is shared). These readers are for a
corpus that fits in memory in a Python session, and they are what the store is tested
against (tests/translation/test_store.py).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

#: How undecodable bytes are handled: fail, or replace them with U+FFFD and count the lines.
Errors = Literal["strict", "replace"]


class CorpusError(ValueError):
    """A corpus file is missing or malformed; the message names the file (and line)."""


@dataclass
class Corpus:
    """Sentence pairs read from disk.

    Attributes:
        src: source sentences, stripped and non-empty.
        tgt: target sentences, aligned with ``src``.
        dropped_empty: pairs dropped because one side was empty or whitespace only.
        replaced_lines: lines whose invalid UTF-8 bytes were replaced with U+FFFD
            (only with ``errors="replace"``; counted per file, so a pair can count twice).
        source: a description of where the pairs came from, for logs.
        line_numbers: 1-based line number in the file(s) of each kept pair, so a sentence
            can be traced back to the corpus after empty pairs were dropped.
    """

    src: list[str]
    tgt: list[str]
    dropped_empty: int = 0
    replaced_lines: int = 0
    source: str = ""
    line_numbers: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.src)


def read_parallel(
    src_path: str | Path, tgt_path: str | Path, *, errors: Errors = "strict"
) -> Corpus:
    """Read two line-aligned text files, line ``i`` of one translating line ``i`` of the other.

    Args:
        src_path: source-language file, one sentence per line.
        tgt_path: target-language file with the same number of lines.
        errors: ``"strict"`` raises on bytes that are not valid UTF-8; ``"replace"`` replaces
            them with U+FFFD and counts the affected lines in ``Corpus.replaced_lines``.

    Returns:
        The non-empty pairs, whitespace-stripped.

    Raises:
        CorpusError: a file is missing or unreadable, the line counts differ, or (strict) a
            line is not valid UTF-8.
    """
    src_lines, src_replaced = _read_lines(Path(src_path), errors)
    tgt_lines, tgt_replaced = _read_lines(Path(tgt_path), errors)
    if len(src_lines) != len(tgt_lines):
        raise CorpusError(
            f"line counts differ: {src_path} has {len(src_lines)} lines but {tgt_path} has "
            f"{len(tgt_lines)}; the files must be line-aligned (one translation per line)"
        )
    corpus = _pair_up(src_lines, tgt_lines, source=f"{src_path} + {tgt_path}")
    corpus.replaced_lines = src_replaced + tgt_replaced
    return corpus


def read_tsv(
    path: str | Path, src_col: int = 0, tgt_col: int = 1, *, errors: Errors = "strict"
) -> Corpus:
    """Read a tab-separated file holding source and target in two of its columns.

    Fields are split on tabs only, without CSV quoting, because quote characters are ordinary
    text in sentences. Blank lines count as empty pairs (dropped), not as malformed lines.

    Args:
        path: the file.
        src_col: 0-based column of the source sentence.
        tgt_col: 0-based column of the target sentence.
        errors: see :func:`read_parallel`.

    Returns:
        The non-empty pairs, whitespace-stripped.

    Raises:
        CorpusError: the file is missing or unreadable, a non-blank line has too few columns,
            or (strict) a line is not valid UTF-8.
        ValueError: a column index is negative.
    """
    if src_col < 0 or tgt_col < 0:
        raise ValueError(f"column indices must be >= 0, got src_col={src_col}, tgt_col={tgt_col}")
    path = Path(path)
    lines, replaced = _read_lines(path, errors)
    needed = max(src_col, tgt_col) + 1
    src: list[str] = []
    tgt: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            src.append("")
            tgt.append("")
            continue
        fields = line.split("\t")
        if len(fields) < needed:
            raise too_few_columns(path, number, (src_col, tgt_col), len(fields))
        src.append(fields[src_col])
        tgt.append(fields[tgt_col])
    corpus = _pair_up(src, tgt, source=f"{path} (columns {src_col}, {tgt_col})")
    corpus.replaced_lines = replaced
    return corpus


def _read_lines(path: Path, errors: Errors) -> tuple[list[str], int]:
    """Decode a file into its lines (line endings removed) and count lines with replaced bytes.

    Only ``\\n`` ends a line (``\\r\\n`` too, as its ``\\r`` is stripped later): splitting on
    every Unicode line break, as ``str.splitlines`` does, would split a sentence containing
    U+2028 or a form feed in two and misalign the corpus.
    """
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"{path}: file not found") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if data.startswith(codecs.BOM_UTF8):
        # Editors on Windows add a byte-order mark; it would otherwise stick to the first word.
        data = data[len(codecs.BOM_UTF8) :]
    raw_lines = data.split(b"\n")
    if raw_lines[-1] == b"":
        # A final newline terminates the last line rather than starting an empty one.
        raw_lines.pop()
    try:
        # Decoding the whole file at once is much faster than line by line.
        return data.decode("utf-8").split("\n")[: len(raw_lines)], 0
    except UnicodeDecodeError as exc:
        if errors == "strict":
            raise invalid_utf8(path, data, exc) from None
    lines: list[str] = []
    replaced = 0
    for raw in raw_lines:
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(raw.decode("utf-8", errors="replace"))
            replaced += 1
    return lines, replaced


def too_few_columns(path: Path, number: int, columns: tuple[int, int], found: int) -> CorpusError:
    """The error for line ``number`` of the TSV file ``path`` having ``found`` fields."""
    needed = max(columns) + 1
    return CorpusError(
        f"{path}:{number}: expected at least {needed} tab-separated columns "
        f"(src_col={columns[0]}, tgt_col={columns[1]}) but found {found}"
    )


def invalid_utf8(
    path: Path, data: bytes, exc: UnicodeDecodeError, first_line: int = 0
) -> CorpusError:
    """The error for the invalid bytes ``exc`` found in ``data``, the bytes of ``path`` from
    line ``first_line + 1`` on: it names the file, the line, the bytes and the column."""
    line = first_line + data.count(b"\n", 0, exc.start) + 1
    column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    bad = exc.object[exc.start : exc.end]
    return CorpusError(
        f"{path}:{line}: invalid UTF-8 byte(s) {bad!r} at byte {column} of the line "
        f"({exc.reason}); expected UTF-8 text (data.encoding_errors=replace, or "
        "errors='replace' in Python, substitutes U+FFFD)"
    )


def _pair_up(src: list[str], tgt: list[str], source: str) -> Corpus:
    """Strip both sides (this also removes the ``\\r`` of CRLF endings) and drop empty pairs."""
    corpus = Corpus(src=[], tgt=[], source=source)
    for number, (s, t) in enumerate(zip(src, tgt, strict=True), start=1):
        s, t = s.strip(), t.strip()
        if not s or not t:
            corpus.dropped_empty += 1
            continue
        corpus.src.append(s)
        corpus.tgt.append(t)
        corpus.line_numbers.append(number)
    return corpus
