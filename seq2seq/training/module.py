"""What the translation and captioning Lightning modules share: the loss, the optimiser and
its parameter groups, the non-finite loss policy, and gathering decoded outputs across ranks.

A subclass says how a batch is encoded (:meth:`Seq2SeqModule.encode`), how hypotheses become
outputs, and how a split is scored; the model itself is the same encoder-decoder core.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from seq2seq.core import EncoderOutput
from seq2seq.data.tokenizer import PAD
from seq2seq.model import EncoderDecoder
from seq2seq.search.decode import DecodeConfig
from seq2seq.training.seqlevel import SeqLevelConfig, set_stage_lr, stage_step, step_generator

log = logging.getLogger(__name__)

NONFINITE = ("stop", "skip")


class Seq2SeqModule(pl.LightningModule):
    """Teacher-forced training of an :class:`EncoderDecoder` with a token cross-entropy.

    Args:
        model: the encoder-decoder.
        optimizer: partial optimiser factory, called with the parameters (or groups).
        scheduler: optional partial ``ReduceLROnPlateau`` factory, called with the optimiser.
        label_smoothing: label smoothing of the cross-entropy.
        nonfinite: on a NaN/infinite loss, ``stop`` with an error naming the step, or ``skip``
            the batch.
        monitor: the metric the scheduler follows (``val/bleu``, ``val/cider``...).
        val_decode: decoding for validation (greedy by default).
        test_decode: decoding for the test set.
        seqlevel: the sequence-level training stage (:mod:`seq2seq.training.seqlevel`);
            None: off.
    """

    def __init__(
        self,
        model: EncoderDecoder,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        label_smoothing: float = 0.0,
        nonfinite: str = "stop",
        monitor: str = "val/bleu",
        val_decode: DecodeConfig | None = None,
        test_decode: DecodeConfig | None = None,
        seqlevel: SeqLevelConfig | None = None,
    ) -> None:
        super().__init__()
        if nonfinite not in NONFINITE:
            raise ValueError(f"loss.nonfinite must be one of {NONFINITE}, got {nonfinite!r}")
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.label_smoothing = label_smoothing
        self.nonfinite = nonfinite
        self.monitor = monitor
        self.val_decode = val_decode or DecodeConfig(beam_size=1)
        self.test_decode = test_decode or DecodeConfig()
        self.seqlevel = seqlevel or SeqLevelConfig()
        #: Whether the stage's learning rate has been set (kept in checkpoints, so that a
        #: resumed run neither sets it twice nor forgets it).
        self._stage_started = False
        self._outputs: dict[int, Any] = {}
        #: Seconds per example of validation decoding, and how many times dearer the test
        #: search is (measured on one batch when :attr:`time_test_decoding` is set).
        self.time_test_decoding = False
        self._val_seconds = 0.0
        self._val_examples = 0
        self._val_seconds_per_example: float | None = None
        self._test_cost_ratio: float | None = None
        self._first_test_seconds_per_example: float | None = None

    # --- building from the composed config -----------------------------------------------
    @classmethod
    def from_config(cls, cfg: DictConfig, datamodule: Any) -> Seq2SeqModule:
        """The module of a ``seq2seq-train`` run: ``cfg`` is the whole composed config and
        ``datamodule`` the instantiated ``cfg.data`` (prepared by this call)."""
        raise NotImplementedError

    @staticmethod
    def shared_options(cfg: DictConfig, datamodule: Any) -> dict[str, Any]:
        """The keyword arguments every task's module takes from the composed config."""
        return {
            "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
            "optimizer": instantiate(cfg.optimizer),
            "scheduler": instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
            "label_smoothing": cfg.loss.label_smoothing,
            "nonfinite": cfg.loss.nonfinite,
            "monitor": cfg.monitor,
            "val_decode": DecodeConfig(**cfg.decode.val),
            "test_decode": DecodeConfig(**cfg.decode.test),
            "seqlevel": SeqLevelConfig.from_config(cfg.get("seqlevel"), seed=cfg.seed),
            "references": datamodule.references,
        }

    # --- what a run prints at the end -------------------------------------------------------
    def test_results(self) -> dict[str, Any]:
        """The scores of the last test run, as ``test_<metric>`` entries (empty if none)."""
        return {}

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        """Lines that report ``result`` (from :meth:`test_results`) at the end of a run."""
        return []

    def usage(self, checkpoint: str) -> str:
        """How to use a checkpoint of this module from the command line."""
        return ""

    # --- what a task says -----------------------------------------------------------------
    def encode(self, batch: Any) -> EncoderOutput:
        """The encoder output of a batch's inputs."""
        raise NotImplementedError

    @staticmethod
    def batch_size(batch: Any) -> int:
        return int(batch.tgt_in.size(0))

    def parameter_groups(self) -> Iterable[Any]:
        """What the optimiser is built over: all parameters, or groups with their own LR."""
        return self.parameters()

    # --- what a task says for the sequence-level stage -------------------------------------
    def encode_inputs(self, batch: Any) -> EncoderOutput:
        """The encoder output of each distinct input of a batch, which the stage samples
        from (:meth:`encode` may repeat an input, e.g. an image for each of its captions)."""
        return self.encode(batch)

    def sample_max_len(self, batch: Any) -> Tensor | int:
        """Most tokens a sample may have: an int, or ``(B,)`` one per input."""
        return self.seqlevel.max_len

    def sample_rewards(self, batch: Any, outputs: list[list[int]], rows: Tensor) -> Tensor:
        """``(N,)`` the reward of each output (token ids without EOS) against the references
        of the batch's input ``rows[i]`` (an index into :meth:`encode_inputs`' rows)."""
        raise NotImplementedError(f"{type(self).__name__} has no sequence-level reward")

    # --- training -------------------------------------------------------------------------
    def loss(self, batch: Any) -> tuple[Tensor, Tensor]:
        """Summed token cross-entropy (plus the decoder's auxiliary loss) of the batch, and
        its number of target tokens."""
        enc = self.encode(batch)
        target_mask = batch.tgt_out != PAD
        # Logits of the real target positions only: the output layer and the softmax over
        # the vocabulary are the largest part of a step, and padding is a tenth of a batch.
        out = self.model.decoder(batch.tgt_in, enc, target_mask)
        loss = F.cross_entropy(
            out.logits.float(),
            batch.tgt_out[target_mask],
            reduction="sum",
            label_smoothing=self.label_smoothing,
        )
        aux = self.model.decoder.auxiliary_loss(out.attention, target_mask, enc.mask)
        if aux is not None:
            loss = loss + aux
        return loss, target_mask.sum()

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        stage = None
        if self.seqlevel.active(self.current_epoch):
            self._start_stage()
            generator = step_generator(
                self.seqlevel.seed, self.global_step, batch_idx, self.global_rank, self.device
            )
            stage = stage_step(self, self.seqlevel, batch, generator)
            loss = stage.loss
        else:
            total, tokens = self.loss(batch)
            loss = total / tokens.clamp(min=1)
        if not torch.isfinite(loss):
            where = (
                f"global step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})"
            )
            if self.nonfinite == "skip":
                log.warning("loss is %s at %s: batch skipped", loss.item(), where)
                return None  # Lightning then skips the backward pass and the optimiser step
            raise FloatingPointError(
                f"loss is {loss.item()} at {where}; stopping, checkpoints written so far are "
                "kept. Lower optimizer.lr, or set loss.nonfinite=skip to skip such batches"
            )
        size = self.batch_size(batch)
        if stage is not None:
            self.log("train/seqlevel_loss", loss, prog_bar=True, batch_size=size)
            self.log("train/reward", stage.reward, prog_bar=True, batch_size=size)
            self.log("train/baseline", stage.baseline, batch_size=size)
            return loss
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/tokens", tokens.float(), reduce_fx="sum", batch_size=size)
        return loss

    def on_train_epoch_start(self) -> None:
        # Lightning sets the epoch of a DataLoader's sampler, not of its batch sampler; ours
        # draws a new batch order per epoch, and its iterator only starts after this hook.
        batch_sampler = getattr(self.trainer.train_dataloader, "batch_sampler", None)
        if hasattr(batch_sampler, "set_epoch"):
            batch_sampler.set_epoch(self.current_epoch)

    def _start_stage(self) -> None:
        """Give the optimiser the stage's learning rate once, at the stage's first batch.

        Done here rather than at the epoch's start: Lightning skips that hook when it resumes
        mid-epoch, and a run may be resumed into the stage from a checkpoint written before it.
        """
        if self._stage_started:
            return
        if self.seqlevel.lr is not None:
            rates = set_stage_lr(self.trainer.optimizers[0], self.seqlevel.lr)
            log.info("sequence-level stage: learning rates %s", ", ".join(f"{r:g}" for r in rates))
        log.info(
            "epoch %d: sequence-level training (%d samples per input, %s baseline, %s reward)",
            self.current_epoch,
            self.seqlevel.samples,
            self.seqlevel.baseline,
            self.seqlevel.reward,
        )
        self._stage_started = True

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Task modules add their payload and call this too.
        checkpoint["seqlevel"] = {"started": self._stage_started}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._stage_started = bool(checkpoint.get("seqlevel", {}).get("started", False))

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameter_groups())
        if self.scheduler_factory is None:
            return optimizer
        mode = "min" if "loss" in self.monitor else "max"
        scheduler = self.scheduler_factory(optimizer, mode=mode)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch"},
        }

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        total, tokens = self.loss(batch)
        size = self.batch_size(batch)
        self.log("val/loss", total / tokens.clamp(min=1), batch_size=size, sync_dist=True)
        start = time.monotonic()
        self.decode_batch(batch, self.val_decode)
        seconds = time.monotonic() - start
        self._val_seconds += seconds
        self._val_examples += len(batch.indices)  # examples decoded (images, for captions)
        if self.time_test_decoding and self._test_cost_ratio is None and seconds > 0:
            kept = dict(self._outputs)  # the test search's outputs are thrown away
            start = time.monotonic()
            self.decode_batch(batch, self.test_decode)
            self._test_cost_ratio = (time.monotonic() - start) / seconds
            self._outputs = kept

    def test_decode_seconds(self, examples: int) -> float:
        """Expected seconds to decode ``examples`` test examples: from the last validation,
        or before the first one from :meth:`time_test_search` (0 when neither was timed)."""
        if self._val_seconds_per_example is not None and self._test_cost_ratio is not None:
            return self._val_seconds_per_example * self._test_cost_ratio * examples
        return (self._first_test_seconds_per_example or 0.0) * examples

    @torch.no_grad()
    def time_test_search(self, batch: Any) -> None:
        """Time the test search on one batch before training, so that a run budget has an
        estimate before the first validation. An untrained model rarely ends its hypotheses
        early, so this over-estimates: the budget then errs on the side of finishing early."""
        was_training = self.training
        kept = dict(self._outputs)
        self.eval()
        start = time.monotonic()
        self.decode_batch(batch, self.test_decode)
        self._first_test_seconds_per_example = (time.monotonic() - start) / len(batch.indices)
        self._outputs = kept
        self.train(was_training)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.decode_batch(batch, self.test_decode)

    def decode_batch(self, batch: Any, config: DecodeConfig) -> None:
        """Decode a batch into ``self._outputs`` (keyed by example index)."""
        raise NotImplementedError

    # --- outputs across ranks -------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._outputs = {}
        self._val_seconds, self._val_examples = 0.0, 0

    def on_validation_epoch_end(self) -> None:
        if self._val_examples:
            self._val_seconds_per_example = self._val_seconds / self._val_examples

    def on_test_epoch_start(self) -> None:
        self._outputs = {}

    def gathered_outputs(self) -> list[Any]:
        """This rank's outputs joined with every other rank's, in data set order.

        Corpus metrics are not averages of per-rank scores, so every rank scores the whole
        split.
        """
        outputs = self._outputs
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            shards: list[dict[int, Any] | None] = [None] * dist.get_world_size()
            dist.all_gather_object(shards, outputs)
            outputs = {k: v for shard in shards for k, v in (shard or {}).items()}
        self._outputs = {}
        return [outputs[i] for i in sorted(outputs)]
