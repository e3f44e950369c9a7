"""Checkpoints that cannot be used: a path that does not exist, a truncated file, the other
task's checkpoint, nothing to resume. Each error says which file and what was expected, for
``seq2seq-translate`` and for a resumed ``seq2seq-train`` alike (before any data is read)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from seq2seq.checkpoint import CheckpointError
from seq2seq.cli import translate as translate_cli
from seq2seq.cli.resume import ResumeError
from seq2seq.cli.train import train
from tests.robustness.conftest import TinyRun


def truncated(run: TinyRun, tmp_path: Path) -> Path:
    path = tmp_path / "truncated.ckpt"
    path.write_bytes(run.last.read_bytes()[:5000])
    return path


def captioning(run: TinyRun, tmp_path: Path) -> Path:
    """The run's checkpoint relabelled as a captioning one (what load_checkpoint checks)."""
    ckpt = torch.load(run.last, weights_only=True)
    ckpt["seq2seq"] = {**ckpt["seq2seq"], "task": "captioning", "src_tokenizer": None}
    path = tmp_path / "captioning.ckpt"
    torch.save(ckpt, path)
    return path


def translate_error(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        translate_cli.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err  # one line, no traceback
    return err


def test_translate_missing_checkpoint(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.ckpt"
    err = translate_error([str(missing)], capsys)
    assert f"error: checkpoint {missing}: no such file" in err


def test_translate_truncated_checkpoint(translation_run: TinyRun, tmp_path: Path, capsys) -> None:
    path = truncated(translation_run, tmp_path)
    err = translate_error([str(path)], capsys)
    assert f"checkpoint {path} cannot be read: truncated or not a PyTorch checkpoint" in err


def test_translate_given_a_captioning_checkpoint(
    translation_run: TinyRun, tmp_path: Path, capsys
) -> None:
    path = captioning(translation_run, tmp_path)
    err = translate_error([str(path)], capsys)
    assert f"checkpoint {path} is a 'captioning' model; expected a 'translation' model" in err


def fails_to_resume(cfg, exc: type[Exception], *parts: str) -> None:
    with pytest.raises(exc, match=".*".join(re.escape(p) for p in parts)):
        train(cfg)
    # Checked before the data: the debug corpus was never written.
    assert not (Path(cfg.run_dir).parent / "data").exists()


def test_train_ckpt_path_missing(tmp_cfg, tmp_path: Path) -> None:
    missing = tmp_path / "runs" / "last.ckpt"
    fails_to_resume(tmp_cfg(f"ckpt_path={missing}"), CheckpointError,
                    f"ckpt_path={missing}: no such file")  # fmt: skip


def test_train_ckpt_path_truncated(translation_run: TinyRun, tmp_cfg, tmp_path: Path) -> None:
    path = truncated(translation_run, tmp_path)
    fails_to_resume(tmp_cfg(f"ckpt_path={path}"), CheckpointError, f"ckpt_path={path}",
                    "truncated or not a PyTorch checkpoint")  # fmt: skip


def test_train_ckpt_path_of_the_other_task(
    translation_run: TinyRun, tmp_cfg, tmp_path: Path
) -> None:
    path = captioning(translation_run, tmp_path)
    fails_to_resume(tmp_cfg(f"ckpt_path={path}"), CheckpointError, f"ckpt_path={path}",
                    "a 'captioning' checkpoint; this run is task=translation")  # fmt: skip


def test_train_ckpt_path_not_a_training_checkpoint(tmp_cfg, tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, path)
    fails_to_resume(tmp_cfg(f"ckpt_path={path}"), CheckpointError, f"ckpt_path={path}",
                    "not a training checkpoint written by seq2seq-train")  # fmt: skip


def test_resume_with_nothing_to_resume_says_where_it_looked(tmp_cfg, tmp_path: Path) -> None:
    cfg = tmp_cfg("resume=true")
    looked = Path(cfg.run_dir).parent / "*" / "checkpoints" / "last.ckpt"
    fails_to_resume(cfg, ResumeError, "resume=true: no checkpoint to resume from",
                    f"looked for {looked} (experiment_name=debug)", "ckpt_path=")  # fmt: skip
