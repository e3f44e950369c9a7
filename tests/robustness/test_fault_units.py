"""Faults, unit by unit: atomic checkpoint writes, the non-finite loss policy and the saved
position within an epoch (the same faults through real training runs are in
test_training_faults.py and test_interrupts.py)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from seq2seq.data.loader import ResumableDataLoader
from seq2seq.data.sampler import BucketBatchSampler
from seq2seq.data.tokenizer import WordTokenizer
from seq2seq.training.checkpoint_io import AtomicCheckpointIO
from seq2seq.translation.dataset import Example, collate
from seq2seq.translation.module import TranslationModule
from tests.models.test_contracts import DECODERS, ENCODERS


def test_failed_save_keeps_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "ckpt" / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    before = path.read_bytes()

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"partial") if hasattr(f, "write") else Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match=r"could not write checkpoint .*last\.ckpt: No space left"):
        io.save_checkpoint({"step": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary left
    assert torch.load(path, weights_only=True) == {"step": 1}


def module(nonfinite: str) -> TranslationModule:
    tok = WordTokenizer.build(["a b c d"])
    cfg = {"encoder": ENCODERS["bigru"], "decoder": DECODERS["bahdanau"], "init": "pytorch"}
    return TranslationModule(cfg, tok, tok, torch.optim.Adam, nonfinite=nonfinite)


def nan_batch(m: TranslationModule, monkeypatch):
    batch = collate([Example(0, torch.tensor([4, 5]), torch.tensor([6]))])
    monkeypatch.setattr(m, "loss", lambda b: (torch.tensor(float("nan")), torch.tensor(1)))
    return batch


def test_nan_loss_stops_naming_the_step(monkeypatch) -> None:
    m = module("stop")
    with pytest.raises(FloatingPointError, match=r"loss is nan at global step 0 .*nonfinite=skip"):
        m.training_step(nan_batch(m, monkeypatch), 7)


def test_nan_loss_skipped_when_configured(monkeypatch) -> None:
    m = module("skip")
    assert m.training_step(nan_batch(m, monkeypatch), 0) is None


def test_unknown_nonfinite_policy() -> None:
    with pytest.raises(ValueError, match="loss.nonfinite"):
        module("ignore")


@pytest.mark.parametrize("workers", [0, 1])
def test_loader_position_counts_delivered_batches_not_prefetched_ones(workers: int) -> None:
    """The saved position is what training received: worker processes draw batches ahead,
    and a resume must neither skip those nor replay any."""
    lengths = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]

    def loader() -> ResumableDataLoader:
        sampler = BucketBatchSampler(lengths, batch_size=2, seed=7)
        sampler.set_epoch(3)
        return ResumableDataLoader(list(range(len(lengths))), batch_sampler=sampler,
                                   num_workers=workers)  # fmt: skip

    expected = [b.tolist() for b in loader()]
    first = loader()
    iterator = iter(first)
    taken = [next(iterator).tolist() for _ in range(2)]
    state = first.state_dict()
    assert state == {"epoch": 3, "yielded": 2, "seed": 7}
    del iterator

    resumed = loader()
    resumed.load_state_dict(state)
    assert len(resumed) == len(expected)  # Lightning counts the whole epoch
    assert taken + [b.tolist() for b in resumed] == expected
