"""The Lightning module that trains and evaluates a translation model.

It owns the loss, the optimiser and scheduler, and validation/test decoding. Validation
BLEU is computed on the whole dev set after the hypotheses of every DDP rank have been
gathered and put back in corpus order: corpus BLEU is not an average of per-rank BLEUs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from seq2seq.checkpoint import CHECKPOINT_KEY, checkpoint_payload
from seq2seq.core import lengths_to_mask
from seq2seq.data.dataset import Batch
from seq2seq.data.tokenizer import BOS, EOS, PAD, Tokenizer
from seq2seq.metrics import CorpusScores, corpus_scores
from seq2seq.model import EncoderDecoder, build_model
from seq2seq.search.decode import DecodeConfig, decode

log = logging.getLogger(__name__)


class TranslationModule(pl.LightningModule):
    """Train, validate (greedy BLEU) and test (beam BLEU/chrF) an :class:`EncoderDecoder`.

    Args:
        model_cfg: the ``model`` config (``encoder``, ``decoder``, ``init``), plain containers.
        src_tokenizer: source tokenizer (stored in checkpoints as its state).
        tgt_tokenizer: target tokenizer.
        optimizer: partial optimiser factory, called with the parameters.
        scheduler: optional partial ``ReduceLROnPlateau`` factory, called with the optimiser.
        label_smoothing: label smoothing of the cross-entropy.
        nonfinite: on a NaN/infinite loss, ``stop`` with an error naming the step, or ``skip``
            the batch.
        monitor: the metric the scheduler follows (``val/bleu``).
        val_decode: decoding for validation (greedy by default).
        test_decode: decoding for the test set.
        references: callable giving the reference strings of a split ("dev", "test").
    """

    def __init__(
        self,
        model_cfg: Mapping[str, Any],
        src_tokenizer: Tokenizer,
        tgt_tokenizer: Tokenizer,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        label_smoothing: float = 0.0,
        nonfinite: str = "stop",
        monitor: str = "val/bleu",
        val_decode: DecodeConfig | None = None,
        test_decode: DecodeConfig | None = None,
        references: Callable[[str], list[str]] | None = None,
    ) -> None:
        super().__init__()
        self.model_cfg = dict(model_cfg)
        self.src_tokenizer = src_tokenizer
        self.tgt_tokenizer = tgt_tokenizer
        self.model: EncoderDecoder = build_model(
            self.model_cfg, src_tokenizer.vocab_size, tgt_tokenizer.vocab_size, pad_id=PAD
        )
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.label_smoothing = label_smoothing
        if nonfinite not in ("stop", "skip"):
            raise ValueError(f"loss.nonfinite must be 'stop' or 'skip', got {nonfinite!r}")
        self.nonfinite = nonfinite
        self.monitor = monitor
        self.val_decode = val_decode or DecodeConfig(beam_size=1)
        self.test_decode = test_decode or DecodeConfig()
        self.references = references
        self._outputs: dict[int, str] = {}
        #: Scores of the last test run, for the caller to print.
        self.test_scores: CorpusScores | None = None

    # --- training -------------------------------------------------------------------------
    def loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Summed token cross-entropy of the batch and its number of target tokens."""
        out = self.model(batch.src, batch.src_lengths, batch.tgt_in)
        loss = F.cross_entropy(
            out.logits.flatten(0, 1).float(),
            batch.tgt_out.flatten(),
            ignore_index=PAD,
            reduction="sum",
            label_smoothing=self.label_smoothing,
        )
        source_mask = lengths_to_mask(batch.src_lengths, batch.src.size(1))
        aux = self.model.decoder.auxiliary_loss(out.attention, batch.tgt_out != PAD, source_mask)
        if aux is not None:
            loss = loss + aux
        return loss, (batch.tgt_out != PAD).sum()

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor | None:
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
        size = batch.src.size(0)
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/tokens", tokens.float(), reduce_fx="sum", batch_size=size)
        return loss

    def on_train_epoch_start(self) -> None:
        # Lightning sets the epoch of a DataLoader's sampler, not of its batch sampler; ours
        # draws a new batch order per epoch, and its iterator only starts after this hook.
        batch_sampler = getattr(self.trainer.train_dataloader, "batch_sampler", None)
        if hasattr(batch_sampler, "set_epoch"):
            batch_sampler.set_epoch(self.current_epoch)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        mode = "min" if "loss" in self.monitor else "max"
        scheduler = self.scheduler_factory(optimizer, mode=mode)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor, "interval": "epoch"},
        }

    # --- evaluation -----------------------------------------------------------------------
    def _decode_batch(self, batch: Batch, config: DecodeConfig) -> None:
        hyps = decode(self.model, batch.src, batch.src_lengths, config, bos_id=BOS, eos_id=EOS)
        for index, nbest in zip(batch.indices.tolist(), hyps, strict=True):
            self._outputs[index] = self.tgt_tokenizer.decode(nbest[0].tokens)

    def _gathered_outputs(self) -> list[str]:
        """This rank's hypotheses joined with every other rank's, in corpus order."""
        outputs = self._outputs
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            shards: list[dict[int, str] | None] = [None] * dist.get_world_size()
            dist.all_gather_object(shards, outputs)
            outputs = {k: v for shard in shards for k, v in (shard or {}).items()}
        self._outputs = {}
        return [outputs[i] for i in sorted(outputs)]

    def on_validation_epoch_start(self) -> None:
        self._outputs = {}

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        total, tokens = self.loss(batch)
        self.log(
            "val/loss", total / tokens.clamp(min=1), batch_size=batch.src.size(0), sync_dist=True
        )
        self._decode_batch(batch, self.val_decode)

    def on_validation_epoch_end(self) -> None:
        scores = self._score("dev")
        if scores is not None:
            # Every rank holds the same gathered score, so no reduction is needed.
            self.log("val/bleu", scores.bleu, prog_bar=True)
            self.log("val/chrf", scores.chrf)

    def on_test_epoch_start(self) -> None:
        self._outputs = {}

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._decode_batch(batch, self.test_decode)

    def on_test_epoch_end(self) -> None:
        scores = self._score("test")
        if scores is not None:
            self.test_scores = scores
            self.log("test/bleu", scores.bleu)
            self.log("test/chrf", scores.chrf)

    def _score(self, split: str) -> CorpusScores | None:
        hypotheses = self._gathered_outputs()
        if self.references is None or self.trainer.sanity_checking:
            return None
        references = self.references(split)
        if len(hypotheses) != len(references):
            raise RuntimeError(
                f"decoded {len(hypotheses)} {split} sentences but have {len(references)} "
                "references: every example must be decoded exactly once"
            )
        return corpus_scores(hypotheses, references)

    # --- checkpoints ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = checkpoint_payload(
            self.model_cfg, self.src_tokenizer, self.tgt_tokenizer, task="translation"
        )
