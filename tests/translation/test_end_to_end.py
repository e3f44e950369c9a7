"""Train a tiny model through the real configs, then use its checkpoint through every CLI."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint import load_checkpoint
from seq2seq.cli import evaluate as evaluate_cli
from seq2seq.cli import translate as translate_cli
from seq2seq.cli.train import train
from seq2seq.translation.metrics import corpus_scores
from seq2seq.translation.translator import Translator
from tests.conftest import compose_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("e2e")
    result = train(compose_config(base))
    result["data_dir"] = base / "data" / "synthetic-debug"
    return result


def test_training_reports_scores_and_writes_checkpoints(trained: dict) -> None:
    best = Path(trained["best_checkpoint"])
    assert best.is_file()
    assert (best.parent / "last.ckpt").is_file()
    assert 0.0 <= trained["test_bleu"] <= 100.0
    assert "nrefs:1" in trained["signatures"]["bleu"]
    metrics = Path(trained["run_dir"]) / "csv" / "metrics.csv"
    header = metrics.read_text().splitlines()[0]
    assert "val/bleu" in header and "train/loss" in header


def test_checkpoint_loads_without_unpickling_and_rebuilds_model(trained: dict) -> None:
    raw = torch.load(trained["best_checkpoint"], weights_only=True)
    assert raw["seq2seq"]["task"] == "translation"
    loaded = load_checkpoint(trained["best_checkpoint"])
    assert not loaded.model.training
    assert loaded.model.decoder.vocab_size == loaded.tgt_tokenizer.vocab_size


def test_python_api_translates_and_keeps_empty_lines(trained: dict) -> None:
    translator = Translator.from_checkpoint(trained["best_checkpoint"])
    out = translator.translate(["the cat sees a dog .", "", "   ", "cats ."])
    assert len(out) == 4 and out[1] == "" and out[2] == ""
    nbest = translator.translate_nbest(["the cat sees a dog ."], nbest=3)[0]
    assert len(nbest) == 3
    assert len({h.text for h in nbest}) == 3  # distinct hypotheses
    assert all(h.logprob <= 0 for h in nbest)


def test_translate_cli_nbest_format(trained: dict, tmp_path: Path, capsys) -> None:
    source = tmp_path / "in.txt"
    source.write_text("the dog runs .\nthe cat .\n")
    translate_cli.main([str(trained["best_checkpoint"]), "-i", str(source), "--nbest", "2"])
    rows = capsys.readouterr().out.strip().split("\n")
    assert [r.split(" ||| ")[0] for r in rows] == ["0", "0", "1", "1"]
    assert all(float(r.split(" ||| ")[2]) <= 0 for r in rows)


def test_evaluate_cli_prints_text_and_json(trained: dict, capsys) -> None:
    data = trained["data_dir"]
    evaluate_cli.main(
        [
            str(trained["best_checkpoint"]),
            "--src",
            str(data / "test.src"),
            "--ref",
            str(data / "test.tgt"),
            "--beam",
            "1",
        ]
    )
    text, json_line = capsys.readouterr().out.strip().rsplit("\n", 1)
    assert "BLEU = " in text and "chrF = " in text
    scores = json.loads(json_line)
    translator = Translator.from_checkpoint(trained["best_checkpoint"])
    translator.decode_config.beam_size = 1
    src = (data / "test.src").read_text().splitlines()
    ref = (data / "test.tgt").read_text().splitlines()
    expected = corpus_scores(translator.translate(src), ref)
    assert scores["bleu"] == pytest.approx(expected.bleu)
    assert scores["sentences"] == len(ref)


def test_same_seed_gives_same_losses(tmp_path: Path) -> None:
    def losses(name: str) -> list[dict[str, str]]:
        cfg = compose_config(tmp_path / name, "trainer.max_epochs=1", "test=false")
        result = train(cfg)
        with open(Path(result["run_dir"]) / "csv" / "metrics.csv", newline="") as f:
            # Everything but the speed, which is the machine's.
            return [
                {k: v for k, v in row.items() if k != "train/tokens_per_s"}
                for row in csv.DictReader(f)
            ]

    assert losses("a") == losses("b")


def test_console_script_multirun_trains_both_models(tmp_path: Path) -> None:
    """The installed `seq2seq-train` entry point, as a user runs it: a -m multirun of the
    fixed-vector and the attention experiment, each job in its own sweep directory."""
    exe = Path(sys.executable).with_name("seq2seq-train")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [
            str(exe),
            "-m",
            "experiment=synthetic_cho,synthetic_bahdanau",
            "debug=fast",
            f"data.dir={tmp_path}/data",
            f"hydra.sweep.dir={tmp_path}/multi",
            "trainer.max_epochs=1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("test BLEU = ") == 2 and "best checkpoint: " in proc.stdout
    for job in ("0_debug", "1_debug"):
        assert (tmp_path / "multi" / job / "checkpoints" / "last.ckpt").is_file()
