"""Checkpoints written atomically: to a temporary file in the same folder, then renamed.

A run killed during a save (or a full disk) leaves the previous checkpoint intact, never a
truncated file in its place; a failed write is an error that names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins import TorchCheckpointIO

from seq2seq.data.files import atomic_open


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the message names the file and the reason, and
    ``errno`` is the underlying error's (``errno.ENOSPC`` for a full disk)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.errno = code


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with a write-then-rename save."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # A temporary sibling, fsynced, then renamed: readers never see half a checkpoint.
            with atomic_open(path, "wb") as handle:
                torch.save(checkpoint, handle)
        except (OSError, RuntimeError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            raise CheckpointWriteError(
                f"could not write checkpoint {path}: {reason}; the previous checkpoint is "
                "unchanged (is the disk full or the folder read-only?)",
                err.errno if isinstance(err, OSError) else None,
            ) from err
