"""One streaming pass over a corpus file that checks it and maps it, before any costly work.

The pass finds every error :mod:`seq2seq.translation.corpus` finds (invalid UTF-8 with its
line and byte, a TSV line with too few columns), counts the lines, marks the blank ones,
hashes the bytes, and notes where every :data:`CHUNK_LINES`-th line starts, so that
preparation can later hand byte ranges of aligned lines to worker processes. Memory stays at
one block of the file plus one flag per line, whatever the file's size.
"""

from __future__ import annotations

import codecs
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seq2seq.translation.corpus import CorpusError, Errors, invalid_utf8, too_few_columns

#: Lines per unit of work of the encoding processes.
CHUNK_LINES = 20_000
#: Bytes read at a time.
BLOCK_BYTES = 16 << 20


@dataclass
class FileScan:
    """What one pass over a file found.

    Attributes:
        path: the file.
        lines: number of lines (a final newline ends the last line, it starts none).
        size: bytes.
        sha256: hash of the bytes.
        starts: ``(ceil(lines / chunk_lines) + 1,)`` int64 byte offset where lines
            ``0, chunk_lines, 2 * chunk_lines, ...`` start, then the file's size.
        blank: ``(columns, lines)`` bool: line (or TSV field) empty after stripping.
        replaced: lines whose invalid UTF-8 was replaced (``errors="replace"`` only).
        chunk_lines: lines per chunk (``starts`` has one entry per chunk).
    """

    path: Path
    lines: int = 0
    size: int = 0
    sha256: str = ""
    starts: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    blank: np.ndarray = field(default_factory=lambda: np.zeros((1, 0), dtype=bool))
    replaced: int = 0
    chunk_lines: int = CHUNK_LINES

    def chunk(self, k: int) -> tuple[int, int]:
        """Byte range ``[start, end)`` of chunk ``k`` (lines ``k * chunk_lines`` onwards)."""
        return int(self.starts[k]), int(self.starts[k + 1])


def scan_file(
    path: Path, *, errors: Errors = "strict", columns: tuple[int, ...] | None = None
) -> FileScan:
    """Check and map ``path``: a plain file (``columns=None``) or a TSV file whose fields
    ``columns`` are read.

    Raises:
        CorpusError: the file is missing or unreadable, (strict) a line is not valid UTF-8,
            or a TSV line that is not blank has too few columns; the message names the file
            and line, as :func:`~seq2seq.translation.corpus.read_tsv` does.
    """
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
    # Read here, not bound as a default, so that tests can make chunks tiny.
    scan = FileScan(path=path, chunk_lines=CHUNK_LINES)
    digest = hashlib.sha256()
    starts: list[int] = []
    blanks: list[np.ndarray] = []
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed by the `with` below)
    except FileNotFoundError:
        raise CorpusError(f"{path}: file not found") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    with handle:
        carry = b""
        offset = 0  # file offset of carry[0]
        first = True
        while True:
            try:
                block = handle.read(BLOCK_BYTES)
            except OSError as exc:
                raise CorpusError(f"{path}: cannot read file ({exc.strerror or exc})") from None
            digest.update(block)
            if first:
                first = False
                if block.startswith(codecs.BOM_UTF8):
                    # Editors on Windows add a byte-order mark; lines start after it.
                    block = block[len(codecs.BOM_UTF8) :]
                    offset = len(codecs.BOM_UTF8)
            data = carry + block
            if not block:
                if data:  # the last line has no final newline
                    _scan_piece(
                        scan,
                        data,
                        offset,
                        final=True,
                        errors=errors,
                        columns=columns,
                        starts=starts,
                        blanks=blanks,
                    )
                break
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            _scan_piece(
                scan,
                data[:cut],
                offset,
                final=False,
                errors=errors,
                columns=columns,
                starts=starts,
                blanks=blanks,
            )
            carry, offset = data[cut:], offset + cut
        scan.size = handle.tell()
    scan.sha256 = digest.hexdigest()
    scan.starts = np.array([*starts, scan.size], dtype=np.int64)
    width = 1 if columns is None else len(columns)
    scan.blank = np.concatenate(blanks, axis=1) if blanks else np.zeros((width, 0), dtype=bool)
    return scan


def _scan_piece(
    scan: FileScan,
    piece: bytes,
    offset: int,
    *,
    final: bool,
    errors: Errors,
    columns: tuple[int, ...] | None,
    starts: list[int],
    blanks: list[np.ndarray],
) -> None:
    """Scan whole lines ``piece`` (ending in a newline unless ``final``) at file ``offset``."""
    first_line = scan.lines
    newlines = np.flatnonzero(np.frombuffer(piece, dtype=np.uint8) == 10)
    line_starts = np.concatenate(([0], newlines + 1))
    if not final:
        line_starts = line_starts[:-1]  # the position after the last newline starts nothing
    count = len(line_starts)
    # Chunk boundaries: lines whose global index is a multiple of chunk_lines.
    step = scan.chunk_lines
    starts.extend((offset + line_starts[-first_line % step :: step]).tolist())

    try:
        text = piece.decode("utf-8")
    except UnicodeDecodeError as exc:
        if errors == "strict":
            raise invalid_utf8(scan.path, piece, exc, first_line) from None
        # A newline ends any broken sequence, so decoding the piece with replacement is the
        # same as decoding line by line; count the lines that needed it.
        raw_lines = piece.split(b"\n")
        for raw in raw_lines[:count]:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                scan.replaced += 1
        text = piece.decode("utf-8", errors="replace")
    lines = text.split("\n")[:count]
    if columns is None:
        blank = np.array([not line.strip() for line in lines], dtype=bool)[None, :]
    else:
        blank = _tsv_blanks(scan.path, lines, columns, first_line)
    blanks.append(blank)
    scan.lines += count


def _tsv_blanks(
    path: Path, lines: list[str], columns: tuple[int, ...], first_line: int
) -> np.ndarray:
    """``(len(columns), len(lines))``: which of the chosen fields of each line are blank; a
    blank line counts as blank in every field rather than as a line with too few columns."""
    needed = max(columns) + 1
    blank = np.ones((len(columns), len(lines)), dtype=bool)
    for j, line in enumerate(lines):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < needed:
            raise too_few_columns(path, first_line + j + 1, (columns[0], columns[-1]), len(fields))
        for c, col in enumerate(columns):
            blank[c, j] = not fields[col].strip()
    return blank
