"""A wall-clock budget for a whole run: reading the data, training, and decoding the test split.

Lightning's ``max_time`` bounds only the fit, so a run whose test decoding takes minutes ends
that much later than its budget, and later still on a slower machine. :class:`RunBudget`
stops training early enough to leave time for the test decoding, which it estimates from the
run itself: the seconds per example of the last validation's decoding, times how much dearer
the test search is (measured once on a validation batch, see
:meth:`~seq2seq.training.module.Seq2SeqModule.test_decode_seconds`), times the test split's
size.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import pytorch_lightning as pl

from seq2seq.errors import ConfigError

log = logging.getLogger(__name__)


def parse_duration(text: str | int | float, key: str = "budget") -> float:
    """Seconds of ``DD:HH:MM:SS`` (Lightning's ``max_time`` format; shorter forms such as
    ``MM:SS`` count from the right) or of a plain number of seconds."""
    if isinstance(text, int | float):
        return float(text)
    parts = str(text).split(":")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        numbers = []
    if not numbers or len(numbers) > 4 or min(numbers) < 0:
        raise ConfigError(f"{key}={text!r}: expected DD:HH:MM:SS (e.g. 00:00:07:30) or seconds")
    seconds = 0.0
    for unit, value in zip((1, 60, 3600, 86400), reversed(numbers), strict=False):
        seconds += unit * value
    return seconds


def process_age() -> float:
    """Seconds since this process started (Linux ``/proc``; 0 where unknown), so that a budget
    counts Python's own start-up and imports too, as ``time seq2seq-train`` does."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            # The command name (field 2) may hold spaces: count fields after its ')'.
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def format_duration(seconds: float) -> str:
    """``7 min 21 s``, ``1 h 02 min``."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


#: Margins on the estimated test decoding (see :meth:`RunBudget.on_train_batch_end`).
RESERVE_FACTOR = 1.2
RESERVE_SECONDS = 10.0


class RunBudget(pl.Callback):
    """Stop training when what is left of the budget is what the test decoding will need.

    Args:
        budget: seconds the whole run may take.
        started: ``time.monotonic()`` when the run started (before the data was read).
        reserve: seconds the test decoding is expected to take, asked after every batch
            (from a timed test search on one validation batch before training, then from
            every validation).
    """

    def __init__(self, budget: float, started: float, reserve: Callable[[], float]) -> None:
        self.budget = budget
        self.started = started
        self.reserve = reserve
        self.stopped_at: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Time the test search on the first validation batch, for an estimate from the start."""
        timer = getattr(pl_module, "time_test_search", None)
        if timer is None or trainer.datamodule is None:
            return
        batch = next(iter(trainer.datamodule.val_dataloader()), None)
        if batch is not None:
            timer(pl_module.transfer_batch_to_device(batch, pl_module.device, 0))

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if self.stopped_at is not None:
            return
        elapsed = time.monotonic() - self.started
        # A fifth more than the estimate, and seconds for what the test adds besides decoding
        # (loading the best checkpoint, building the test loader, scoring).
        reserve = self.reserve() * RESERVE_FACTOR + RESERVE_SECONDS
        should_stop = bool(trainer.strategy.broadcast(elapsed + reserve >= self.budget))
        if should_stop:
            trainer.should_stop = True
            self.stopped_at = trainer.global_step
            log.info(
                "run budget %s: training stops at step %d after %s, leaving about %s for "
                "decoding the test split",
                format_duration(self.budget),
                trainer.global_step,
                format_duration(elapsed),
                format_duration(reserve),
            )
