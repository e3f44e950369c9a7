"""Loading a checkpoint never runs code hidden in it."""

from __future__ import annotations

import pathlib
from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint import CheckpointError, load_checkpoint


class Payload:
    """Unpickling this object would create ``marker`` (a stand-in for any command)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_malicious_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "seq2seq": {"task": "translation"}, "x": Payload(marker)}, ckpt)
    with pytest.raises(CheckpointError, match="refused .*nothing was executed"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_config_naming_foreign_code_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "foreign.ckpt"
    payload = {
        "task": "translation",
        "model": {"encoder": {"_target_": "os.system", "_partial_": True}, "decoder": {}},
        "src_tokenizer": {"type": "word", "words": ["a"]},
        "tgt_tokenizer": {"type": "word", "words": ["a"]},
    }
    torch.save({"state_dict": {}, "seq2seq": payload}, ckpt)
    with pytest.raises(ValueError, match="only classes of the seq2seq package"):
        load_checkpoint(ckpt)


def test_not_a_seq2seq_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "other.ckpt"
    torch.save({"weights": torch.zeros(2)}, ckpt)
    with pytest.raises(CheckpointError, match="not written by seq2seq-train"):
        load_checkpoint(ckpt)
