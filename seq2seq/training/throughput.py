"""Training speed as it happens: target tokens per second, logged like the loss.

JoeyNMT, fairseq and Marian print their words or tokens per second while they train; this
callback logs ``train/tokens_per_s`` (real target tokens, padding excluded, per second of wall
clock) every ``trainer.log_every_n_steps`` optimiser steps, to the progress bar, TensorBoard
and ``csv/metrics.csv``, so runs on different machines, and against other toolkits
(``recipes/peers/``), compare by what each one logs.
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
import torch

from seq2seq.data.tokenizer import PAD


class TokenThroughput(pl.Callback):
    """Log the target tokens per second of the last ``trainer.log_every_n_steps`` steps.

    The clock runs from the first training batch of each fit, so start-up, data preparation
    and validation pauses are left out: a window that contains a validation is dropped.
    """

    def __init__(self) -> None:
        self._tokens = 0
        self._since: float | None = None
        self._validated = False
        self._last_step = -1

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if self._since is None:
            self._since = time.monotonic()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        target = getattr(batch, "tgt_out", None)
        if isinstance(target, torch.Tensor):
            self._tokens += int((target != PAD).sum())
        step, every = trainer.global_step, max(1, trainer.log_every_n_steps)
        # With gradient accumulation several batches end at the same optimiser step.
        if step % every or step == self._last_step or self._since is None:
            return
        self._last_step = step
        elapsed = time.monotonic() - self._since
        if self._tokens and elapsed > 0 and not self._validated:
            pl_module.log("train/tokens_per_s", self._tokens / elapsed, prog_bar=True)
        self._tokens, self._since, self._validated = 0, time.monotonic(), False

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The window now holds a validation: its rate would not be the training speed.
        self._validated = True
