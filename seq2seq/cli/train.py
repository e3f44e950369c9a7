"""``seq2seq-train``: compose the Hydra config, train, test, and say where the results are.

One entry point for both tasks: the ``task`` config group (``task=translation``,
``task=captioning``) names the Lightning module, which builds itself from the composed config
(``from_config``) and says what its results are; data, model and trainer come from the same
config groups. Nothing here depends on which task runs.

This file only composes and wires; the Lightning module owns the training loop. Resuming
(``resume=true``, ``ckpt_path``) is resolved in :mod:`seq2seq.cli.resume`; errors about the
user's data, config, checkpoints or disk are printed as one line (:data:`USER_ERRORS`), and
Ctrl-C stops cleanly with a checkpoint (:mod:`seq2seq.training.resume`).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, open_dict

from seq2seq.captioning.annotations.records import AnnotationError
from seq2seq.captioning.images import ImageError
from seq2seq.checkpoint import CheckpointError
from seq2seq.cli.resume import (
    ResumeError,
    check_resume_checkpoint,
    redirect_resume,
    resolve_ckpt_path,
)
from seq2seq.config import compose_train_config, config_dir
from seq2seq.errors import ConfigError
from seq2seq.models.encoders.backbones import WeightsUnavailableError
from seq2seq.runtime import keep_freed_memory
from seq2seq.training.budget import RunBudget, format_duration, parse_duration, process_age
from seq2seq.training.checkpoint_io import AtomicCheckpointIO, CheckpointWriteError
from seq2seq.training.csv_logger import CSVLogger
from seq2seq.training.ema import ExponentialMovingAverage
from seq2seq.training.module import Seq2SeqModule
from seq2seq.training.resume import LAST, TrainingInterrupted
from seq2seq.translation.corpus import CorpusError

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a callbacks/logger group."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node and "_target_" in node]


def _module_class(cfg: DictConfig) -> type[Seq2SeqModule]:
    """The Lightning module class that ``task.module`` names."""
    target = str(cfg.task.get("module") or "")
    try:
        cls = get_class(target)
    except Exception as err:  # Hydra wraps import errors of every kind
        raise ConfigError(f"task.module={target!r}: cannot be imported ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, Seq2SeqModule)):
        raise ConfigError(
            f"task.module={target!r} is not a seq2seq Lightning module (a subclass of "
            "seq2seq.training.module.Seq2SeqModule)"
        )
    return cls


def _user_instantiate(node: Any, **kwargs: Any) -> Any:
    """``instantiate``, with a user error raised inside a constructor reported as itself
    (Hydra wraps it in an InstantiationException carrying the whole chain)."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, USER_ERRORS):
            raise cause from None
        raise


def _validation_is_off(cfg: DictConfig) -> bool:
    """``trainer.limit_val_batches=0``: no validation, so nothing to monitor."""
    limit = cfg.trainer.get("limit_val_batches")
    return limit is not None and float(limit) == 0.0


def _check_evaluation_limits(cfg: DictConfig) -> None:
    """Dev and test scores are corpus scores (BLEU, CIDEr-D) of the whole split: a share or a
    count of its batches would only fail at the first validation, after training."""
    choices = {
        "limit_val_batches": ("dev", "0 (no validation)"),
        "limit_test_batches": ("test", "test=false"),
    }
    for key, (split, other) in choices.items():
        limit = cfg.trainer.get(key)
        if limit is None or (isinstance(limit, float) and limit == 1.0):
            continue
        if key == "limit_val_batches" and not isinstance(limit, bool) and limit == 0:
            continue
        raise ConfigError(
            f"trainer.{key}={limit}: the {split} score needs every {split} example; "
            f"use null (all of them) or {other}"
        )


