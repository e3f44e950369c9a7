"""A callback that writes how long a training run took to reach its first step, and at what
memory, for the corpus-size benchmark (:mod:`seq2seq.bench.corpus_scale`).

It depends on Lightning and the standard library only, so the benchmark can also load it
into an older checkout of the toolkit, to measure the path it replaced in the same session.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


def process_age() -> float:
    """Seconds since this process started (Linux ``/proc``)."""
    with open("/proc/self/stat", encoding="ascii") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime", encoding="ascii") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory now, in MB: all of it (``VmRSS``), its private memory
    (``RssAnon``) or the file pages it maps (``RssFile``, shared with other processes)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


class StartupProbe(pl.Callback):
    """Records the process age and RSS at the first training step, and the target tokens per
    second of steps ``warmup`` to the end; writes them to ``path`` (JSON) when training ends.

    Args:
        path: the JSON file to write.
        warmup: steps left out of the speed (the first ones allocate and warm caches).
    """

    def __init__(self, path: str, warmup: int = 5) -> None:
        self.path, self.warmup = Path(path), warmup
        self.result: dict[str, Any] = {}
        self._tokens = 0
        self._started: float | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, module: Any, batch: Any, idx: int) -> None:
        if "first_step_s" not in self.result:
            self.result.update(
                first_step_s=process_age(),
                first_step_rss_mb=rss_mb(),
                first_step_private_mb=rss_mb("RssAnon"),
            )
        if trainer.global_step == self.warmup and self._started is None:
            self._started = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: Any, out: Any, batch: Any, idx: int
    ) -> None:
        if self._started is not None:
            self._tokens += int((batch.tgt_out != 0).sum())  # PAD is 0

    def on_train_end(self, trainer: pl.Trainer, module: Any) -> None:
        if self._started is not None:
            elapsed = time.perf_counter() - self._started
            self.result.update(tokens_per_s=self._tokens / elapsed, measured_s=elapsed)
        self.result.update(
            end_rss_mb=rss_mb(),
            end_private_mb=rss_mb("RssAnon"),
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.result, indent=2), encoding="utf-8")
