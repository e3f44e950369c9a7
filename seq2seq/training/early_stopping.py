"""Early stopping whose patience is the one configured now, also after ``resume=true``.

Lightning's ``EarlyStopping`` (2.6) restores its patience from the checkpoint along with its
counters, so ``callbacks.early_stopping.patience=10 resume=true`` would silently keep the old
run's patience. A user who changes the patience on resume means the new value; the counters
(validations without improvement, best score) are still restored, so a run resumed with the
same settings stops at the same validation as one never interrupted.
"""

from __future__ import annotations

import logging
from typing import Any

from pytorch_lightning.callbacks import EarlyStopping

log = logging.getLogger(__name__)


class ConfiguredEarlyStopping(EarlyStopping):
    """``EarlyStopping`` that keeps its configured ``patience`` when a checkpoint is loaded."""

    @property
    def state_key(self) -> str:
        # Lightning's own key ("EarlyStopping{...}"), so that checkpoints written before this
        # class existed, or by a plain EarlyStopping, restore their counters here and back.
        return "EarlyStopping" + repr({"monitor": self.monitor, "mode": self.mode})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        configured = self.patience
        super().load_state_dict(state_dict)
        saved = self.patience
        self.patience = configured
        if saved != configured:
            log.info(
                "early stopping: patience %d (callbacks.early_stopping.patience) instead of the "
                "checkpoint's %d; %d validation(s) without improvement so far",
                configured,
                saved,
                self.wait_count,
            )
