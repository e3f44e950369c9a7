"""The ensemble study runs end to end on the debug configurations, translation and captioning:
trains two seeds, scores each best checkpoint, the ensembles and the average (scores are not
asserted: they belong to the README, not to tests)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from seq2seq.bench import ensemble_study


@pytest.mark.slow
def test_two_seeds_two_checkpoints_each(tmp_path: Path, capsys) -> None:
    work = tmp_path / "work"
    ensemble_study.main(
        [
            "--seeds", "1,2", "--top-k", "2", "--beam", "1", "--work", str(work),
            "--override=debug=fast", f"--override=data.dir={tmp_path}/data",
        ]
    )  # fmt: skip
    rows = json.loads((work / "results.json").read_text())["rows"]
    labels = [r["model"] for r in rows]
    assert labels == [
        "seed 1: best checkpoint",
        "seed 2: best checkpoint",
        "seed 1: ensemble of its 2 best checkpoints",
        "seed 1: average of its 2 best checkpoints",
        "ensemble of the best checkpoints of seeds 1,2",
    ]
    assert (
        len(rows[2]["checkpoints"]) == 2 and rows[2]["checkpoints"][0] == rows[0]["checkpoints"][0]
    )
    assert all(0 <= r["bleu"] <= 100 for r in rows)
    assert "| seed 1: best checkpoint |" in capsys.readouterr().out
    # A finished seed is not trained again.
    assert (work / "seed1" / "done").is_file()
    # A finished run is scored again as it is (--runs), labelled by its position.
    ensemble_study.main(
        [
            "--runs", str(work / "seed1"), "--beam", "1", "--work", str(tmp_path / "again"),
            "--override=debug=fast", f"--override=data.dir={tmp_path}/data",
        ]
    )  # fmt: skip
    again = json.loads((tmp_path / "again" / "results.json").read_text())["rows"]
    assert [r["model"] for r in again] == labels[:1] + labels[2:4]
    assert again[0]["bleu"] == rows[0]["bleu"]


@pytest.mark.slow
def test_captioning_rows_score_cider_and_bleu4(tmp_path: Path, capsys) -> None:
    """A captioning experiment gets the same rows, scored with CIDEr-D and BLEU-4 on the test
    split of its data module (the debug scenes, written under tmp_path)."""
    work = tmp_path / "work"
    ensemble_study.main(
        [
            "--experiment", "shapes_sat", "--seeds", "1,2", "--top-k", "2", "--beam", "2",
            "--work", str(work), "--override=debug=fast", f"--override=data.dir={tmp_path}/data",
        ]
    )  # fmt: skip
    results = json.loads((work / "results.json").read_text())
    rows = results["rows"]
    assert [r["model"] for r in rows] == [
        "seed 1: best checkpoint",
        "seed 2: best checkpoint",
        "seed 1: ensemble of its 2 best checkpoints",
        "seed 1: average of its 2 best checkpoints",
        "ensemble of the best checkpoints of seeds 1,2",
    ]
    assert results["beam"] == 2
    for r in rows:
        assert math.isfinite(r["cider"]) and r["cider"] >= 0, r
        assert math.isfinite(r["bleu4"]) and 0 <= r["bleu4"] <= 100, r
        assert r["n_images"] == 6  # the debug scenes' test split
    out = capsys.readouterr().out
    assert "| model | CIDEr-D | BLEU-4 | decoding time |" in out
    assert "seed 1: best checkpoint: CIDEr-D " in out


def test_runs_without_checkpoints_are_refused_naming_the_folder(tmp_path: Path, capsys) -> None:
    """--runs scores finished runs instead of training; one without checkpoints is an error
    that names it, before anything is decoded."""
    empty = tmp_path / "run"
    (empty / "checkpoints").mkdir(parents=True)
    with pytest.raises(SystemExit):
        ensemble_study.main(["--runs", str(empty), "--work", str(tmp_path / "w")])
    assert f"--runs: {empty} holds no checkpoints/epoch*.ckpt" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_with_a_moving_average_is_also_scored_with_its_training_weights(
    tmp_path: Path,
) -> None:
    """With model.ema_decay the best checkpoint holds the average; the row after it scores
    the same checkpoint's training weights (seq2seq-average --training-weights)."""
    work = tmp_path / "work"
    ensemble_study.main(
        [
            "--seeds", "1", "--top-k", "1", "--beam", "1", "--work", str(work),
            "--override=debug=fast", f"--override=data.dir={tmp_path}/data",
            "--override=model.ema_decay=0.5",
        ]
    )  # fmt: skip
    rows = json.loads((work / "results.json").read_text())["rows"]
    assert [r["model"] for r in rows] == [
        "seed 1: best checkpoint",
        "seed 1: best checkpoint's training weights (no moving average)",
    ]
    assert rows[1]["checkpoints"] == [str(work / "seed1_training_weights.ckpt")]
    assert all(0 <= r["bleu"] <= 100 for r in rows)
