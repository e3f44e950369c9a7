"""The unit of work of corpus preparation: read a range of aligned lines, encode the pairs.

A worker process gets the byte range of the same lines in each file (found by
:mod:`seq2seq.translation.scan`), so the preparing process sends a few numbers, not text,
and gets back flat arrays: nothing it holds grows with the corpus. The same function runs in
the preparing process itself for a small corpus, where starting workers would cost more than
it saves.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from seq2seq.data.tokenizer import Tokenizer

#: The tokenizers of this process, set once by :func:`init_worker`.
_TOKENIZERS: tuple[Tokenizer, Tokenizer] | None = None


@dataclass(frozen=True)
class ChunkTask:
    """Lines ``first_line ...`` of a split, as byte ranges.

    Attributes:
        ranges: ``(path, start, end)`` per file: two files (plain format) or one (TSV).
        first_line: 0-based index of the first line of the range.
        columns: TSV fields of the source and the target; None for two plain files.
        errors: ``strict`` or ``replace`` (the scan already found every invalid byte).
    """

    ranges: tuple[tuple[str, int, int], ...]
    first_line: int
    columns: tuple[int, int] | None
    errors: str


@dataclass
class ChunkResult:
    """The non-empty pairs of a chunk, encoded.

    Attributes:
        src_ids: ``(sum(src_lengths),)`` int64 source ids, pair after pair.
        src_lengths: ``(pairs,)`` int64.
        tgt_ids: ``(sum(tgt_lengths),)`` int64 target ids.
        tgt_lengths: ``(pairs,)`` int64.
        tgt_text: ``(sum(text_lengths),)`` uint8 UTF-8 of the stripped targets (references).
        text_lengths: ``(pairs,)`` int64 bytes of each target.
        line_numbers: ``(pairs,)`` int64 1-based line of each pair in its file(s).
        lines: lines read (kept or not).
    """

    src_ids: np.ndarray
    src_lengths: np.ndarray
    tgt_ids: np.ndarray
    tgt_lengths: np.ndarray
    tgt_text: np.ndarray
    text_lengths: np.ndarray
    line_numbers: np.ndarray
    lines: int


def init_worker(src_state: dict[str, Any], tgt_state: dict[str, Any]) -> None:
    """Build this process's tokenizers from their states (once per worker)."""
    global _TOKENIZERS
    _TOKENIZERS = (Tokenizer.from_state(src_state), Tokenizer.from_state(tgt_state))


def _read_lines(path: str, start: int, end: int, errors: str) -> list[str]:
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    lines = data.decode("utf-8", errors=errors).split("\n")
    if data.endswith(b"\n"):
        lines.pop()  # a final newline ends the last line; it starts none
    return lines


def _flat(ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    values = np.fromiter(
        itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum())
    )
    return values, lengths


def encode_chunk(task: ChunkTask) -> ChunkResult:
    """Read, strip, drop empty pairs and encode the lines of ``task``."""
    if _TOKENIZERS is None:
        raise RuntimeError("init_worker was not called in this process")
    src_tok, tgt_tok = _TOKENIZERS
    if task.columns is None:
        src_lines = _read_lines(*task.ranges[0], task.errors)
        tgt_lines = _read_lines(*task.ranges[1], task.errors)
    else:
        src_lines, tgt_lines = [], []
        s, t = task.columns
        for line in _read_lines(*task.ranges[0], task.errors):
            # Blank lines are empty pairs; the scan checked every other line's columns.
            fields = line.split("\t") if line.strip() else None
            src_lines.append(fields[s] if fields else "")
            tgt_lines.append(fields[t] if fields else "")
    if len(src_lines) != len(tgt_lines):
        raise RuntimeError(f"chunk at line {task.first_line + 1}: ranges are not aligned")
    src_kept, tgt_kept, numbers = [], [], []
    for j, (src, tgt) in enumerate(zip(src_lines, tgt_lines, strict=True)):
        src, tgt = src.strip(), tgt.strip()
        if src and tgt:
            src_kept.append(src)
            tgt_kept.append(tgt)
            numbers.append(task.first_line + j + 1)
    src_ids, src_lengths = _flat(src_tok.encode_batch(src_kept))
    tgt_ids, tgt_lengths = _flat(tgt_tok.encode_batch(tgt_kept))
    encoded = [t.encode("utf-8") for t in tgt_kept]
    text_lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    return ChunkResult(
        src_ids=src_ids,
        src_lengths=src_lengths,
        tgt_ids=tgt_ids,
        tgt_lengths=tgt_lengths,
        tgt_text=np.frombuffer(b"".join(encoded), dtype=np.uint8),
        text_lengths=text_lengths,
        line_numbers=np.array(numbers, dtype=np.int64),
        lines=len(src_lines),
    )
