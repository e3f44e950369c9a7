"""Lightning's CSV logger, except that a resumed run continues ``metrics.csv``.

Lightning's own logger deletes an existing ``metrics.csv`` in its folder, so a run resumed in
its own directory would lose the loss curve up to the checkpoint. This one keeps the rows
logged before the checkpoint's step and appends the resumed run's rows after them; rows
logged after the checkpoint (by the run that was killed) are dropped, as the resumed run
logs those steps again.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger as LightningCSVLogger
from pytorch_lightning.loggers.logger import rank_zero_experiment


class CSVLogger(LightningCSVLogger):
    """:class:`pytorch_lightning.loggers.CSVLogger` that can continue an earlier file.

    Call :meth:`continue_from` before training starts.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._continue_step: int | None = None

    def continue_from(self, step: int) -> None:
        """Keep the rows of an existing ``metrics.csv`` logged before ``step``."""
        self._continue_step = step

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is not None:
            return self._experiment
        path = Path(self.log_dir) / "metrics.csv"
        kept: list[dict[str, str]] = []
        fields: list[str] = []
        if self._continue_step is not None and path.is_file():
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                fields = sorted(reader.fieldnames or [])
                kept = [row for row in reader if _step(row) < self._continue_step]
        with warnings.catch_warnings():
            if fields:  # its warning that the old rows are deleted is wrong here
                warnings.filterwarnings("ignore", message="Experiment logs directory")
            writer = super().experiment  # deletes the old file
        if fields:
            with path.open("w", newline="") as handle:
                out = csv.DictWriter(handle, fieldnames=fields)
                out.writeheader()
                out.writerows(kept)
            # The writer appends to a file whose header it knows; new keys rewrite it.
            writer.metrics_keys = fields
        return writer


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "inf")
    except ValueError:
        return float("inf")