def _without_monitoring(cfg: DictConfig) -> None:
    """Turn off what follows the validation metric: early stopping, best-checkpoint
    selection (callbacks with a ``monitor``) and the plateau scheduler."""
    with open_dict(cfg):
        for name in [
            n for n, node in (cfg.get("callbacks") or {}).items() if node and "monitor" in node
        ]:
            cfg.callbacks[name] = None
        cfg.scheduler = None
    log.warning(
        "validation is off (trainer.limit_val_batches=0): early stopping, best-checkpoint "
        "selection and the learning-rate scheduler are off; last.ckpt is saved%s",
        " and the test split is decoded with the final weights" if cfg.get("test") else "",
    )


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and (when ``cfg.test``) test the configured model; returns a result summary."""
    # The budget and the elapsed time count from the process start, imports included.
    started = time.monotonic() - process_age()
    module_class = _module_class(cfg)
    # Checked first: a wrong checkpoint should not cost the data preparation.
    ckpt_path = resolve_ckpt_path(cfg)
    resume_step = None
    if ckpt_path is not None:
        resume_step = check_resume_checkpoint(ckpt_path, cfg.task.name)
        log.info("resuming from %s (global step %d)", ckpt_path, resume_step)
    _check_evaluation_limits(cfg)
    validating = not _validation_is_off(cfg)
    if not validating:
        _without_monitoring(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = _user_instantiate(cfg.data)
    module = module_class.from_config(cfg, datamodule)
    parameters = sum(p.numel() for p in module.parameters())
    log.info("model: %s parameters\n%s", f"{parameters:,}", module.model)

    callbacks = _instantiate_all(cfg.get("callbacks"))
    if cfg.model.get("ema_decay") is not None:
        # Evaluated and saved with the average of the weights (seq2seq.training.ema).
        warmup = cfg.model.get("ema_warmup", True)
        callbacks.append(ExponentialMovingAverage(cfg.model.ema_decay, warmup))
    budget = cfg.get("budget")
    if budget is not None:
        seconds = parse_duration(budget)
        test_examples = len(datamodule.references("test")) if cfg.get("test") else 0
        module.time_test_decoding = test_examples > 0
        callbacks.append(
            RunBudget(seconds, started, lambda: module.test_decode_seconds(test_examples))
        )
    loggers = _instantiate_all(cfg.get("logger"))
    for logger in loggers:
        if resume_step is not None and isinstance(logger, CSVLogger):
            logger.continue_from(resume_step)
    trainer: pl.Trainer = _user_instantiate(
        cfg.trainer, plugins=[AtomicCheckpointIO()], callbacks=callbacks, logger=loggers
    )
    # weights_only: resuming never unpickles objects (see seq2seq.checkpoint).
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)

    checkpoint = trainer.checkpoint_callback
    best = (getattr(checkpoint, "best_model_path", "") or "") if validating else ""
    last = Path(cfg.run_dir) / "checkpoints" / LAST
    result: dict[str, Any] = {
        "task": cfg.task.name,
        "run_dir": str(Path(cfg.run_dir).resolve()),
        "best_checkpoint": best,
        "last_checkpoint": str(last.resolve()) if last.is_file() else "",
    }
    if cfg.get("test"):
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        result.update(module.test_results())
    result["elapsed"] = time.monotonic() - started
    result["budget"] = parse_duration(budget) if budget is not None else None
    if trainer.is_global_zero:
        _print_summary(result, module)
    return result


def _print_summary(result: dict[str, Any], module: Seq2SeqModule) -> None:
    lines = ["", "=" * 72, *module.summary_lines(result)]
    lines.append(f"run directory:   {result['run_dir']}")
    usable = result["best_checkpoint"] or result["last_checkpoint"]
    if result["best_checkpoint"]:
        lines.append(f"best checkpoint: {result['best_checkpoint']}")
    elif result["last_checkpoint"]:
        lines.append(f"last checkpoint: {result['last_checkpoint']} (no validation: no best)")
    else:
        lines.append("best checkpoint: (none saved)")
    if usable:
        lines.append(module.usage(usable))
    elapsed = f"elapsed:         {format_duration(result['elapsed'])}"
    if result.get("budget") is not None:
        elapsed += f" (budget {format_duration(result['budget'])}, test decoding included)"
    lines.append(elapsed)
    lines.append("=" * 72)
    print("\n".join(lines), flush=True)


#: Errors that are about the user's data, config or disk, each with a message that names the
#: file (and line or field) or config key: reported as one line, without a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
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


@hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")
def run(cfg: DictConfig) -> float | None:
    """Train as configured; returns the test score of the monitored metric (for Hydra
    sweepers): ``test_<monitor_tag>``, BLEU for translation, CIDEr-D for captioning."""
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
    return result.get(f"test_{cfg.monitor_tag}")


def _compose_with_hydra(overrides: list[str]) -> DictConfig:
    return compose_train_config(overrides, return_hydra_config=True)


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
