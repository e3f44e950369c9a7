"""The sequence-level study runs end to end on the debug configurations of one captioning and
one translation experiment: a base run, its two continuations for the same extra time, the
three test scores; a rerun trains and decodes nothing again. (Scores are not asserted: they
belong to the docs, not to tests.)"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl

from seq2seq.bench import seqlevel_study
from tests.conftest import one_thread


def study(tmp_path: Path, *options: str) -> dict[str, Any]:
    """Run the study under ``tmp_path/work`` on the debug data; its results.json."""
    work = tmp_path / "work"
    with one_thread():
        seqlevel_study.main(
            [
                "--work", str(work), "--extra", "3", "--samples", "2",
                "--base-override=trainer.max_epochs=1",
                "--override=debug=fast", f"--override=data.dir={tmp_path}/data", *options,
            ]
        )  # fmt: skip
    return json.loads((work / "results.json").read_text())


def check_rows(results: dict[str, Any], metrics: tuple[str, str]) -> None:
    rows = {r["run"]: r for r in results["rows"]}
    assert list(rows) == ["base", "ce", "seqlevel"]
    for row in rows.values():
        assert all(math.isfinite(row[m]) and row[m] >= 0 for m in metrics), row
    # Each continuation trained from the base for its share of time, and only the sequence-level
    # one in the stage: from the first epoch after the base's (the base trained epoch 0).
    for name in ("ce", "seqlevel"):
        assert rows[name]["steps"] > 0 and rows[name]["extra_s"] > 0
        assert Path(rows[name]["checkpoint"]).parent.parent.name == name
    assert "reward_first_epoch" not in rows["ce"]
    assert math.isfinite(rows["seqlevel"]["reward_last_epoch"])
    run = Path(rows["seqlevel"]["checkpoint"]).parent.parent
    with open(run / "csv" / "metrics.csv", encoding="utf-8") as f:
        logged = [r for r in csv.DictReader(f) if r.get("train/reward")]
    assert logged and {int(r["epoch"]) for r in logged} >= {1}
    assert all(r.get("train/loss", "") == "" for r in logged)
    assert results["machine"]["cpus"] and results["machine"]["cpu_capability"]


def rerun_reuses_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *options: str) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished step ran again")

    monkeypatch.setattr(seqlevel_study, "_run", refuse)
    monkeypatch.setattr(pl.Trainer, "test", refuse)
    study(tmp_path, *options)


@pytest.mark.slow
def test_captioning_study_and_its_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    results = study(tmp_path, "--experiment", "shapes_sat")
    check_rows(results, ("test_cider", "test_bleu4"))
    assert results["seqlevel"]["baseline"] == "greedy"
    out = capsys.readouterr().out
    assert "| sequence-level | epoch" in out and "| CIDEr-D | BLEU-4 |" in out
    rerun_reuses_everything(tmp_path, monkeypatch, "--experiment", "shapes_sat")
    # Other stage options are not served from the finished run.
    with pytest.raises(SystemExit):
        study(tmp_path, "--experiment", "shapes_sat", "--samples", "3")
    assert "trained with other options" in capsys.readouterr().err


@pytest.mark.slow
def test_translation_study_with_the_mean_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    options = (
        "--experiment", "synthetic_bahdanau", "--baseline", "mean", "--lr", "0.001",
        "--reward", "bleu", "--override=seqlevel.max_len=12",
    )  # fmt: skip
    results = study(tmp_path, *options)
    check_rows(results, ("test_bleu", "test_chrf"))
    seqlevel = results["rows"][2]
    # The leave-one-out baselines average to the mean reward.
    assert seqlevel["baseline_last_epoch"] == pytest.approx(seqlevel["reward_last_epoch"], abs=1e-5)
    rerun_reuses_everything(tmp_path, monkeypatch, *options)


def test_a_missing_base_checkpoint_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing.ckpt"
    with pytest.raises(SystemExit):
        seqlevel_study.main(["--base-checkpoint", str(missing), "--work", str(tmp_path)])
    assert f"--base-checkpoint {missing}: no such file" in capsys.readouterr().err
