"""Loading never runs code hidden in a file: checkpoints (for inference and for resuming) and
cached features are read as plain data only. Nothing at run time reaches the network unless
pretrained weights are asked for by name, and then the error says how to work offline."""

from __future__ import annotations

import pathlib
from pathlib import Path

import numpy as np
import pytest
import torch

from seq2seq.captioning.feature_cache import load_features
from seq2seq.checkpoint import CheckpointError, load_checkpoint
from seq2seq.cli.train import train
from seq2seq.data.tokenizer import SentencePieceTokenizer, Tokenizer
from seq2seq.models.encoders.backbones import WeightsUnavailableError
from tests.robustness.conftest import TinyRun, no_network


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


def test_resuming_from_a_malicious_checkpoint_is_refused(tmp_cfg, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "loops": {}, "seq2seq": {"task": "translation"},
                "x": Payload(marker)}, ckpt)  # fmt: skip
    with pytest.raises(CheckpointError, match=f"ckpt_path={ckpt}: .*refused"):
        train(tmp_cfg(f"ckpt_path={ckpt}"))
    assert not marker.exists()


def test_cached_features_holding_objects_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    array = np.empty(2, dtype=object)
    array[:] = [Payload(marker), 1]
    cache = tmp_path / "train-0123.npy"
    np.save(cache, array, allow_pickle=True)
    with pytest.raises(ValueError, match=rf"feature cache {cache} cannot be used.*unpickled"):
        load_features(cache, 2)
    assert not marker.exists()


def test_tokenizers_are_stored_as_plain_data(translation_run: TinyRun, tmp_path: Path) -> None:
    """The checkpoint's tokenizers load with weights_only=True: strings, numbers and bytes
    (a sentencepiece model is its serialised bytes), never pickled objects."""
    payload = torch.load(translation_run.last, weights_only=True)["seq2seq"]
    assert payload["src_tokenizer"]["type"] == "word"
    assert all(isinstance(w, str) for w in payload["src_tokenizer"]["words"])
    sp = SentencePieceTokenizer.train(["the cat sat on the mat ."] * 20, vocab_size=16)
    torch.save({"tokenizer": sp.to_state()}, tmp_path / "t.ckpt")
    state = torch.load(tmp_path / "t.ckpt", weights_only=True)["tokenizer"]
    assert isinstance(state["model_proto"], bytes)
    assert Tokenizer.from_state(state).encode("the cat") == sp.encode("the cat")


def test_training_never_reaches_the_network(translation_run: TinyRun) -> None:
    # The session's training run had every socket connection and name lookup refused.
    assert translation_run.network_attempts == []
    assert translation_run.last.is_file()


def test_named_weights_without_network_say_how_to_use_a_local_file(
    tmp_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pretrained weights by name are the one thing that downloads; offline, the run stops
    with where to put the file or how to pass a local one."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    cfg = tmp_cfg("experiment=shapes_sat", "model.encoder.weights=IMAGENET1K_V1")
    with no_network(), pytest.raises(WeightsUnavailableError) as info:
        train(cfg)
    message = str(info.value)
    assert "no network" in message and str(tmp_path / "torch_home") in message
    assert "weights='/path/to/state_dict.pth'" in message
