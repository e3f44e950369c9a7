"""Finding the WMT'14 files (on disk, gzipped or inside archives) and reading their lines."""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from seq2seq.datasets.wmt14.errors import Wmt14Error

_ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar")
_BLOCK = 1 << 20


# --- finding files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A file to read: a plain or gzipped file, or a member of a tar archive."""

    path: Path
    #: The member inside the archive ``path``; ``None`` for a file on disk.
    member: tarfile.TarInfo | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return str(self.path) if self.member is None else f"{self.path}:{self.member.name}"

    @property
    def name(self) -> str:
        """The file's own name (a member's, for an archive member)."""
        return self.path.name if self.member is None else Path(self.member.name).name

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        """The decompressed bytes of the file; :class:`Wmt14Error` if it cannot be read.

        A damaged download (a truncated ``.gz`` or archive) fails while being read, so the
        error is raised from there too, naming this file rather than showing a traceback.
        """
        try:
            with self._open() as handle:
                yield handle
        except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
            raise Wmt14Error(f"{self}: cannot read the file ({exc})") from None

    @contextmanager
    def _open(self) -> Iterator[IO[bytes]]:
        with ExitStack() as stack:
            if self.member is None:
                raw: IO[bytes] = stack.enter_context(open(self.path, "rb"))
            else:
                tar = stack.enter_context(tarfile.open(self.path, "r:*"))
                # The TarInfo from the scan gives the member's offset, so this open seeks to it
                # instead of listing the archive again.
                member = tar.extractfile(self.member)
                if member is None:
                    raise Wmt14Error(f"{self}: not a regular file in the archive")
                raw = stack.enter_context(member)
            if self.name.endswith(".gz"):
                raw = stack.enter_context(gzip.GzipFile(fileobj=raw))
            yield raw


def _key(name: str) -> str:
    """The standard name a file stands for: its name without a ``.gz`` suffix."""
    return name[:-3] if name.endswith(".gz") else name


class Finder:
    """Looks files up by standard name anywhere under a folder, archives included.

    Files on disk are indexed at once; archives are listed only when a name is not on disk,
    smallest first and only until it is found, since listing a compressed archive means
    decompressing it (minutes for the UN corpus).
    """

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise Wmt14Error(f"{root}: not a folder (expected the folder of the WMT'14 files)")
        self.root = root
        self._files: dict[str, list[Path]] = {}
        archives: list[Path] = []
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                # Hidden files include the half-written temporaries of an interrupted build.
                if name.startswith("."):
                    continue
                path = Path(folder) / name
                if name.endswith(_ARCHIVE_SUFFIXES):
                    archives.append(path)
                else:
                    self._files.setdefault(_key(name), []).append(path)
        self._unscanned = sorted(archives, key=lambda p: (p.stat().st_size, str(p)))
        self._members: dict[str, list[Source]] = {}

    def _scan_next_archive(self) -> bool:
        """Index the members of the smallest unlisted archive; ``False`` when none is left."""
        if not self._unscanned:
            return False
        archive = self._unscanned.pop(0)
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    if member.isfile():
                        key = _key(Path(member.name).name)
                        self._members.setdefault(key, []).append(Source(archive, member))
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise Wmt14Error(f"{archive}: cannot read the archive ({exc})") from None
        return True

    def find(self, name: str) -> Source | None:
        """The file called ``name`` or ``name.gz``; a plain file is preferred to a gzipped one,
        a file on disk to an archive member, and then the first in path order."""
        paths = self._files.get(name)
        if paths:
            return Source(min(paths, key=lambda p: (p.name != name, str(p))))
        while name not in self._members and self._scan_next_archive():
            pass
        members = self._members.get(name)
        return members[0] if members else None

    def where(self, names: Iterable[str]) -> str:
        """Where ``names`` were looked for, for error messages."""
        listed = " and ".join(names)
        return (
            f"{listed} (plain or .gz, on disk or inside a .tgz/.tar archive) under {self.root}, "
            "searched recursively"
        )


# --- reading lines ----------------------------------------------------------------------------


def count_lines(source: Source) -> int:
    """The number of lines of a file, a last line without a newline included."""
    count = 0
    last = b"\n"
    with source.open() as handle:
        while block := handle.read(_BLOCK):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def read_lines(source: Source, errors: str = "strict") -> Iterator[str]:
    """The lines of a UTF-8 file, one at a time, without their ``\\n`` or ``\\r\\n``.

    Only ``\\n`` ends a line, as for ``wc -l`` and the toolkit's corpus reader: splitting at
    other Unicode line breaks would misalign the two sides of a corpus.
    """
    with source.open() as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8", errors=errors)
            except UnicodeDecodeError as exc:
                raise Wmt14Error(
                    f"{source}:{number}: invalid UTF-8 ({exc.reason}); expected UTF-8 text "
                    "(--encoding-errors replace substitutes U+FFFD)"
                ) from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            yield line.rstrip("\n").removesuffix("\r")


@dataclass(frozen=True)
class Pair:
    """Two line-aligned files, English and French, and their (checked) number of lines."""

    label: str
    en: Source
    fr: Source
    lines: int


def check_pair(label: str, en: Source, fr: Source) -> Pair:
    """Count the lines of both sides; :class:`Wmt14Error` if the counts differ."""
    en_lines, fr_lines = count_lines(en), count_lines(fr)
    if en_lines != fr_lines:
        raise Wmt14Error(
            f"{label}: {en} has {en_lines} lines but {fr} has {fr_lines}; "
            "the English and French files must be line-aligned"
        )
    return Pair(label, en, fr, en_lines)


def read_pair(pair: Pair, errors: str = "strict") -> Iterator[tuple[str, str]]:
    """The ``(English, French)`` lines of a checked pair, streamed."""
    en, fr = read_lines(pair.en, errors), read_lines(pair.fr, errors)
    try:
        yield from zip(en, fr, strict=True)
    except ValueError:
        # The files were counted before, so only a file changed since then gets here.
        raise Wmt14Error(
            f"{pair.label}: {pair.en} and {pair.fr} no longer have the same number of lines"
        ) from None
