"""Bad parallel corpora through ``train()`` and the real configs: each problem stops the run
before any model is built, with the file, the line or counts, and the config key; or, where
that is the policy, the bad pairs are dropped and counted in the log."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from seq2seq.cli.train import train
from seq2seq.translation.corpus import CorpusError
from seq2seq.translation.datamodule import TranslationDataModule


def write_corpus(
    folder: Path, train_en: bytes | None = None, train_fr: bytes | None = None
) -> Path:
    """A small clean en-fr corpus; ``train_en``/``train_fr`` replace the training files."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"the cat number {i} sleeps .\n" for i in range(12)]
    for split in ("train", "dev", "test"):
        (folder / f"{split}.en").write_text("".join(lines))
        (folder / f"{split}.fr").write_text("".join(s.replace("cat", "chat") for s in lines))
    if train_en is not None:
        (folder / "train.en").write_bytes(train_en)
    if train_fr is not None:
        (folder / "train.fr").write_bytes(train_fr)
    return folder


@pytest.fixture
def corpus_cfg(tmp_cfg):
    """``corpus_cfg(folder, *overrides)``: the user-corpus config (data=parallel) on
    ``folder``; not shrunk by debug=fast, which would swap in the synthetic corpus."""

    def make(folder: Path, *overrides: str):
        return tmp_cfg(
            "data=parallel",
            f"data.dir={folder}",
            "data.src_lang=en",
            "data.tgt_lang=fr",
            "data.tokenizer.kind=word",
            *overrides,
            debug=False,
        )

    return make


def fails_before_training(cfg, *parts: str) -> str:
    """Run ``train(cfg)``, expect a CorpusError whose message holds ``parts`` in order, and
    check that no checkpoint was written."""
    with pytest.raises(CorpusError, match=".*".join(re.escape(p) for p in parts)) as info:
        train(cfg)
    assert not (Path(cfg.run_dir) / "checkpoints").exists()
    return str(info.value)


def test_line_counts_differ_names_both_files_and_counts(tmp_path: Path, corpus_cfg) -> None:
    folder = write_corpus(tmp_path / "c", train_fr=b"un\ndeux\n")
    src, tgt = folder / "train.en", folder / "train.fr"
    fails_before_training(corpus_cfg(folder), str(src), "12 lines", str(tgt), "has 2")


def test_invalid_utf8_names_file_and_line(tmp_path: Path, corpus_cfg) -> None:
    lines = b"".join(f"line {i} .\n".encode() for i in range(12))
    bad = lines.replace(b"line 4 .", b"line \xff\xfe 4 .")
    folder = write_corpus(tmp_path / "c", train_en=bad)
    fails_before_training(corpus_cfg(folder), f"{folder / 'train.en'}:5:", "expected UTF-8",
                          "data.encoding_errors=replace")  # fmt: skip


def test_invalid_utf8_replaced_when_configured(tmp_path: Path, caplog) -> None:
    lines = b"".join(f"line {i} .\n".encode() for i in range(12))
    folder = write_corpus(tmp_path / "c", train_en=lines.replace(b"line 4", b"line \xff 4"))
    dm = TranslationDataModule(
        str(folder), "en", "fr", tokenizer={"kind": "word"}, encoding_errors="replace"
    )
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert dm.src_tokenizer.decode(dm.datasets["train"][4].src) == "line \ufffd 4 ."
    assert "train: replaced invalid UTF-8 in 1 lines" in caplog.text


def test_empty_and_overlong_pairs_dropped_and_counted(tmp_path: Path, caplog) -> None:
    en = ["a cat .", "", "   ", "a dog .", " ".join(["long"] * 40), "a bird ."] * 2
    fr = ["un chat .", "rien", "\t", "", "long", "un oiseau ."] * 2
    folder = write_corpus(
        tmp_path / "c",
        train_en="".join(s + "\n" for s in en).encode(),
        train_fr="".join(s + "\n" for s in fr).encode(),
    )
    dm = TranslationDataModule(str(folder), "en", "fr", tokenizer={"kind": "word"}, max_len=10)
    with caplog.at_level(logging.INFO):
        dm.setup()
    # Pairs with either side empty or blank go (3 per copy); the 40-token one is too long.
    assert "train: dropped 6 empty pairs" in caplog.text
    assert "train: dropped 2 pairs longer than 10 tokens" in caplog.text
    assert len(dm.datasets["train"]) == 4


def test_missing_file_names_path_and_config_key(tmp_path: Path, corpus_cfg) -> None:
    folder = write_corpus(tmp_path / "c")
    (folder / "dev.fr").unlink()
    fails_before_training(corpus_cfg(folder), "dev split: missing", str(folder / "dev.fr"),
                          f"data.dir={folder}")  # fmt: skip


def test_missing_corpus_folder_names_the_config_key(tmp_path: Path, corpus_cfg) -> None:
    folder = tmp_path / "nowhere"
    fails_before_training(corpus_cfg(folder), str(folder / "train.en"), f"data.dir={folder}")
