"""Faults inside a real training run (in-process, through ``train()`` and the real configs):
a NaN loss stops the run naming the step and keeps the last good checkpoint, or is skipped
where configured; a checkpoint that cannot be written (full disk) stops the run saying so."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint import load_checkpoint
from seq2seq.cli.train import USER_ERRORS, error_message, train
from seq2seq.training.checkpoint_io import CheckpointWriteError
from seq2seq.translation.module import TranslationModule
from tests.robustness.conftest import RUN_OVERRIDES, TinyRun, losses, metric_rows

NAN_STEP = 7


@pytest.fixture
def nan_at_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """The training loss is NaN at global step NAN_STEP (an overflow, a bad batch...)."""
    loss = TranslationModule.loss

    def poisoned(self: TranslationModule, batch):
        total, tokens = loss(self, batch)
        if self.training and self.global_step == NAN_STEP:
            return total * float("nan"), tokens
        return total, tokens

    monkeypatch.setattr(TranslationModule, "loss", poisoned)


def last_step(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["global_step"])


@pytest.mark.usefixtures("nan_at_step")
def test_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_cfg) -> None:
    cfg = tmp_cfg(*RUN_OVERRIDES)
    with pytest.raises(FloatingPointError, match=rf"loss is nan at global step {NAN_STEP} "):
        train(cfg)
    last = Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
    assert last_step(last) == 5  # the checkpoint before the NaN (every 5 steps)
    loaded = load_checkpoint(last)
    assert all(p.isfinite().all() for p in loaded.model.parameters())


@pytest.mark.usefixtures("nan_at_step")
def test_nan_loss_skipped_when_configured(tmp_cfg, translation_run: TinyRun, caplog) -> None:
    cfg = tmp_cfg(*RUN_OVERRIDES, "loss.nonfinite=skip")
    with caplog.at_level(logging.WARNING):
        result = train(cfg)
    assert f"loss is nan at global step {NAN_STEP}" in caplog.text and "batch skipped" in (
        caplog.text
    )
    # The same run as the reference up to the NaN; that batch logged no loss of its own (the
    # logger repeats the previous one), and the run went on to the same last step.
    logged = losses(metric_rows(Path(result["run_dir"])))
    reference = losses(metric_rows(translation_run.run_dir))
    assert [logged[s] for s in range(NAN_STEP)] == [reference[s] for s in range(NAN_STEP)]
    assert logged[NAN_STEP] == logged[NAN_STEP - 1]
    assert all(torch.isfinite(torch.tensor(list(logged.values()))))
    final = last_step(Path(result["run_dir"]) / "checkpoints" / "last.ckpt")
    assert final == last_step(translation_run.last)


def test_full_disk_stops_the_run_saying_the_checkpoint_was_not_written(
    tmp_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(obj, f, *args, **kwargs) -> None:
        f.write(b"partial") if hasattr(f, "write") else Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    cfg = tmp_cfg(*RUN_OVERRIDES)
    with pytest.raises(CheckpointWriteError) as info:
        train(cfg)
    folder = Path(cfg.run_dir) / "checkpoints"
    message = error_message(info.value)
    assert message.startswith(f"could not write checkpoint {folder / 'last.ckpt'}: No space left")
    assert info.value.errno == errno.ENOSPC
    assert isinstance(info.value, USER_ERRORS)  # seq2seq-train prints it as one line
    assert list(folder.iterdir()) == []  # no partial file left behind


def test_worker_errors_are_reported_by_their_own_message() -> None:
    """An error raised in a DataLoader worker carries the worker's traceback in its message;
    seq2seq-train prints only the original message."""
    wrapped = ValueError(
        "Caught ImageError in DataLoader worker process 0.\nOriginal Traceback (most recent "
        'call last):\n  File "x.py", line 1, in f\nseq2seq.data.images.ImageError: '
        "/data/a.jpg: truncated or corrupt image data (broken)\n"
    )
    assert error_message(wrapped) == "/data/a.jpg: truncated or corrupt image data (broken)"
