"""Rough edges a new user hits in the first hour (issue 14, items 1-6), each tried for real."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.utils import instantiate

from seq2seq.cli.train import train
from seq2seq.data.files import atomic_write_text
from seq2seq.errors import ConfigError
from seq2seq.training.budget import RunBudget, format_duration, parse_duration, process_age
from seq2seq.translation.datamodule import TranslationDataModule
from seq2seq.translation.metrics import corpus_scores
from tests.conftest import compose_config

WORDS = [
    "the", "a", "cat", "dog", "sees", "likes", "house", "tree", "red", "small", "big", "runs",
]  # fmt: skip


def write_corpus(folder: Path, pairs: int = 60) -> Path:
    """A small English-to-reversed corpus: too few distinct pieces for a large vocabulary."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", pairs), ("dev", 6), ("test", 6)):
        src = [" ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 6)) for i in range(n)]
        (folder / f"{split}.en").write_text("".join(s + "\n" for s in src))
        (folder / f"{split}.xx").write_text("".join(s[::-1] + "\n" for s in src))
    return folder


def parallel(folder: Path, **tokenizer: object) -> TranslationDataModule:
    return TranslationDataModule(
        dir=str(folder),
        src_lang="en",
        tgt_lang="xx",
        tokenizer={"kind": "sentencepiece", "vocab_size": 16000, **tokenizer},
    )


def test_a_vocabulary_the_corpus_cannot_fill_is_lowered_with_a_warning(tmp_path, caplog) -> None:
    data = parallel(write_corpus(tmp_path / "corpus"))
    with caplog.at_level(logging.WARNING, logger="seq2seq.translation.datamodule"):
        src, tgt = data.prepare()
    assert 4 < src.vocab_size < 16000 and 4 < tgt.vocab_size < 16000
    (warning,) = [r.getMessage() for r in caplog.records if r.name.startswith("seq2seq")]
    assert "data.tokenizer.vocab_size=16000 is more than this corpus allows" in warning
    assert f"source {src.vocab_size}" in warning and "hard_vocab_limit=true" in warning


def test_with_a_hard_limit_it_is_one_line_naming_the_key(tmp_path) -> None:
    data = parallel(write_corpus(tmp_path / "corpus"), hard_vocab_limit=True)
    with pytest.raises(ConfigError) as info:
        data.prepare()
    message = str(info.value)
    assert "data.tokenizer.vocab_size=16000 is too large for this corpus" in message
    assert "at most" in message and "\n" not in message


def test_the_cli_prints_a_tokenizer_error_as_one_line(tmp_path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    command = [
        sys.executable, "-m", "seq2seq.cli.train", "data=parallel", f"data.dir={corpus}",
        "data.src_lang=en", "data.tgt_lang=xx", "data.tokenizer.vocab_size=16000",
        "data.tokenizer.hard_vocab_limit=true", f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("seq2seq-train: error: data.tokenizer: data.tokenizer.vocab_size=16000")


def test_common_trainer_arguments_are_plain_overrides(tmp_path) -> None:
    overrides = {
        "max_steps": 3,
        "limit_train_batches": 2,
        "limit_val_batches": 1,
        "val_check_interval": 1.0,
        "accumulate_grad_batches": 2,
        "fast_dev_run": False,
    }
    cfg = compose_config(tmp_path, *(f"trainer.{k}={v}" for k, v in overrides.items()))
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.max_steps == 3 and trainer.limit_train_batches == 2
    assert trainer.limit_val_batches == 1 and trainer.accumulate_grad_batches == 2


def test_a_run_without_validation_trains_saves_last_and_says_so(tmp_path, caplog, capsys) -> None:
    cfg = compose_config(tmp_path, "trainer.limit_val_batches=0", "trainer.max_epochs=1")
    with caplog.at_level(logging.WARNING, logger="seq2seq.cli.train"):
        result = train(cfg)
    assert result["best_checkpoint"] == ""
    assert Path(result["last_checkpoint"]).name == "last.ckpt"
    assert "test_bleu" in result  # tested with the final weights
    assert any(
        "early stopping, best-checkpoint selection" in r.getMessage() for r in caplog.records
    )
    out = capsys.readouterr().out
    assert "last checkpoint: " in out and "seq2seq-translate" in out and "elapsed: " in out


def test_files_the_toolkit_writes_get_the_usual_mode(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "corpus.txt", "a\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "corpus.txt").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["corpus.txt"]  # no temporary file left


def test_tokenised_text_is_scored_without_sacrebleus_warning(caplog) -> None:
    # sacrebleu counts hypotheses ending in " ." and warns from 100 on.
    hypotheses = ["mumer silemo sade vaninen .", "vatavat nugulint mumer sade ."] * 60
    references = ["mumer silemo sade .", "vatavat nugulint mumer sade ."] * 60
    with caplog.at_level(logging.WARNING, logger="sacrebleu"):
        none = corpus_scores(hypotheses, references, bleu_tokenize="none")
    assert not caplog.records and "tok:none" in none.bleu_signature
    # The same tokens either way: the score does not change, only the warning goes.
    with caplog.at_level(logging.WARNING, logger="sacrebleu"):
        assert none.bleu == pytest.approx(corpus_scores(hypotheses, references).bleu)
    assert any("forgot to detokenize" in r.getMessage() for r in caplog.records)  # 13a warns
    synthetic = compose_config(Path("/tmp"), debug=False)
    assert synthetic.data.bleu_tokenize == "none"
    assert compose_config(Path("/tmp"), "experiment=bible_bahdanau").data.bleu_tokenize == "13a"


def test_budget_stops_training_to_leave_time_for_the_test_decoding() -> None:
    assert parse_duration("00:00:07:30") == parse_duration("07:30") == 450.0
    with pytest.raises(ConfigError, match="budget='7 minutes'"):
        parse_duration("7 minutes")
    assert format_duration(441) == "7 min 21 s" and format_duration(3720) == "1 h 02 min"
    assert 0 < process_age() < 24 * 3600  # this process has been running for a while
    trainer = SimpleNamespace(
        should_stop=False, global_step=7, strategy=SimpleNamespace(broadcast=lambda x: x)
    )
    import time

    started = time.monotonic() - 100.0  # 100 s into a 150 s budget
    reserve = {"seconds": 30.0}
    budget = RunBudget(150.0, started, lambda: reserve["seconds"])
    budget.on_train_batch_end(trainer)
    assert not trainer.should_stop  # 100 + 30 * 1.2 + 10 < 150
    reserve["seconds"] = 35.0  # the last validation says the test decoding needs 35 s
    budget.on_train_batch_end(trainer)
    assert trainer.should_stop and budget.stopped_at == 7


def test_a_spent_budget_stops_training_at_the_first_step(tmp_path, caplog) -> None:
    cfg = compose_config(tmp_path, "trainer.max_epochs=3", "budget=0")
    with caplog.at_level(logging.INFO, logger="seq2seq.training.budget"):
        result = train(cfg)
    assert result["budget"] == 0.0 and "test_bleu" in result  # the test split still decoded
    (message,) = [r.getMessage() for r in caplog.records if r.name == "seq2seq.training.budget"]
    assert "training stops at step 1 " in message


def test_the_test_decoding_estimate_comes_from_validation(tmp_path) -> None:
    from seq2seq.translation.module import TranslationModule

    cfg = compose_config(tmp_path, "trainer.max_epochs=1", "test=false")
    datamodule = instantiate(cfg.data)
    module = TranslationModule.from_config(cfg, datamodule)
    module.time_test_decoding = True
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False, callbacks=[])
    assert module.test_decode_seconds(100) == 0.0  # nothing timed yet
    datamodule.setup("fit")
    module.time_test_search(next(iter(datamodule.val_dataloader())))
    before_training = module.test_decode_seconds(100)
    assert before_training > 0 and module.training  # timed in eval mode, mode restored
    trainer.fit(module, datamodule=datamodule)
    per_example, ratio = module._val_seconds_per_example, module._test_cost_ratio
    assert per_example > 0 and ratio > 0  # beam 5 against greedy, measured on one batch
    assert module.test_decode_seconds(100) == pytest.approx(100 * per_example * ratio)


def test_a_frozen_backbone_is_explained_once_not_warned_about(tmp_path, caplog) -> None:
    cfg = compose_config(tmp_path, "experiment=shapes_sat", "trainer.fast_dev_run=true")
    with (
        warnings.catch_warnings(record=True) as caught,
        caplog.at_level(logging.INFO, logger="seq2seq.captioning.module"),
    ):
        warnings.simplefilter("always")
        train(cfg)
    assert not [w for w in caught if "in eval mode" in str(w.message)]
    notes = [r.getMessage() for r in caplog.records if r.name == "seq2seq.captioning.module"]
    assert any("backbone keeps its" in n and "in eval mode while training" in n for n in notes)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.limit_val_batches=2", r"trainer.limit_val_batches=2: the dev score needs every"),
        ("trainer.limit_val_batches=0.5", r"use null \(all of them\) or 0 \(no validation\)"),
        ("trainer.limit_test_batches=3", r"trainer.limit_test_batches=3: .* or test=false"),
    ],
)
def test_part_of_the_dev_or_test_split_is_refused_before_training(
    tmp_path: Path, override: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        train(compose_config(tmp_path, override))
