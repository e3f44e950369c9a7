"""Real two-process DDP on the CPU (gloo): each training example is seen exactly once per
epoch across the ranks, and validation BLEU is computed on the hypotheses of both ranks
gathered, equal to the single-process BLEU of the same checkpoint."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from seq2seq.translation.metrics import corpus_scores
from seq2seq.translation.translator import Translator


@pytest.mark.slow
def test_two_process_ddp_validation_bleu_equals_single_process(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("seq2seq-train")
    repo = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [
            str(exe),
            "debug=fast",
            f"data.dir={tmp_path}/data",
            f"hydra.run.dir={tmp_path}/run",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            "trainer.max_epochs=2",
            "test=false",
            "+callbacks.seen._target_=tests.training.ddp_probe.RecordSeen",
            f"+callbacks.seen.directory={tmp_path}/seen",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Every training example exactly once per epoch, over both ranks, in both epochs.
    seen = [
        tuple(map(int, line.split()))
        for rank in (0, 1)
        for line in (tmp_path / "seen" / f"seen_rank{rank}.txt").read_text().splitlines()
    ]
    train_size = len((tmp_path / "data" / "train.src").read_text().splitlines())
    for epoch in (0, 1):
        counts = Counter(i for e, i in seen if e == epoch)
        assert sorted(counts) == list(range(train_size))
        assert set(counts.values()) == {1}
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    ddp_bleu = [float(r["val/bleu"]) for r in rows if r.get("val/bleu")][-1]

    translator = Translator.from_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    translator.decode_config.beam_size = 1
    data = tmp_path / "data"
    sources = (data / "dev.src").read_text().splitlines()
    references = (data / "dev.tgt").read_text().splitlines()
    single = corpus_scores(translator.translate(sources), references)
    assert ddp_bleu > 0.0  # a real score, not an empty corpus
    assert ddp_bleu == pytest.approx(single.bleu, abs=1e-4)
