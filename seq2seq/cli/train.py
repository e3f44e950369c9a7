"""``seq2seq-train``: compose the Hydra config, train, test, and say where the results are.

One entry point for both tasks: ``task: translation`` or ``task: captioning`` picks the
Lightning module; data, model and trainer come from the same config groups.

This file only composes and wires; the Lightning module owns the training loop. Resuming
(``resume=true``, ``ckpt_path``) is resolved in :mod:`seq2seq.cli.resume`; errors about the
user's data, config, checkpoints or disk are printed as one line (:data:`USER_ERRORS`), and
Ctrl-C stops cleanly with a checkpoint (:mod:`seq2seq.training.resume`).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from seq2seq.captioning.annotations.records import AnnotationError
from seq2seq.captioning.images import ImageError
from seq2seq.captioning.module import CaptioningModule
from seq2seq.checkpoint import CheckpointError
from seq2seq.cli.resume import (
    ResumeError,
    check_resume_checkpoint,
    redirect_resume,
    resolve_ckpt_path,
)
from seq2seq.models.encoders.backbones import WeightsUnavailableError
from seq2seq.runtime import keep_freed_memory
from seq2seq.search.decode import DecodeConfig
from seq2seq.training.checkpoint_io import AtomicCheckpointIO, CheckpointWriteError
from seq2seq.training.csv_logger import CSVLogger
from seq2seq.training.module import Seq2SeqModule
from seq2seq.training.resume import TrainingInterrupted
from seq2seq.translation.corpus import CorpusError
from seq2seq.translation.module import TranslationModule

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
    # Checked first: a wrong checkpoint should not cost the data preparation.
    ckpt_path = resolve_ckpt_path(cfg)
    resume_step = None
    if ckpt_path is not None:
        resume_step = check_resume_checkpoint(ckpt_path, cfg.task)
        log.info("resuming from %s (global step %d)", ckpt_path, resume_step)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    module = _build_module(cfg, datamodule)
    parameters = sum(p.numel() for p in module.parameters())
    log.info("model: %s parameters\n%s", f"{parameters:,}", module.model)

    loggers = _instantiate_all(cfg.get("logger"))
    for logger in loggers:
        if resume_step is not None and isinstance(logger, CSVLogger):
            logger.continue_from(resume_step)
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        plugins=[AtomicCheckpointIO()],
        callbacks=_instantiate_all(cfg.get("callbacks")),
        logger=loggers,
    )
    # weights_only: resuming never unpickles objects (see seq2seq.checkpoint).
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)

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


#: Errors that are about the user's data, config or disk, each with a message that names the
#: file (and line or field) or config key: reported as one line, without a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    CorpusError,
    AnnotationError,
    ImageError,
    CheckpointError,
    ResumeError,
    CheckpointWriteError,
    FloatingPointError,
    WeightsUnavailableError,
)
#: Exit status after Ctrl-C, as shells report a process ended by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130


def error_message(err: BaseException) -> str:
    """The one-line message of a user error.

    An error raised in a DataLoader worker process comes back with the worker's traceback in
    its message; only its last line, the original message, is kept.
    """
    text = str(err).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def run(cfg: DictConfig) -> float | None:
    """Train as configured; returns the test score of the monitored metric (for Hydra
    sweepers): BLEU for translation, CIDEr-D for captioning."""
    try:
        result = train(cfg)
    except TrainingInterrupted as stop:
        resume = "resume with the same command and resume=true"
        if stop.checkpoint is not None:
            resume += f", or ckpt_path={stop.checkpoint}"
        log.warning("%s; %s", stop, resume)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except USER_ERRORS as err:
        message = error_message(err)
        log.error("%s", message)
        print(f"seq2seq-train: error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    return result.get("test_bleu" if cfg.task == "translation" else "test_cider")


def _compose_with_hydra(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def main() -> None:
    """Console entry point ``seq2seq-train [OVERRIDES]``."""
    keep_freed_memory()  # large CPU tensors reused, not mapped afresh every step
    # resume=true continues in the old run's directory: chosen before Hydra makes a new one.
    sys.argv[1:] = redirect_resume(sys.argv[1:], _compose_with_hydra)
    try:
        run()
    except KeyboardInterrupt:
        # Ctrl-C outside training (reading data, testing): nothing to save.
        print("seq2seq-train: interrupted", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_INTERRUPTED) from None


if __name__ == "__main__":
    main()
