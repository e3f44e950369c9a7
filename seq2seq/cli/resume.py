"""Which checkpoint a run resumes from: ``ckpt_path=PATH``, or ``resume=true`` for the newest
``last.ckpt`` of the experiment; checked before any data is read or model built.

``resume=true`` continues in the old run's own directory: :func:`redirect_resume` adds
``hydra.run.dir=<that directory>`` to the command line before Hydra creates a new one, so
checkpoints, metrics and the log go on where they stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from seq2seq.checkpoint import CHECKPOINT_KEY, CheckpointError, read_checkpoint
from seq2seq.training.resume import LAST

log = logging.getLogger(__name__)

_TRUE = ("true", "yes", "on", "1")


class ResumeError(ValueError):
    """There is nothing to resume from; the message says where it looked."""


def run_checkpoint(run_dir: Path) -> Path:
    """The resume checkpoint of the run in ``run_dir``."""
    return run_dir / "checkpoints" / LAST


def newest_run_checkpoint(runs_root: Path, exclude: Path | None = None) -> Path | None:
    """The newest ``runs_root/*/checkpoints/last.ckpt`` (by modification time), if any."""
    found = [
        path
        for path in runs_root.glob(f"*/checkpoints/{LAST}")
        if path.is_file() and (exclude is None or path.parents[1] != exclude)
    ]
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def find_resume_checkpoint(run_dir: Path, experiment_name: str = "") -> Path:
    """``resume=true``: this run directory's ``last.ckpt`` (when :func:`redirect_resume` moved
    the run into the old one), else the newest one beside it."""
    own = run_checkpoint(run_dir)
    if own.is_file():
        return own
    newest = newest_run_checkpoint(run_dir.parent, exclude=run_dir)
    if newest is None:
        pattern = run_dir.parent / "*" / "checkpoints" / LAST
        name = f" (experiment_name={experiment_name})" if experiment_name else ""
        raise ResumeError(
            f"resume=true: no checkpoint to resume from: looked for {pattern}{name}. Resume "
            "with the experiment options of the run to continue, give its checkpoint with "
            "ckpt_path=PATH/TO/last.ckpt, or train without resume=true"
        )
    log.warning("resume=true: resuming from %s; this run writes to %s", newest, run_dir.resolve())
    return newest


def check_resume_checkpoint(path: Path, task: str, key: str = "ckpt_path") -> int:
    """Check that ``path`` is a training checkpoint of ``task``; returns its global step.

    Raises:
        CheckpointError: missing, truncated, refused (not plain data), not written by
            seq2seq-train, or of the other task; the message names the config key.
    """
    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as err:
        raise CheckpointError(f"{key}={path}: {err}") from err
    payload = ckpt.get(CHECKPOINT_KEY) if isinstance(ckpt, dict) else None
    if not isinstance(payload, dict) or "loops" not in ckpt:
        raise CheckpointError(
            f"{key}={path}: not a training checkpoint written by seq2seq-train (expected "
            "RUN/checkpoints/last.ckpt or another .ckpt file of a run)"
        )
    if payload.get("task") != task:
        raise CheckpointError(
            f"{key}={path}: a {payload.get('task')!r} checkpoint; this run is task={task} "
            "(pick the experiment that wrote it)"
        )
    return int(ckpt.get("global_step", 0))


def resolve_ckpt_path(cfg: DictConfig) -> Path | None:
    """The checkpoint ``fit`` starts from: ``ckpt_path`` if set, else with ``resume=true`` the
    run's ``last.ckpt``; None for a fresh run."""
    if cfg.get("ckpt_path"):
        path = Path(str(cfg.ckpt_path)).expanduser()
        if not path.is_file():
            raise CheckpointError(f"ckpt_path={path}: no such file (the checkpoint to resume)")
        return path
    if cfg.get("resume"):
        return find_resume_checkpoint(Path(str(cfg.run_dir)), str(cfg.get("experiment_name", "")))
    return None


def redirect_resume(argv: Sequence[str], compose: Any) -> list[str]:
    """With ``resume=true``, add ``hydra.run.dir=<newest run with a last.ckpt>`` to the
    command line, so that the resumed run writes into that directory.

    ``compose(overrides)`` composes the train config with Hydra's config included (see
    ``hydra.compose``). Multiruns, an explicit ``hydra.run.dir`` or ``ckpt_path``, and
    command lines this cannot read are left alone: the run then starts in a new directory,
    and :func:`find_resume_checkpoint` says where it resumed from (or that nothing was found).
    """
    args = list(argv)
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    values = {a.split("=", 1)[0].lstrip("+~"): a.split("=", 1)[1] for a in overrides}
    if str(values.get("resume", "")).lower() not in _TRUE:
        return args
    if (
        any(a.startswith("-") for a in args)
        or "hydra.run.dir" in values
        or values.get("ckpt_path", "null") not in ("null", "None", "")
    ):
        return args
    try:
        cfg = compose(overrides)
        run_dir = Path(str(cfg.hydra.run.dir))
    except Exception:  # Hydra reports a bad command line itself, with its own message
        return args
    newest = newest_run_checkpoint(run_dir.parent)
    if newest is None or "'" in str(newest):
        return args
    # Quoted: Hydra's override grammar gives meaning to spaces, commas, brackets...
    return [*args, f"hydra.run.dir='{newest.parents[1]}'"]
