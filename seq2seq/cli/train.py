"""``seq2seq-train``: compose the Hydra config, train, test, and say where the results are.

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


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and (when ``cfg.test``) test the configured model; returns a result summary."""
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    src_tokenizer, tgt_tokenizer = datamodule.prepare()

    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    module = TranslationModule(
        model_cfg=OmegaConf.to_container(cfg.model, resolve=True),
        src_tokenizer=src_tokenizer,
        tgt_tokenizer=tgt_tokenizer,
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        label_smoothing=cfg.loss.label_smoothing,
        nonfinite=cfg.loss.nonfinite,
        val_decode=DecodeConfig(**cfg.decode.val),
        test_decode=DecodeConfig(**cfg.decode.test),
        references=datamodule.references,
    )
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
    result: dict[str, Any] = {"run_dir": str(Path(cfg.run_dir).resolve()), "best_checkpoint": best}
    if cfg.get("test"):
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        scores = module.test_scores
        if scores is not None:
            result.update(test_bleu=scores.bleu, test_chrf=scores.chrf)
            result["signatures"] = {"bleu": scores.bleu_signature, "chrf": scores.chrf_signature}
    if trainer.is_global_zero:
        _print_summary(result)
    return result


def _print_summary(result: dict[str, Any]) -> None:
    lines = ["", "=" * 72]
    if "test_bleu" in result:
        lines.append(f"test BLEU = {result['test_bleu']:.2f}   ({result['signatures']['bleu']})")
        lines.append(f"test chrF = {result['test_chrf']:.2f}   ({result['signatures']['chrf']})")
    lines.append(f"run directory:   {result['run_dir']}")
    lines.append(f"best checkpoint: {result['best_checkpoint'] or '(none saved)'}")
    if result["best_checkpoint"]:
        lines.append(f'translate with:  echo "..." | seq2seq-translate {result["best_checkpoint"]}')
    lines.append("=" * 72)
    print("\n".join(lines), flush=True)


@hydra.main(config_path=CONF_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Console entry point; returns the test BLEU (for Hydra sweepers)."""
    return train(cfg).get("test_bleu")


if __name__ == "__main__":
    main()
