"""An exponential moving average of the weights (``model.ema_decay``), evaluated and saved
in place of the raw weights.

After every optimiser step ``ema <- decay * ema + (1 - decay) * w`` for every floating-point
tensor of the module's state (parameters and float buffers), starting from the weights at
the start of training; integer buffers are not averaged. The average smooths out the noise
of the last updates and usually scores a little better than the raw weights (Polyak and
Juditsky 1992; the averaged weights of the Transformer and Marian recipes).

With the warm-up (``model.ema_warmup``, on by default) update ``t`` (0-based) uses
``min(decay, (1 + t) / (10 + t))`` instead of ``decay``, as TensorFlow's
``ExponentialMovingAverage(num_updates=...)``: without it an average of decay 0.999 still
weighs the random initial weights by ``0.999**t`` after ``t`` updates (a third after 1,000),
so a run shorter than several thousand updates evaluates mostly its first minutes. The
effective decay reaches 0.99 after about 900 updates and 0.999 after about 9,000.

- Validation and test run with the averaged weights (swapped in at their start, the
  training weights swapped back at their end), so the monitored metric, early stopping and
  the best checkpoint all follow the average.
- Every checkpoint Lightning writes with its full state (``last.ckpt``, the best checkpoint)
  holds the average as its weights, which is what ``seq2seq-translate`` and the other tools
  load; the training weights are kept in this callback's entry of the checkpoint, so that
  ``resume=true`` continues training the same weights and the same average. (A checkpoint
  written with ``save_weights_only`` calls no callback and keeps the training weights.)
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import Tensor

from seq2seq.checkpoint import CheckpointError
from seq2seq.errors import ConfigError

log = logging.getLogger(__name__)

#: Where the training weights are kept in this callback's entry of a checkpoint.
TRAINING_WEIGHTS = "training_weights"


def _floating(module: pl.LightningModule) -> dict[str, Tensor]:
    """The module's floating-point state tensors by state-dict name (they share the storage
    of the parameters and buffers)."""
    return {k: v for k, v in module.state_dict().items() if v.is_floating_point()}


class ExponentialMovingAverage(Callback):
    """Keeps the moving average of the weights and evaluates and saves with it.

    Args:
        decay: weight of the old average at each step, in ``[0, 1)``; 0.999 averages over
            the last thousand steps or so, 0 is the weights themselves.
        warmup: lower the decay of the first updates to ``(1 + t) / (10 + t)``.

    Raises:
        ConfigError: ``decay`` out of range (the message names ``model.ema_decay``).
    """

    def __init__(self, decay: float, warmup: bool = True) -> None:
        super().__init__()
        if isinstance(decay, bool) or not isinstance(decay, int | float) or not 0 <= decay < 1:
            raise ConfigError(f"model.ema_decay must be a number in [0, 1) or null, got {decay!r}")
        if not isinstance(warmup, bool):
            raise ConfigError(f"model.ema_warmup must be true or false, got {warmup!r}")
        self.decay = float(decay)
        self.warmup = warmup
        #: Optimiser steps averaged so far.
        self.updates = 0
        #: The average, in float32 (or wider), by state-dict name.
        self.shadow: dict[str, Tensor] | None = None
        #: The training weights while the average is swapped in.
        self._backup: dict[str, Tensor] | None = None
        self._last_step = -1
        self._restored = False

    # --- the average ----------------------------------------------------------------------
    def _ensure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Tensor]:
        """The average, started from the current weights when there is none, on their device.

        A run that loaded a checkpoint this callback did not write into (weights only, or
        trained without an average) starts the average afresh from the loaded weights rather
        than keep one of other weights.
        """
        if trainer.ckpt_path and not self._restored:
            self.shadow, self.updates = None, 0
            self._restored = True
        weights = _floating(pl_module)
        if self.shadow is None:
            self.shadow = {k: v.detach().to(torch.promote_types(v.dtype, torch.float32)).clone()
                           for k, v in weights.items()}  # fmt: skip
        else:
            for name, value in weights.items():
                if self.shadow[name].device != value.device:
                    self.shadow[name] = self.shadow[name].to(value.device)
        return self.shadow

    def current_decay(self) -> float:
        """The decay of the next update (``updates`` of them done so far)."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, pl_module: pl.LightningModule) -> None:
        """One step of the average towards the current weights."""
        assert self.shadow is not None, "the average is started in on_train_start"
        weight = 1.0 - self.current_decay()
        for name, value in _floating(pl_module).items():
            self.shadow[name].lerp_(value.to(self.shadow[name].dtype), weight)
        self.updates += 1

    # --- swapping for evaluation ----------------------------------------------------------
    @torch.no_grad()
    def swap_in(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Put the average into the module, keeping the training weights aside."""
        if self._backup is not None:
            return
        shadow = self._ensure(trainer, pl_module)
        weights = _floating(pl_module)
        self._backup = {k: v.clone() for k, v in weights.items()}
        for name, value in weights.items():
            value.copy_(shadow[name])

    @torch.no_grad()
    def swap_out(self, pl_module: pl.LightningModule) -> None:
        """Put the training weights back."""
        if self._backup is None:
            return
        for name, value in _floating(pl_module).items():
            value.copy_(self._backup[name])
        self._backup = None

    # --- Lightning hooks ------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restored = False  # set when this run loads this callback's state

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After the checkpoint's loops are restored: the step count is the resumed one.
        self._ensure(trainer, pl_module)
        self._last_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        # Only after an optimiser step (not a skipped batch, nor an accumulation step).
        if trainer.global_step != self._last_step:
            self._last_step = trainer.global_step
            self._ensure(trainer, pl_module)
            self.update(pl_module)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.swap_in(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.swap_out(pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.swap_in(trainer, pl_module)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.swap_out(pl_module)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self.swap_out(pl_module)

    # --- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "warmup": self.warmup, "updates": self.updates}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = float(state_dict.get("decay", self.decay))
        if saved != self.decay:
            log.warning(
                "model.ema_decay is %s; the checkpoint's average was kept with %s",
                self.decay,
                saved,
            )

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        shadow = self._ensure(trainer, pl_module)
        weights = checkpoint["state_dict"]
        # While the average is swapped in (a best checkpoint written at the end of a
        # validation) the module holds the average; the training weights are the backup.
        training = self._backup if self._backup is not None else _floating(pl_module)
        checkpoint.setdefault("callbacks", {}).setdefault(self.state_key, self.state_dict())
        checkpoint["callbacks"][self.state_key][TRAINING_WEIGHTS] = {
            name: value.detach().clone() for name, value in training.items()
        }
        for name in training:
            weights[name] = shadow[name].to(weights[name].dtype).clone()

    @torch.no_grad()
    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # The module has just been given the checkpoint's weights: the average.
        state = (checkpoint.get("callbacks") or {}).get(self.state_key) or {}
        training = state.get(TRAINING_WEIGHTS)
        self._restored = True
        if training is None:
            self.shadow, self.updates = None, 0  # start afresh from the loaded weights
            return
        weights = _floating(pl_module)
        missing = sorted(set(weights) - set(training))
        if missing:
            raise CheckpointError(
                f"checkpoint {trainer.ckpt_path}: its moving-average entry lacks the training "
                f"weights {', '.join(missing[:3])}"
            )
        self.shadow = {
            name: value.detach().to(torch.promote_types(value.dtype, torch.float32)).clone()
            for name, value in weights.items()
        }
        for name, value in weights.items():
            value.copy_(training[name])
        self.updates = int(state.get("updates", 0))
        self._backup = None


def _kept_training_weights(checkpoint: dict[str, Any]) -> dict[str, Tensor] | None:
    """The training weights in the moving average's entry of ``checkpoint``, if any."""
    entries = (checkpoint.get("callbacks") or {}).values()
    return next(
        (e[TRAINING_WEIGHTS] for e in entries if isinstance(e, dict) and TRAINING_WEIGHTS in e),
        None,
    )


def holds_training_weights(checkpoint: dict[str, Any]) -> bool:
    """Whether ``checkpoint`` was saved by a run with a moving average (its weights are the
    average; its training weights are kept beside them)."""
    return _kept_training_weights(checkpoint) is not None


def training_state_dict(checkpoint: dict[str, Any], path: object) -> dict[str, Tensor]:
    """The state dict of ``checkpoint`` (read from ``path``) with the training weights that a
    run with ``model.ema_decay`` keeps beside the average it saves as its weights; integer
    buffers, which are not averaged, are the saved ones.

    Raises:
        CheckpointError: the checkpoint holds no training weights (trained without a moving
            average, averaged by ``seq2seq-average``, or written weights-only).
    """
    training = _kept_training_weights(checkpoint)
    if training is None:
        raise CheckpointError(
            f"checkpoint {path} holds no training weights: it was not saved by a run with "
            "model.ema_decay (its weights are the training weights)"
        )
    state = dict(checkpoint["state_dict"])
    missing = sorted(k for k, v in state.items() if v.is_floating_point() and k not in training)
    if missing:
        raise CheckpointError(
            f"checkpoint {path}: its moving-average entry lacks the training weights "
            f"{', '.join(missing[:3])}"
        )
    for name, value in training.items():
        if name in state:
            state[name] = value.to(state[name].dtype)
    return state
