"""A real ``seq2seq-train`` process killed in the middle of an epoch resumes where it stopped;
one stopped with Ctrl-C exits cleanly with a checkpoint.

Both start the installed console script as a user does, wait for its first mid-epoch
checkpoint to appear (written atomically, so a file that exists is complete) and signal it.
The uninterrupted reference is the session's ``translation_run``: the same config, seed and
thread count, so the resumed run must log the very same losses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from seq2seq.checkpoint import load_checkpoint
from seq2seq.cli.train import train
from seq2seq.training.resume import TrainingInterrupted
from tests.robustness.conftest import RUN_OVERRIDES, TinyRun, losses, metric_rows

EXE = Path(sys.executable).with_name("seq2seq-train")
TIMEOUT = 240


def command(run: TinyRun, *overrides: str) -> list[str]:
    """The reference run's command line (its corpus is reused, not rewritten)."""
    return [str(EXE), "debug=fast", f"data.dir={run.data_dir}", *RUN_OVERRIDES, *overrides]


def environment() -> dict[str, str]:
    # One thread, as the in-process reference: the same floats, and no oversubscribed cores.
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def start_and_wait_for(checkpoint: Path, args: list[str], cwd: Path) -> subprocess.Popen:
    """Start ``args`` and return once ``checkpoint`` exists (the process still running)."""
    proc = subprocess.Popen(
        args, cwd=cwd, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + TIMEOUT
    while not checkpoint.is_file():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training ended before its first checkpoint:\n{out[-2000:]}{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint within the time limit")
        time.sleep(0.02)
    return proc


def step_of(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["global_step"])


def test_sigkill_mid_epoch_then_resume_continues_where_it_stopped(
    translation_run: TinyRun, tmp_path: Path
) -> None:
    runs = tmp_path / "runs" / "debug"  # runs/<experiment_name> (debug=fast names it debug)
    first = runs / "first"
    last = first / "checkpoints" / "last.ckpt"
    proc = start_and_wait_for(last, command(translation_run, f"hydra.run.dir={first}"), tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL

    total = step_of(translation_run.last)  # the uninterrupted run's last step
    per_epoch = total // 2
    killed_at = step_of(last)
    assert 0 < killed_at < total and killed_at % per_epoch != 0, "not killed mid-epoch"

    # As a user resumes: the same command plus resume=true, from the same folder.
    resumed = subprocess.run(
        command(translation_run, "resume=true"),
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert [p.name for p in runs.iterdir()] == ["first"]  # continued in its own directory
    log = (first / "train.log").read_text()  # the killed run's log, then the resumed one's
    assert f"resuming from {last} (global step {killed_at})" in log

    # The same number of steps as without the kill, and the loss curve continues from the
    # checkpoint: the next batch of that epoch's order, none replayed or skipped. metrics.csv
    # keeps the killed run's rows before the checkpoint and has each step once.
    assert step_of(last) == total
    rows = metric_rows(first)
    steps = [int(r["step"]) for r in rows if r.get("train/loss")]
    assert len(steps) == len(set(steps))
    curve, reference = losses(rows), losses(metric_rows(translation_run.run_dir))
    assert sorted(curve) == sorted(reference)
    assert [curve[s] for s in sorted(curve)] == pytest.approx(
        [reference[s] for s in sorted(curve)], rel=1e-5
    )


def test_ctrl_c_stops_cleanly_and_keeps_a_checkpoint(
    translation_run: TinyRun, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    # Many epochs: the run is surely still training when Ctrl-C comes.
    args = command(
        translation_run,
        f"hydra.run.dir={run_dir}",
        "trainer.max_epochs=100",
        "callbacks.early_stopping.patience=100",
    )
    proc = start_and_wait_for(last, args, tmp_path)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=TIMEOUT)

    assert proc.returncode == 130, out[-2000:] + err[-3000:]
    assert "Traceback" not in out + err
    step = step_of(last)
    assert step >= 5
    assert f"interrupted (Ctrl-C) at global step {step} " in out
    assert f"resume with the same command and resume=true, or ckpt_path={last}" in out
    assert not list(last.parent.glob(".*tmp*"))  # no half-written file
    assert load_checkpoint(last).model is not None  # a usable checkpoint


class CtrlCInValidation(pl.Callback):
    """Presses Ctrl-C (sends this process SIGINT) as the first validation batch starts."""

    def on_validation_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if not trainer.sanity_checking and trainer.current_epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_during_validation_keeps_the_last_checkpoint(tmp_cfg) -> None:
    """Mid-validation nothing consistent can be saved: the run stops at once and names the
    checkpoint it keeps (in-process: the handler is installed in pytest's main thread)."""
    handler = signal.getsignal(signal.SIGINT)
    target = f"{CtrlCInValidation.__module__}.{CtrlCInValidation.__qualname__}"
    cfg = tmp_cfg(*RUN_OVERRIDES, f"+callbacks.ctrl_c._target_={target}")
    with pytest.raises(TrainingInterrupted, match="during validation at global step") as info:
        train(cfg)
    kept = info.value.checkpoint
    assert kept == Path(cfg.run_dir) / "checkpoints" / "last.ckpt"
    assert f"kept {kept} (global step {step_of(kept)})" in str(info.value)
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl-C works as before again
