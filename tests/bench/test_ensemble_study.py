"""The ensemble study runs end to end on the debug configuration: trains two seeds, scores
each best checkpoint, the ensembles and the average (scores are not asserted: they belong to
the README, not to tests)."""

from __future__ import annotations

import json
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
