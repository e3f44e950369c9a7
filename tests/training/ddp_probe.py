"""A Lightning callback for the DDP test: each rank writes the examples it trains on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl


class RecordSeen(pl.Callback):
    """Appends ``epoch example-index`` lines to ``{directory}/seen_rank{R}.txt``."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"seen_rank{trainer.global_rank}.txt"
        with path.open("a", encoding="utf-8") as f:
            for index in batch.indices.tolist():
                f.write(f"{trainer.current_epoch} {index}\n")
