"""The Lightning module that trains and evaluates an image captioner (NIC, Show-Attend-Tell).

The model is the same encoder-decoder core as for translation, with the CNN encoder plugged
in. What differs is here: batches carry images (or cached CNN features), the backbone can be
fine-tuned in a second stage at a lower learning rate (as im2txt does), and captions are
scored with BLEU-1..4 over all references, CIDEr-D (and METEOR on the test set where Java is
present), plus attention correctness where the data has object boxes.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from hydra.utils import get_class
from omegaconf import DictConfig

from seq2seq.captioning.attention_correctness import (
    AttentionCorrectness,
    ObjectWords,
    attention_correctness,
)
from seq2seq.captioning.cider import CiderD
from seq2seq.captioning.dataset import CaptionBatch
from seq2seq.captioning.metrics import CaptionScores, caption_scores
from seq2seq.checkpoint import CHECKPOINT_KEY, checkpoint_payload
from seq2seq.core import EncoderOutput
from seq2seq.data.tokenizer import BOS, EOS, PAD, Tokenizer
from seq2seq.model import build_model
from seq2seq.models.encoders.cnn import CNNEncoder
from seq2seq.search.decode import DecodeConfig, decode_encoded
from seq2seq.training.module import Seq2SeqModule
from seq2seq.training.seqlevel import SeqLevelConfig

log = logging.getLogger(__name__)

#: The rewards ``seqlevel.reward`` may name for captioning.
CAPTIONING_REWARDS = ("cider",)


class CaptioningModule(Seq2SeqModule):
    """Train, validate (greedy, CIDEr-D) and test (beam) a captioner.

    Args:
        model_cfg: the ``model`` config; its encoder must be a
            :class:`~seq2seq.models.encoders.cnn.CNNEncoder`.
        tokenizer: caption tokenizer.
        optimizer: partial optimiser factory (its ``lr`` is the decoder's learning rate).
        scheduler: optional partial ``ReduceLROnPlateau`` factory.
        label_smoothing: label smoothing of the cross-entropy.
        nonfinite: ``stop`` or ``skip`` on a non-finite loss.
        monitor: the metric the scheduler follows (``val/cider``).
        val_decode: decoding for validation.
        test_decode: decoding for the test set.
        max_caption_len: most tokens a generated caption may have.
        image: preprocessing of the inputs (``image_size``, ``resize``), kept in checkpoints
            so that ``seq2seq-caption`` prepares images the same way.
        backbone_lr_scale: the backbone's learning rate is the optimiser's times this.
        finetune_epoch: from this epoch on, unfreeze the backbone's last
            ``finetune_blocks`` blocks (None: the backbone stays as configured).
        finetune_blocks: blocks unfrozen in the fine-tuning stage.
        meteor: METEOR on the test set: None where Java is found, True required, False off.
        references: callable giving each image's reference captions of a split.
        objects: callable giving each image's object boxes of a split (for attention
            correctness), or None.
        object_words: which caption words name those objects and their attributes.
        original_sizes: callable giving each image's ``(width, height)`` of a split.
        judge: callable ``(split, captions)`` saying whether each caption is true of its
            image (the synthetic scenes can tell), or giving None.
        seqlevel: the sequence-level stage (self-critical training), rewarding CIDEr-D
            against the training references (:mod:`seq2seq.captioning.cider`); None: off.
    """

    def __init__(
        self,
        model_cfg: Mapping[str, Any],
        tokenizer: Tokenizer,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        label_smoothing: float = 0.0,
        nonfinite: str = "stop",
        monitor: str = "val/cider",
        val_decode: DecodeConfig | None = None,
        test_decode: DecodeConfig | None = None,
        max_caption_len: int = 30,
        image: Mapping[str, Any] | None = None,
        backbone_lr_scale: float = 0.1,
        finetune_epoch: int | None = None,
        finetune_blocks: int = 0,
        meteor: bool | None = None,
        references: Callable[[str], list[list[str]]] | None = None,
        objects: Callable[[str], list[list[dict[str, Any]]]] | None = None,
        object_words: ObjectWords | None = None,
        original_sizes: Callable[[str], list[tuple[int, int]]] | None = None,
        judge: Callable[[str, list[str]], list[bool] | None] | None = None,
        seqlevel: SeqLevelConfig | None = None,
    ) -> None:
        model_cfg = dict(model_cfg)
        target = str(dict(model_cfg.get("encoder") or {}).get("_target_", ""))
        if not target.startswith("seq2seq.") or not issubclass(get_class(target), CNNEncoder):
            # Checked before building: a text encoder would fail on a vocabulary of size 0.
            raise ValueError(
                "captioning needs model.encoder to be seq2seq.models.encoders.cnn.CNNEncoder "
                f"(model/encoder=cnn), got {target or 'none'}"
            )
        model = build_model(model_cfg, 0, tokenizer.vocab_size, pad_id=PAD)
        super().__init__(
            model,
            optimizer=optimizer,
            scheduler=scheduler,
            label_smoothing=label_smoothing,
            nonfinite=nonfinite,
            monitor=monitor,
            val_decode=val_decode,
            test_decode=test_decode,
            seqlevel=seqlevel,
        )
        self.seqlevel.check_reward(CAPTIONING_REWARDS, "captioning")
        if finetune_epoch is not None and not 0 < finetune_blocks <= len(model.encoder.blocks):
            raise ValueError(
                f"finetune.blocks must be in 1..{len(model.encoder.blocks)} when "
                f"finetune.epoch is set, got {finetune_blocks}"
            )
        self.model_cfg = model_cfg
        self.tokenizer = tokenizer
        self.max_caption_len = max_caption_len
        self.image = dict(image or {})
        self.backbone_lr_scale = backbone_lr_scale
        self.finetune_epoch = finetune_epoch
        self.finetune_blocks = finetune_blocks
        self.meteor = meteor
        self.references = references
        self.objects = objects
        self.object_words = object_words
        self.original_sizes = original_sizes
        self.judge = judge
        #: Share of test images whose caption is true of the image (percent), where known.
        self.test_accuracy: float | None = None
        self._grid: tuple[int, int] | None = None
        #: Scores of the last test run, for the caller to print.
        self.test_scores: CaptionScores | None = None
        self.test_attention: AttentionCorrectness | None = None
        self._cider: CiderD | None = None

    @classmethod
    def from_config(cls, cfg: DictConfig, datamodule: Any) -> CaptioningModule:
        caption = cfg.caption
        module = cls(
            tokenizer=datamodule.prepare(),
            max_caption_len=caption.max_len,
            image={"image_size": datamodule.image_size, "resize": datamodule.resize},
            backbone_lr_scale=caption.backbone_lr_scale,
            finetune_epoch=caption.finetune.epoch,
            finetune_blocks=caption.finetune.blocks,
            meteor=caption.get("meteor"),
            objects=datamodule.objects,
            object_words=datamodule.object_words,
            original_sizes=datamodule.original_sizes,
            judge=datamodule.judge_captions,
            **cls.shared_options(cfg, datamodule),
        )
        # The cache is only valid while the backbone never changes.
        if module.encoder.grad_free and caption.finetune.epoch is None:
            datamodule.set_feature_extractor(module.encoder)
        module.expect_eval_mode_backbone()
        return module

    def expect_eval_mode_backbone(self) -> None:
        """Say once that a frozen backbone stays in eval mode, instead of Lightning's alarm.

        A frozen CNN is kept in eval mode during training on purpose (its BatchNorm
        statistics must not move), and Lightning warns about every such module at the start
        of each fit; the warning is silenced for this process and explained once here.
        """
        self.train()  # as Lightning puts it at the start of the fit
        frozen = [m for m in self.modules() if not m.training]
        if not frozen:
            return
        warnings.filterwarnings(
            "ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training"
        )
        log.info(
            "the frozen %s backbone keeps its %d modules in eval mode while training "
            "(expected: its BatchNorm statistics stay as trained)",
            self.encoder.backbone_name,
            len(frozen),
        )

    def test_results(self) -> dict[str, Any]:
        if self.test_scores is None:
            return {}
        result: dict[str, Any] = {
            f"test_{name}": value for name, value in self.test_scores.as_dict().items()
        }
        if self.test_attention is not None:
            result["attention"] = self.test_attention
        if self.test_accuracy is not None:
            result["caption_accuracy"] = self.test_accuracy
        return result

    def summary_lines(self, result: dict[str, Any]) -> list[str]:
        if "test_cider" not in result:
            return []
        bleu = "  ".join(f"BLEU-{n} {result[f'test_bleu{n}']:.2f}" for n in range(1, 5))
        meteor = result.get("test_meteor")
        extra = f"   METEOR {meteor:.2f}" if meteor is not None else "   (METEOR skipped)"
        lines = [f"test {bleu}", f"test CIDEr-D {result['test_cider']:.2f}{extra}"]
        if "caption_accuracy" in result:
            lines.append(
                f"captions true of their image: {result['caption_accuracy']:.1f}% of test images"
            )
        if "attention" in result:
            att = result["attention"]
            lines.append(
                f"attention correctness {att.score:.3f} over {att.n_words} object words "
                f"(uniform attention: {att.uniform:.3f}; {att.n_hallucinated} named objects "
                "not in the image)"
            )
        return lines

    def usage(self, checkpoint: str) -> str:
        return f"caption with:    seq2seq-caption {checkpoint} IMAGE..."

    @property
    def encoder(self) -> CNNEncoder:
        return self.model.encoder  # type: ignore[return-value]

    def encode(self, batch: CaptionBatch) -> EncoderOutput:
        """The encoder output of each caption row: the CNN runs once per image, and its
        output is repeated for images that bring several captions."""
        if batch.features:
            enc = self.encoder.encode_features(batch.images)
        else:
            enc = self.encoder(batch.images)
        return enc if batch.image_rows is None else enc.index_select(batch.image_rows)

    # --- sequence-level training ----------------------------------------------------------
    def encode_inputs(self, batch: CaptionBatch) -> EncoderOutput:
        """One row per image, however many captions it brought: each image is sampled for."""
        if batch.features:
            return self.encoder.encode_features(batch.images)
        return self.encoder(batch.images)

    def sample_max_len(self, batch: CaptionBatch) -> int:
        """``seqlevel.max_len``, at most ``caption.max_len`` as generated captions."""
        return min(self.seqlevel.max_len, self.max_caption_len)

    def sample_rewards(
        self, batch: CaptionBatch, outputs: list[list[int]], rows: torch.Tensor
    ) -> torch.Tensor:
        """CIDEr-D of each caption against all training references of its image, with the
        document frequencies of the training set (``batch.indices`` are training images).
        Captions are lowercased as validation scores them."""
        if self._cider is None:
            if self.references is None:
                raise RuntimeError("sequence-level training needs the training references")
            references = [
                [r.lower() for r in refs if r.strip()] for refs in self.references("train")
            ]
            self._cider = CiderD(references)
            log.info("CIDEr-D reward: document frequencies of %d training images", len(references))
        captions = [self.tokenizer.decode(ids).lower() for ids in outputs]
        scores = self._cider.scores(captions, batch.indices[rows].cpu().numpy())
        return torch.as_tensor(scores, dtype=torch.float32, device=rows.device)

    # --- optimisation ---------------------------------------------------------------------
    def parameter_groups(self) -> Iterable[Any]:
        """The backbone in a group of its own at ``backbone_lr_scale`` times the LR.

        Frozen backbone parameters are included: they get no gradient, so the optimiser
        skips them, and the fine-tuning stage needs no new optimiser.
        """
        backbone = list(self.encoder.backbone_parameters())
        ids = {id(p) for p in backbone}
        rest = [p for p in self.parameters() if id(p) not in ids]
        keywords = getattr(self.optimizer_factory, "keywords", {})
        if "lr" not in keywords:
            raise ValueError("optimizer.lr must be set to give the backbone its own rate")
        return [
            {"params": rest},
            {"params": backbone, "lr": keywords["lr"] * self.backbone_lr_scale},
        ]

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        due = self.finetune_epoch is not None and self.current_epoch >= self.finetune_epoch
        # Also on resuming past the switch: a restored run must train what it trained before.
        if due and self.encoder.trainable_blocks != self.finetune_blocks:
            self.encoder.set_trainable_blocks(self.finetune_blocks)
            log.info(
                "epoch %d: fine-tuning the last %d blocks of %s",
                self.current_epoch,
                self.finetune_blocks,
                self.encoder.backbone_name,
            )

    # --- evaluation -----------------------------------------------------------------------
    def decode_batch(self, batch: CaptionBatch, config: DecodeConfig) -> None:
        enc = self.encode(batch)
        self._grid = enc.grid
        hyps = decode_encoded(
            self.model.decoder, enc, self.max_caption_len, config, bos_id=BOS, eos_id=EOS
        )
        for index, nbest in zip(batch.indices.tolist(), hyps, strict=True):
            best = nbest[0]
            attention = None if best.attention is None else best.attention.float().cpu()
            self._outputs[index] = (self.tokenizer.decode(best.tokens), attention)

    def _wants_attention(self, split: str) -> bool:
        # Boxes are in image pixels; only a stretched (uncropped) image maps grid cells to
        # image regions without knowing the crop.
        stretched = self.image.get("resize") == "stretch"
        known = self.objects is not None and self.object_words is not None
        return stretched and known and any(self.objects(split))

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.val_decode.return_attention = False

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self.test_decode.return_attention = self._wants_attention("test")

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        outputs = self.gathered_outputs()
        if self.references is None or self.trainer.sanity_checking:
            return
        # METEOR starts a JVM; it is kept for the test set.
        scores = self._scores("dev", [caption for caption, _ in outputs], meteor=False)
        self.log("val/cider", scores.cider, prog_bar=True)
        for name, value in scores.as_dict().items():
            if name != "cider":
                self.log(f"val/{name}", value, prog_bar=name == "bleu4")

    def on_test_epoch_end(self) -> None:
        outputs = self.gathered_outputs()
        if self.references is None:
            return
        scores = self._scores("test", [caption for caption, _ in outputs], meteor=self.meteor)
        self.test_scores = scores
        for name, value in scores.as_dict().items():
            self.log(f"test/{name}", value)
        verdicts = self.judge("test", [c for c, _ in outputs]) if self.judge else None
        if verdicts:
            self.test_accuracy = 100.0 * sum(verdicts) / len(verdicts)
            self.log("test/caption_accuracy", self.test_accuracy)
        attentions = [attention for _, attention in outputs]
        if self._wants_attention("test") and self._grid and all(a is not None for a in attentions):
            assert self.objects is not None and self.original_sizes is not None
            assert self.object_words is not None
            result = attention_correctness(
                [caption.split() for caption, _ in outputs],
                attentions,
                self.objects("test"),
                self.original_sizes("test"),
                self._grid,
                self.object_words,
            )
            self.test_attention = result
            self.log("test/attention_correctness", result.score)
            self.log("test/attention_uniform", result.uniform)

    def _scores(self, split: str, hypotheses: list[str], meteor: bool | None) -> CaptionScores:
        assert self.references is not None
        references = self.references(split)
        if len(hypotheses) != len(references):
            raise RuntimeError(
                f"decoded {len(hypotheses)} {split} images but have {len(references)} "
                "reference lists: every image must be decoded exactly once"
            )
        return caption_scores(hypotheses, references, meteor=meteor)

    # --- checkpoints ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[CHECKPOINT_KEY] = checkpoint_payload(
            self.model_cfg,
            None,
            self.tokenizer,
            task="captioning",
            extra={"image": self.image, "max_caption_len": self.max_caption_len},
        )
