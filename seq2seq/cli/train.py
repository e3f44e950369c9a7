"""``seq2seq-train``: compose the Hydra config, train, test, and say where the results are.

One entry point for both tasks: ``task: translation`` or ``task: captioning`` picks the
Lightning module; data, model and trainer come from the same config groups.

This file only composes and wires; the Lightning module owns the training loop.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from seq2seq.lit.base import Seq2SeqModule
from seq2seq.lit.captioning import CaptioningModule
from seq2seq.lit.checkpoint_io import AtomicCheckpointIO
from seq2seq.lit.translation import TranslationModule
from seq2seq.search.decode import DecodeConfig

log = logging.getLogger(__name__)

#: The configs live at the top of the source tree (the package is installed editable, as
#: the README says); SEQ2SEQ_CONF_DIR points elsewhere, e.g. for a copied config tree.
CONF_DIR = os.environ.get("SEQ2SEQ_CONF_DIR", str(Path(__file__).resolve().parents[2] / "conf"))


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a callbacks/logger group."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node and "_target_" in node]


TASKS = ("translation", "captioning")


def _build_module(cfg: DictConfig, datamodule: Any) -> Seq2SeqModule:
    """The Lightning module of ``cfg.task``, with what it shares with the other task."""
    common: dict[str, Any] = {
        "model_cfg": OmegaConf.to_container(cfg.model, resolve=True),
        "optimizer": instantiate(cfg.optimizer),
        "scheduler": instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        "label_smoothing": cfg.loss.label_smoothing,
        "nonfinite": cfg.loss.nonfinite,
        "monitor": cfg.monitor,
        "val_decode": DecodeConfig(**cfg.decode.val),
        "test_decode": DecodeConfig(**cfg.decode.test),
        "references": datamodule.references,
    }
    if cfg.task == "translation":
        src_tokenizer, tgt_tokenizer = datamodule.prepare()
        return TranslationModule(src_tokenizer=src_tokenizer, tgt_tokenizer=tgt_tokenizer, **common)
    caption = cfg.caption
    module = CaptioningModule(
        tokenizer=datamodule.prepare(),
        max_caption_len=caption.max_len,
        image={"image_size": datamodule.image_size, "resize": datamodule.resize},
        backbone_lr_scale=caption.backbone_lr_scale,
        finetune_epoch=caption.finetune.epoch,
        finetune_blocks=caption.finetune.blocks,
        meteor=caption.get("meteor"),
        objects=datamodule.objects,
        original_sizes=datamodule.original_sizes,
        judge=datamodule.judge_captions,
        **common,
    )
    # The cache is only valid while the backbone never changes.
    if module.encoder.grad_free and caption.finetune.epoch is None:
        datamodule.set_feature_extractor(module.encoder)
    return module


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and (when ``cfg.test``) test the configured model; returns a result summary."""
    if cfg.task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {cfg.task!r}")
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    module = _build_module(cfg, datamodule)
    parameters = sum(p.numel() for p in module.parameters())
    log.info("model: %s parameters\n%s", f"{parameters:,}", module.model)

    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        plugins=[AtomicCheckpointIO()],
        callbacks=_instantiate_all(cfg.get("callbacks")),
        logger=_instantiate_all(cfg.get("logger")),
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_path", "") or ""
    result: dict[str, Any] = {
        "task": cfg.task,
        "run_dir": str(Path(cfg.run_dir).resolve()),
        "best_checkpoint": best,
    }
    if cfg.get("test"):
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        result.update(_test_results(module))
    if trainer.is_global_zero:
        _print_summary(result)
    return result


def _test_results(module: Seq2SeqModule) -> dict[str, Any]:
    scores = module.test_scores
    if scores is None:
        return {}
    if isinstance(module, TranslationModule):
        return {
            "test_bleu": scores.bleu,
            "test_chrf": scores.chrf,
            "signatures": {"bleu": scores.bleu_signature, "chrf": scores.chrf_signature},
        }
    result = {f"test_{name}": value for name, value in scores.as_dict().items()}
    attention = module.test_attention
    if attention is not None:
        result["attention"] = attention
    if module.test_accuracy is not None:
        result["caption_accuracy"] = module.test_accuracy
    return result


def _print_summary(result: dict[str, Any]) -> None:
    lines = ["", "=" * 72]
    if "test_bleu" in result:
        lines.append(f"test BLEU = {result['test_bleu']:.2f}   ({result['signatures']['bleu']})")
        lines.append(f"test chrF = {result['test_chrf']:.2f}   ({result['signatures']['chrf']})")
    if "test_cider" in result:
        bleu = "  ".join(f"BLEU-{n} {result[f'test_bleu{n}']:.2f}" for n in range(1, 5))
        lines.append(f"test {bleu}")
        meteor = result.get("test_meteor")
        extra = f"   METEOR {meteor:.2f}" if meteor is not None else "   (METEOR skipped)"
        lines.append(f"test CIDEr-D {result['test_cider']:.2f}{extra}")
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
    lines.append(f"run directory:   {result['run_dir']}")
    lines.append(f"best checkpoint: {result['best_checkpoint'] or '(none saved)'}")
    if result["best_checkpoint"]:
        ckpt = result["best_checkpoint"]
        if result["task"] == "captioning":
            lines.append(f"caption with:    seq2seq-caption {ckpt} IMAGE...")
        else:
            lines.append(f'translate with:  echo "..." | seq2seq-translate {ckpt}')
    lines.append("=" * 72)
    print("\n".join(lines), flush=True)


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Console entry point; returns the test score of the monitored metric (for Hydra
    sweepers): BLEU for translation, CIDEr-D for captioning."""
    result = train(cfg)
    return result.get("test_bleu" if cfg.task == "translation" else "test_cider")


if __name__ == "__main__":
    main()
