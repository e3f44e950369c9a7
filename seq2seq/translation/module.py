"""The Lightning module that trains and evaluates a translation model.

It owns validation/test decoding and scoring; the loss, the optimiser and gathering across
ranks come from :class:`~seq2seq.training.module.Seq2SeqModule`. Validation BLEU is computed on the
whole dev set after the hypotheses of every DDP rank have been gathered and put back in corpus
order: corpus BLEU is not an average of per-rank BLEUs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import torch
from omegaconf import DictConfig

from seq2seq.checkpoint import CHECKPOINT_KEY, checkpoint_payload
from seq2seq.core import EncoderOutput
from seq2seq.data.tokenizer import BOS, EOS, PAD, Tokenizer
from seq2seq.model import build_model
from seq2seq.search.decode import DecodeConfig, decode
from seq2seq.search.hypothesis import max_lengths
from seq2seq.training.module import Seq2SeqModule
from seq2seq.training.seqlevel import SeqLevelConfig
from seq2seq.translation.dataset import Batch
from seq2seq.translation.metrics import CorpusScores, corpus_scores
from seq2seq.translation.rewards import TRANSLATION_REWARDS, SentenceReward

log = logging.getLogger(__name__)


class TranslationModule(Seq2SeqModule):
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
        references: callable giving the reference strings of a split ("train", "dev",
            "test").
        bleu_tokenize: sacrebleu's BLEU tokenizer (``none`` for tokenised text).
        seqlevel: the sequence-level stage, rewarding sentence chrF or BLEU against the
            training references (:mod:`seq2seq.translation.rewards`); None: off.
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
        bleu_tokenize: str = "13a",
        seqlevel: SeqLevelConfig | None = None,
    ) -> None:
        model_cfg = dict(model_cfg)
        super().__init__(
            build_model(model_cfg, src_tokenizer.vocab_size, tgt_tokenizer.vocab_size, pad_id=PAD),
            optimizer=optimizer,
            scheduler=scheduler,
            label_smoothing=label_smoothing,
            nonfinite=nonfinite,
            monitor=monitor,
            val_decode=val_decode,
            test_decode=test_decode,
            seqlevel=seqlevel,
        )
        self.seqlevel.check_reward(TRANSLATION_REWARDS, "translation")
        self.model_cfg = model_cfg
        self.src_tokenizer = src_tokenizer
        self.tgt_tokenizer = tgt_tokenizer
        self.references = references
        self.bleu_tokenize = bleu_tokenize
        #: Scores of the last test run, for the caller to print.
        self.test_scores: CorpusScores | None = None
        self._reward: SentenceReward | None = None
        self._train_references: list[str] | None = None

    @classmethod
    def from_config(cls, cfg: DictConfig, datamodule: Any) -> TranslationModule:
        src_tokenizer, tgt_tokenizer = datamodule.prepare()
        tokenize = datamodule.bleu_tokenize
        log.info(
            "BLEU: sacrebleu with tokenize=%s%s",
            tokenize,
            " (the text is tokenised already: BLEU counts its own tokens)"
            if tokenize == "none"
            else "",
        )
        return cls(
            src_tokenizer=src_tokenizer,
            tgt_tokenizer=tgt_tokenizer,
            bleu_tokenize=tokenize,
            **cls.shared_options(cfg, datamodule),
        )

    def test_results(self) -> dict[str, Any]:
        scores = self.test_scores
        if scores is None:
            return {}
        return {
            "test_bleu": scores.bleu,
            "test_chrf": scores.chrf,
            "signatures": {"bleu": scores.bleu_signature, "chrf": scores.chrf_signature},
        }

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        if "test_bleu" not in result:
            return []
        return [
            f"test BLEU = {result['test_bleu']:.2f}   ({result['signatures']['bleu']})",
            f"test chrF = {result['test_chrf']:.2f}   ({result['signatures']['chrf']})",
        ]

    def usage(self, checkpoint: str) -> str:
        return f'translate with:  echo "..." | seq2seq-translate {checkpoint}'

    def encode(self, batch: Batch) -> EncoderOutput:
        return self.model.encode(batch.src, batch.src_lengths)

    @staticmethod
    def batch_size(batch: Batch) -> int:
        return int(batch.src.size(0))

    # --- sequence-level training ----------------------------------------------------------
    def sample_max_len(self, batch: Batch) -> torch.Tensor:
        """As validation allows (``decode.val``'s ratio and offset), at most
        ``seqlevel.max_len``."""
        config = self.val_decode
        return max_lengths(
            batch.src_lengths, config.max_len_ratio, config.max_len_offset, self.seqlevel.max_len
        )

    def sample_rewards(
        self, batch: Batch, outputs: list[list[int]], rows: torch.Tensor
    ) -> torch.Tensor:
        """Sentence chrF or BLEU (in [0, 1]) of each output against its training reference
        (``batch.indices`` are positions in the training corpus)."""
        if self._reward is None or self._train_references is None:
            if self.references is None:
                raise RuntimeError("sequence-level training needs the training references")
            self._reward = SentenceReward(self.seqlevel.reward, self.bleu_tokenize)
            self._train_references = self.references("train")
        references = self._train_references
        hypotheses = [self.tgt_tokenizer.decode(ids) for ids in outputs]
        targets = [references[i] for i in batch.indices[rows].tolist()]
        return torch.tensor(self._reward(hypotheses, targets), device=rows.device)

    # --- evaluation -----------------------------------------------------------------------
    def decode_batch(self, batch: Batch, config: DecodeConfig) -> None:
        hyps = decode(self.model, batch.src, batch.src_lengths, config, bos_id=BOS, eos_id=EOS)
        for index, nbest in zip(batch.indices.tolist(), hyps, strict=True):
            self._outputs[index] = self.tgt_tokenizer.decode(nbest[0].tokens)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        scores = self._score("dev")
        if scores is not None:
            # Every rank holds the same gathered score, so no reduction is needed.
            self.log("val/bleu", scores.bleu, prog_bar=True)
            self.log("val/chrf", scores.chrf)

    def on_test_epoch_end(self) -> None:
        scores = self._score("test")
        if scores is not None:
            self.test_scores = scores
            self.log("test/bleu", scores.bleu)
            self.log("test/chrf", scores.chrf)

    def _score(self, split: str) -> CorpusScores | None:
        hypotheses = self.gathered_outputs()
        if self.references is None or self.trainer.sanity_checking:
            return None
        references = self.references(split)
        if len(hypotheses) != len(references):
            raise RuntimeError(
                f"decoded {len(hypotheses)} {split} sentences but have {len(references)} "
                "references: every example must be decoded exactly once"
            )
        return corpus_scores(hypotheses, references, self.bleu_tokenize)

    # --- checkpoints ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[CHECKPOINT_KEY] = checkpoint_payload(
            self.model_cfg, self.src_tokenizer, self.tgt_tokenizer, task="translation"
        )
