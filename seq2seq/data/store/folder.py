"""The life cycle of a store folder: a name keyed by what it was built from, built once.

``root/<key>/`` holds a finished store; its ``manifest.json`` is written last and the folder
is renamed into place only when complete, so a folder under its final name is always whole.
While one process builds, it holds ``root/.<key>.lock`` (``flock``): other processes that want
the same store (DDP ranks, DataLoader workers never do this, other runs on the machine) block
on the lock and then map what it built. A builder that dies releases the lock with its last
breath (the kernel drops it), leaves only a ``.<key>.*.tmp`` folder, which no reader ever
opens, and the next process to take the lock removes it and builds again.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from seq2seq.data.files import atomic_write_text

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def store_key(parts: Mapping[str, Any]) -> str:
    """16 hex digits of a hash of ``parts`` (JSON with sorted keys)."""
    text = json.dumps(dict(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def file_fingerprint(path: Path) -> dict[str, Any]:
    """What identifies a source file cheaply: its resolved path, size and modification time
    (the content hash goes into the manifest, computed while the file is read anyway)."""
    stat = path.stat()
    return {"path": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a finished store folder."""
    return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))


def write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``folder/manifest.json`` (atomically; the last file a build writes)."""
    atomic_write_text(folder / MANIFEST, json.dumps(dict(manifest), indent=2, sort_keys=True))


@contextmanager
def exclusive(lock: Path, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock`` (created if missing), saying so when another
    process holds it and this one waits."""
    with open(lock, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            log.info("waiting for another process that is preparing %s", what)
            started = time.monotonic()
            fcntl.flock(handle, fcntl.LOCK_EX)
            log.info("waited %.1f s for %s", time.monotonic() - started, what)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(root: Path, key: str) -> None:
    """Delete the temporary folders of builds of ``key`` that died (called under the lock,
    so none of them is still being written)."""
    for leftover in root.glob(f".{key}.*.tmp"):
        log.info("removing %s, left by a preparation that did not finish", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def build_once(
    root: Path, key: str, build: Callable[[Path], dict[str, Any]], what: str
) -> tuple[Path, bool]:
    """The folder ``root/key``, built by ``build(tmp_folder) -> manifest`` if missing.

    Returns:
        ``(folder, built)``: ``built`` is False when an existing store was reused.

    Raises:
        OSError: ``root`` cannot be created or written.
    """
    final = root / key
    if (final / MANIFEST).is_file():
        return final, False
    root.mkdir(parents=True, exist_ok=True)
    with exclusive(root / f".{key}.lock", what):
        if (final / MANIFEST).is_file():
            return final, False  # another process built it while this one waited
        _remove_leftovers(root, key)
        if final.exists():
            # A folder without a manifest is not a store (e.g. copied in part): replace it.
            shutil.rmtree(final)
        tmp = root / f".{key}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        tmp.mkdir()
        try:
            manifest = build(tmp)
            write_manifest(tmp, manifest)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final, True
