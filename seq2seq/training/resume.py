"""``last.ckpt``, the checkpoint a run resumes from, kept current; and Ctrl-C as a clean stop.

Lightning's ``ModelCheckpoint`` (2.6) rewrites ``last.ckpt`` only when it also saves a
best-so-far checkpoint, and never in the middle of an epoch, so a run killed late in a long
epoch, or after epochs that did not improve, would lose much work. :class:`ResumeCheckpoint`
writes it every ``checkpoint.every_n_steps`` optimiser steps, at the end of every epoch, and
when the user presses Ctrl-C. All of these are batch boundaries, where the weights, the
optimiser and scheduler, Lightning's loop counters and the sampler's position agree; the
write itself is atomic (:mod:`seq2seq.training.checkpoint_io`).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.trainer.states import TrainerFn

log = logging.getLogger(__name__)

LAST = "last.ckpt"


class TrainingInterrupted(Exception):
    """Training stopped at the user's request (Ctrl-C); says which checkpoint was kept.

    Attributes:
        checkpoint: the checkpoint to resume from (None when none was written yet).
    """

    def __init__(self, message: str, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


class ResumeCheckpoint(Checkpoint):
    """Writes ``dirpath/last.ckpt`` for resuming, and stops cleanly on Ctrl-C.

    Args:
        dirpath: the run's checkpoint folder.
        every_n_steps: also write it every this many optimiser steps, mid-epoch too (None or
            0: only at the end of every epoch).

    On the first Ctrl-C (SIGINT) during ``fit`` the batch under way is finished, the
    checkpoint written, and :class:`TrainingInterrupted` raised. During validation nothing
    consistent can be saved (the decoded outputs would be lost), so it stops at once and keeps
    the last checkpoint written. A second Ctrl-C stops at once too (Lightning's own
    ``KeyboardInterrupt`` handling); checkpoints already written are kept either way.
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int | None = None) -> None:
        super().__init__()
        if every_n_steps is not None and every_n_steps < 0:
            raise ValueError(f"checkpoint.every_n_steps must be >= 0 or null, got {every_n_steps}")
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps or 0
        self._saved_step: int | None = None
        self._requested = False
        self._previous_handler: Any = None

    @property
    def path(self) -> Path:
        return self.dirpath / LAST

    @property
    def last_model_path(self) -> str:
        """Where Lightning's ``ckpt_path="last"`` looks for the latest checkpoint."""
        return str(self.path) if self.path.is_file() else ""

    # --- writing --------------------------------------------------------------------------
    def save(self, trainer: pl.Trainer) -> None:
        """Write the checkpoint now (every rank calls this; rank 0 writes)."""
        trainer.save_checkpoint(self.path, weights_only=False)  # all of it, to resume
        self._saved_step = trainer.global_step
        log.debug("wrote %s at global step %d", self.path, trainer.global_step)

    def _skip(self, trainer: pl.Trainer) -> bool:
        return bool(trainer.fast_dev_run) or trainer.sanity_checking

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if self._skip(trainer):
            return
        if self._stop_requested(trainer):
            self.save(trainer)
            self._stop(trainer, saved=True)
        step = trainer.global_step
        # A skipped batch (loss.nonfinite=skip) leaves the step unchanged: no second save.
        if self.every_n_steps and step % self.every_n_steps == 0 and step != self._saved_step:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning runs the epoch's validation before this hook, and the best-checkpoint
        # callback (listed before this one) has already updated its state.
        if self._skip(trainer):
            return
        self.save(trainer)
        if self._stop_requested(trainer):
            self._stop(trainer, saved=True)

    def on_validation_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        # Only the validation inside fit (trainer.validate() installs no handler).
        fitting = trainer.state.fn == TrainerFn.FITTING
        if fitting and not trainer.sanity_checking and self._stop_requested(trainer):
            self._stop(trainer, saved=False)

    # --- Ctrl-C ---------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._requested = False
        # Installed here, after Lightning has saved the signal handlers it restores when fit
        # ends (also after an error), so that it restores the user's, not this one; and only
        # from the main thread, the one place Python allows it.
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handler()

    def on_exception(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        self._restore_handler()

    def _restore_handler(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._requested:
            self._restore_handler()
            raise KeyboardInterrupt
        self._requested = True
        log.warning(
            "Ctrl-C: stopping after this batch and writing %s (press Ctrl-C again to stop at "
            "once, keeping the checkpoints already written)",
            self.path,
        )

    def _stop_requested(self, trainer: pl.Trainer) -> bool:
        if trainer.world_size > 1:
            # Every rank must stop at the same batch, or the others wait for it forever.
            return bool(trainer.strategy.reduce_boolean_decision(self._requested, all=False))
        return self._requested

    def _stop(self, trainer: pl.Trainer, saved: bool) -> None:
        self._restore_handler()
        where = f"global step {trainer.global_step} (epoch {trainer.current_epoch})"
        checkpoint = self.path if self.path.is_file() else None
        if saved:
            message = f"interrupted (Ctrl-C) at {where}; wrote {self.path}"
        elif checkpoint is not None:
            # Its step is known when this process wrote it (not yet, just after a resume).
            step = f" (global step {self._saved_step})" if self._saved_step is not None else ""
            message = f"interrupted (Ctrl-C) during validation at {where}; kept {checkpoint}{step}"
        else:
            message = f"interrupted (Ctrl-C) during validation at {where}; no checkpoint yet"
        raise TrainingInterrupted(message, checkpoint)
