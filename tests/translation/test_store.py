"""The prepared corpus store gives exactly what the in-memory path gave, is reused only when
nothing it depends on changed, and is never read half-written."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from seq2seq.data.sampler import BucketBatchSampler
from seq2seq.data.tokenizer import build_tokenizers
from seq2seq.errors import ConfigError
from seq2seq.translation import prepare as prepare_module
from seq2seq.translation import scan as scan_module
from seq2seq.translation.corpus import read_parallel, read_tsv
from seq2seq.translation.datamodule import TranslationDataModule
from seq2seq.translation.dataset import TranslationDataset

SPLITS = ("train", "dev", "test")
REPO = Path(__file__).resolve().parents[2]


def awkward_lines(n: int, side: str) -> list[bytes]:
    """Lines that exercise the reader: blank and whitespace-only lines, CRLF, non-ASCII,
    a U+2028 inside a sentence, a literal <s>, long and short sentences."""
    words = ["chat", "été", "naïve", "<s>", "x", "Straße", "日本", "ok"]
    lines = []
    for i in range(n):
        text = " ".join(words[(i * k) % len(words)] for k in range(1, 2 + i % 9))
        if i % 17 == 3:
            text = "" if side == "src" else text  # an empty pair
        if i % 23 == 5:
            text = "   \t "  # whitespace only
        if i % 11 == 7:
            text = f"{text} a\u2028b"
        end = b"\r\n" if i % 5 == 0 else b"\n"
        lines.append(f"{side}{i % 4} {text}".rstrip(" ").encode() + end if text else end)
    return lines


def plain_corpus(folder: Path, n: int = 157, bom: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, size in zip(SPLITS, (n, n // 3, n // 4), strict=True):
        sides = {
            lang: b"".join(awkward_lines(size, side))
            for lang, side in (("en", "src"), ("fr", "tgt"))
        }
        if bom and split == "train":
            sides["en"] = b"\xef\xbb\xbf" + sides["en"]
        if split == "test" and not any(data.endswith(b"\n\n") for data in sides.values()):
            sides = {lang: data[:-1] for lang, data in sides.items()}  # no final newline
        for lang, data in sides.items():
            (folder / f"{split}.{lang}").write_bytes(data)
    return folder


def tsv_corpus(folder: Path, n: int = 101) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        src, tgt = awkward_lines(n, "src"), awkward_lines(n, "tgt")
        rows = [
            s.rstrip(b"\r\n") + b"\t" + t.rstrip(b"\r\n") + b"\textra\n" if i % 13 else b"\n"
            for i, (s, t) in enumerate(zip(src, tgt, strict=True))
        ]
        (folder / f"{split}.tsv").write_bytes(b"".join(rows))
    return folder


def module(folder: Path, **kwargs) -> TranslationDataModule:
    kwargs.setdefault("tokenizer", {"kind": "word", "vocab_size": 30})
    kwargs.setdefault("max_tokens", 60)
    return TranslationDataModule(str(folder), src_lang="en", tgt_lang="fr", **kwargs)


def in_memory(dm: TranslationDataModule) -> dict[str, TranslationDataset]:
    """Today's path: read every split into lists, train on all of train, encode."""
    if dm.format == "tsv":
        corpora = {s: read_tsv(dm.files(s)[0], errors=dm.encoding_errors) for s in SPLITS}
    else:
        corpora = {s: read_parallel(*dm.files(s), errors=dm.encoding_errors) for s in SPLITS}
    options = {k: v for k, v in dm.tokenizer_cfg.items() if k not in ("kind", "sample")}
    src_tok, tgt_tok = build_tokenizers(
        dm.tokenizer_cfg["kind"], corpora["train"].src, corpora["train"].tgt, **options
    )
    return {
        s: TranslationDataset(
            c.src, c.tgt, src_tok, tgt_tok, max_len=dm.max_len if s == "train" else None
        )
        for s, c in corpora.items()
    } | {"references": {s: c.tgt for s, c in corpora.items()}}


