"""Training logs its speed in target tokens per second, validation pauses left out."""

from __future__ import annotations

import csv
from pathlib import Path

from seq2seq.cli.train import train
from tests.conftest import compose_config


def test_tokens_per_second_are_logged_every_log_interval(tmp_path: Path) -> None:
    cfg = compose_config(
        tmp_path, "trainer.max_epochs=1", "trainer.log_every_n_steps=2", "test=false"
    )
    result = train(cfg)
    with open(Path(result["run_dir"]) / "csv" / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/tokens_per_s")]
    rates = [float(r["train/tokens_per_s"]) for r in rows]
    steps = [int(r["step"]) for r in rows]
    assert rates and all(rate > 0 for rate in rates)
    assert len(set(steps)) == len(steps)  # once per interval
