"""Atomic file writes with the usual permissions, for corpora, data sets and caches.

A reader (another run, another DDP rank, a user's ``wc -l``) never sees a half-written file:
everything is written to a temporary file in the same folder and renamed over the target,
which is atomic on one file system. The temporary name is unique (process id and random
bytes) but is not made with :func:`tempfile.mkstemp`, whose files are private to their owner
(mode 0600): the files the toolkit writes get the mode the user's umask gives, like any
file written with ``open``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def temporary_sibling(path: Path) -> Path:
    """A fresh hidden name beside ``path`` for writing it before the rename."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; on success it replaces ``path``.

    ``mode`` is ``"w"`` (text, UTF-8, ``\\n`` line ends) or ``"wb"``. On any exception the
    temporary file is removed and ``path`` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes only ('w' or 'wb'), got mode {mode!r}")
    path = Path(path)
    tmp = temporary_sibling(path)
    text = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
    try:
        with open(tmp, mode.replace("w", "x"), **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path) as handle:
        handle.write(text)


def atomic_write_lines(path: str | Path, lines: Iterable[str]) -> None:
    """Write one line per item to ``path`` atomically, without holding them all."""
    with atomic_open(path) as handle:
        for line in lines:
            handle.write(line + "\n")
