"""The Karpathy-scale benchmark runs end to end on a tiny size and reuses its files (its
timings are for the benchmark to report, not for a test to judge)."""

from __future__ import annotations

import json

import pytest
import torch

from seq2seq.bench import karpathy_scale
from seq2seq.captioning.annotations.reader import read_annotations


def test_karpathy_scale_reports_every_step_and_reuses_its_files(tmp_path, capsys) -> None:
    karpathy_scale.main(["--dir", str(tmp_path), "--images", "50", "--captions", "3"])
    out = capsys.readouterr().out
    assert torch.backends.cpu.get_cpu_capability() in out.splitlines()[0]
    steps = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert set(steps) == {"read", "check", "prepare", "first"}
    assert "50 images, 150 captions" in steps["read"]
    assert "50 files and headers" in steps["check"]
    records = read_annotations(tmp_path / "dataset_coco.json", tmp_path)
    # Karpathy's proportions: 5,000 of 123,287 in each of val and test, restval joins train.
    assert [sum(r.split == s for r in records) for s in ("train", "val", "test")] == [46, 2, 2]
    data = json.loads((tmp_path / "dataset_coco.json").read_text())
    assert {e["split"] for e in data["images"]} == {"train", "restval", "val", "test"}
    stamp = (tmp_path / "dataset_coco.json").stat().st_mtime_ns
    karpathy_scale.main(["--dir", str(tmp_path), "--images", "50", "--captions", "3"])
    assert (tmp_path / "dataset_coco.json").stat().st_mtime_ns == stamp  # reused
    karpathy_scale.main(["--dir", str(tmp_path), "--images", "40", "--captions", "3"])
    assert len(read_annotations(tmp_path / "dataset_coco.json", tmp_path)) == 40
    with pytest.raises(SystemExit):
        karpathy_scale.main(["--dir", str(tmp_path), "--images", "2"])
