"""The data module finds bad data before a model is built, and batches every split right."""

from __future__ import annotations

from pathlib import Path

import pytest

from seq2seq.translation.corpus import CorpusError
from seq2seq.translation.datamodule import TranslationDataModule


def write(folder: Path, name: str, lines: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def corpus(folder: Path, n: int = 20) -> Path:
    for split in ("train", "dev", "test"):
        write(folder, f"{split}.en", [f"the cat number {i} sleeps ." for i in range(n)])
        write(folder, f"{split}.fr", [f"le chat numero {i} dort ." for i in range(n)])
    return folder


def module(folder: Path, **kwargs) -> TranslationDataModule:
    kwargs.setdefault("tokenizer", {"kind": "word"})
    return TranslationDataModule(str(folder), src_lang="en", tgt_lang="fr", **kwargs)


def test_missing_split_names_the_path_and_the_config_keys(tmp_path: Path) -> None:
    folder = corpus(tmp_path / "c")
    (folder / "dev.fr").unlink()
    with pytest.raises(CorpusError, match=r"dev split: missing .*dev\.fr.*data\.dir"):
        module(folder).prepare()


def test_misaligned_test_split_fails_before_training(tmp_path: Path) -> None:
    folder = corpus(tmp_path / "c")
    write(folder, "test.fr", ["un", "deux"])
    with pytest.raises(CorpusError, match=r"test\.en has 20 lines but .*test\.fr has 2"):
        module(folder).prepare()


def test_tsv_format_and_sentencepiece(tmp_path: Path) -> None:
    folder = tmp_path / "tsv"
    rows = [f"the cat number {i} sleeps .\tle chat numero {i} dort ." for i in range(40)]
    for split in ("train", "dev", "test"):
        write(folder, f"{split}.tsv", rows)
    dm = TranslationDataModule(
        str(folder), format="tsv", tokenizer={"kind": "sentencepiece", "vocab_size": 30}
    )
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    assert batch.src.size(0) == batch.tgt_in.size(0) > 0
    assert dm.references("test")[3] == "le chat numero 3 dort ."


def test_long_training_pairs_dropped_but_every_eval_pair_kept(tmp_path: Path) -> None:
    folder = corpus(tmp_path / "c")
    long = " ".join(["word"] * 50)
    write(folder, "train.en", [long] * 5 + ["a b ."] * 15)
    write(folder, "dev.en", [long] * 20)
    dm = module(folder, max_len=10)
    dm.setup()
    assert len(dm.datasets["train"]) == 15
    assert len(dm.datasets["dev"]) == 20
    seen = sorted(i for b in dm.val_dataloader() for i in b.indices.tolist())
    assert seen == list(range(20))


def test_too_large_vocabulary_names_the_config_key(tmp_path: Path) -> None:
    tokenizer = {"kind": "sentencepiece", "vocab_size": 5000, "hard_vocab_limit": True}
    dm = module(corpus(tmp_path / "c"), tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"data\.tokenizer\.vocab_size=5000 is too large"):
        dm.prepare()
    # Without the hard limit the vocabulary is what the corpus fills (a warning says so).
    lowered = module(corpus(tmp_path / "d"), tokenizer={**tokenizer, "hard_vocab_limit": False})
    src, _ = lowered.prepare()
    assert src.vocab_size < 5000