def assert_same_as_in_memory(dm: TranslationDataModule) -> None:
    dm.setup()
    expected = in_memory(dm)
    for split in SPLITS:
        stored, memory = dm.datasets[split], expected[split]
        assert len(stored) == len(memory) > 0
        assert torch.equal(stored.indices, memory.indices)
        assert torch.equal(stored.lengths.long(), memory.lengths)
        assert (stored.dropped_too_long, stored.dropped_empty) == (
            memory.dropped_too_long,
            memory.dropped_empty,
        )
        for i in range(len(stored)):
            a, b = stored[i], memory[i]
            assert a.index == b.index and torch.equal(a.src, b.src) and torch.equal(a.tgt, b.tgt)
        assert list(dm.references(split)) == expected["references"][split]
    # The same lengths give the same batches, epoch after epoch.
    for epoch in (0, 1):
        ours = BucketBatchSampler(dm.datasets["train"].lengths, max_tokens=60, seed=3)
        theirs = BucketBatchSampler(expected["train"].lengths, max_tokens=60, seed=3)
        ours.set_epoch(epoch), theirs.set_epoch(epoch)
        assert list(ours) == list(theirs)
    batch = next(iter(dm.train_dataloader()))
    assert batch.src.dtype == torch.long and batch.tgt_in.shape[0] == batch.src.shape[0]


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 7 lines and reads of 64 bytes: every boundary case of the scan occurs."""
    monkeypatch.setattr(scan_module, "CHUNK_LINES", 7)
    monkeypatch.setattr(scan_module, "BLOCK_BYTES", 64)


@pytest.mark.parametrize("kind", ["word", "sentencepiece"])
def test_plain_store_equals_the_in_memory_path(tmp_path: Path, tiny_chunks, kind: str) -> None:
    tokenizer = {"kind": kind, "vocab_size": 30 if kind == "word" else 60}
    if kind == "sentencepiece":
        tokenizer["hard_vocab_limit"] = False
    dm = module(plain_corpus(tmp_path / "c"), tokenizer=tokenizer, max_len=6)
    assert_same_as_in_memory(dm)


def test_tsv_store_equals_the_in_memory_path(tmp_path: Path, tiny_chunks) -> None:
    dm = module(tsv_corpus(tmp_path / "c"), format="tsv", encoding_errors="replace")
    assert_same_as_in_memory(dm)


def test_replaced_bytes_equal_the_in_memory_path(tmp_path: Path, tiny_chunks) -> None:
    folder = plain_corpus(tmp_path / "c")
    data = (folder / "train.fr").read_bytes()
    (folder / "train.fr").write_bytes(data.replace(b"tgt1", b"tg\xfft1", 3))
    assert_same_as_in_memory(module(folder, encoding_errors="replace"))


def test_worker_processes_write_the_same_store(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(scan_module, "CHUNK_LINES", 50)
    monkeypatch.setattr(prepare_module, "PARALLEL_MIN_LINES", 0)
    folder = plain_corpus(tmp_path / "c", n=900)
    stores = []
    for workers, root in ((1, "one"), (2, "two")):
        dm = module(folder, store_dir=str(tmp_path / root), prepare_workers=workers)
        dm.prepare()
        stores.append(dm.store.folder)
    one, two = stores
    assert one.name == two.name  # the key does not depend on the number of workers
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert len(files) > 20
    for name in files:
        if name.name != "manifest.json":
            assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_reused_until_a_file_or_a_setting_changes(tmp_path: Path, caplog) -> None:
    folder = plain_corpus(tmp_path / "c")
    first = module(folder)
    first.prepare()
    assert first.prepared_here
    again = module(folder, max_len=3, seed=9)  # batching settings: the same store
    with caplog.at_level(logging.INFO):
        again.setup()
    assert not again.prepared_here and again.store.folder == first.store.folder
    assert f"corpus store: {first.store.folder} (reused" in caplog.text

    bigger = module(folder, tokenizer={"kind": "word", "vocab_size": 31})
    bigger.prepare()
    assert bigger.prepared_here and bigger.store.folder != first.store.folder

    for lang in ("en", "fr"):
        with open(folder / f"dev.{lang}", "ab") as handle:
            handle.write(b"one more pair\n")
    changed = module(folder)
    changed.prepare()
    assert changed.prepared_here
    assert changed.store.folder not in (first.store.folder, bigger.store.folder)
    dev = changed.store.split("dev")
    assert dev["pairs"] == first.store.split("dev")["pairs"] + 1
    assert changed.references("dev")[-1] == "one more pair"
    # The manifest says what the store came from.
    assert dev["files"][1]["path"] == str(folder / "dev.fr")
    assert dev["files"][1]["sha256"] == hashlib.sha256((folder / "dev.fr").read_bytes()).hexdigest()


def test_tokenizers_learn_from_a_fixed_sample(tmp_path: Path, caplog) -> None:
    folder = plain_corpus(tmp_path / "c", n=300)
    stores = []
    for root in ("a", "b"):
        dm = module(
            folder,
            tokenizer={"kind": "word", "vocab_size": 30, "sample": 40},
            store_dir=str(tmp_path / root),
        )
        with caplog.at_level(logging.INFO):
            dm.prepare()
        stores.append(dm.store)
    assert "training the word tokenizers on a sample of 40 training pairs" in caplog.text
    assert stores[0].manifest["tokenizers"]["trained_on_pairs"] == 40
    assert stores[0].src_tokenizer.to_state() == stores[1].src_tokenizer.to_state()
    everything = module(folder, store_dir=str(tmp_path / "c_all"))
    everything.prepare()
    assert (
        everything.store.manifest["tokenizers"]["trained_on_pairs"]
        == everything.store.split("train")["pairs"]
    )


def test_split_data_sets_pickle_as_file_names(tmp_path: Path) -> None:
    dm = module(plain_corpus(tmp_path / "c", n=2000))
    dm.setup()
    train = dm.datasets["train"]
    copy = pickle.loads(pickle.dumps(train._src))
    assert len(pickle.dumps(train._src)) < 1000 < train._src.values.nbytes
    assert np.array_equal(copy[5], train._src[5])
    assert isinstance(train._src.values.base, np.memmap) or train._src.values.base is not None


def test_a_store_folder_that_cannot_be_written_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=rf"corpus store in {blocker}.*data\.store_dir"):
        module(plain_corpus(tmp_path / "c"), store_dir=str(blocker / "stores")).prepare()


def test_a_killed_preparation_is_never_used_and_is_redone(tmp_path: Path) -> None:
    folder = plain_corpus(tmp_path / "c")
    store_dir = tmp_path / "stores"
    # The child dies by SIGKILL (no cleanup runs) after the training split was encoded.
    script = textwrap.dedent(
        f"""
        import os, signal
        from seq2seq.translation import prepare
        from seq2seq.translation.datamodule import TranslationDataModule

        original = prepare._write_split
        def write_then_die(folder, scan, *args):
            entry = original(folder, scan, *args)
            os.kill(os.getpid(), signal.SIGKILL)
        prepare._write_split = write_then_die
        TranslationDataModule({str(folder)!r}, src_lang="en", tgt_lang="fr",
                              tokenizer={{"kind": "word", "vocab_size": 30}},
                              store_dir={str(store_dir)!r}).prepare()
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    leftovers = list(store_dir.glob(".*.tmp"))
    assert len(leftovers) == 1 and (leftovers[0] / "train" / "src.values").is_file()
    assert not [p for p in store_dir.iterdir() if not p.name.startswith(".")]

    dm = module(folder, store_dir=str(store_dir))
    dm.setup()
    assert dm.prepared_here and not list(store_dir.glob(".*.tmp"))
    assert_same_as_in_memory(dm)


def _rank(rank: int, folder: str, rendezvous: str, out: str) -> None:
    import json

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        dm = module(Path(folder))
        dm.setup()
        batches = [b for b in dm.train_dataloader().batch_sampler]
        result = {
            "prepared_here": dm.prepared_here,
            "store": str(dm.store.folder),
            "examples": [int(dm.datasets["train"][i].index) for b in batches for i in b],
        }
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_two_ddp_ranks_prepare_once_and_read_the_same_store(tmp_path: Path) -> None:
    import json

    import torch.multiprocessing as mp

    folder = plain_corpus(tmp_path / "c", n=400)
    mp.spawn(_rank, args=(str(folder), str(tmp_path / "rdv"), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert sorted(r["prepared_here"] for r in ranks) == [False, True]
    assert ranks[0]["store"] == ranks[1]["store"]
    assert len(list((folder / "prepared").glob("[!.]*"))) == 1
    # Each rank its own share of the batches, every training pair once in all.
    seen = ranks[0]["examples"] + ranks[1]["examples"]
    train = module(folder)
    train.setup()
    assert sorted(seen) == sorted(train.datasets["train"].indices.tolist())
