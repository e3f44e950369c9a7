"""Sequence-level training against cross-entropy continued for as long:
``python -m seq2seq.bench.seqlevel_study``.

From one cross-entropy checkpoint of ``--experiment`` (trained here into ``WORK/base``, or
given with ``--base-checkpoint``) two runs continue for the same extra training time
(``--extra``):

- ``WORK/ce``: cross-entropy, as before;
- ``WORK/seqlevel``: the sequence-level stage (docs/seqlevel.md) from the first epoch the
  resumed run trains, with ``--samples``, ``--baseline``, ``--lr`` and ``--reward``.

Both resume with ``ckpt_path`` and are stopped by Lightning's ``trainer.max_time``, which
counts training and validation only. Its clock is restored from the checkpoint, so it is set
to the base's own training time plus ``--extra``: the same limit, the same extra time. The
toolkit's ``budget`` is off in both (it counts from the process start and would cut an
experiment's continuation at its own budget), and so is early stopping: its state, patience
included, is restored from the checkpoint, so a base that stopped early would stop both
continuations at their first validation, whatever patience the command line gives.

The test split is scored with the toolkit's own test stage (the experiment's test search;
CIDEr-D and BLEU-4 for captions, BLEU and chrF for translations) for the base checkpoint
and for each continuation's best checkpoint by the monitored dev metric among those it saved
itself. A Markdown table is printed and ``WORK/results.json`` written. Finished runs (a
``done`` file) and scores (``test.json``) are reused by a rerun.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.errors import HydraException
from hydra.utils import get_class, instantiate
from omegaconf import open_dict

from seq2seq.bench.ensemble_study import _run, ranked_checkpoints
from seq2seq.bench.options import add_override_option
from seq2seq.checkpoint import CheckpointError, read_checkpoint
from seq2seq.config import compose_train_config
from seq2seq.errors import ConfigError
from seq2seq.training.budget import format_duration, parse_duration
from seq2seq.training.resume import LAST

LABELS = {
    "base": "base (cross-entropy)",
    "ce": "cross-entropy continued",
    "seqlevel": "sequence-level",
}
#: The test scores of each task that the table shows: (heading, key of ``test_results``).
METRICS = {
    "captioning": (("CIDEr-D", "test_cider"), ("BLEU-4", "test_bleu4")),
    "translation": (("BLEU", "test_bleu"), ("chrF", "test_chrf")),
}


def train(args: argparse.Namespace, name: str, overrides: list[str]) -> Path:
    """Train into ``WORK/name`` unless a finished run with the same command is there."""
    run = args.work / name
    command = [
        sys.executable, "-m", "seq2seq.cli.train", f"experiment={args.experiment}",
        *args.override, *overrides, f"hydra.run.dir={run}", "trainer.enable_progress_bar=false",
    ]  # fmt: skip
    marker = run / "done"
    if marker.is_file():
        if json.loads(marker.read_text())["command"] != command[1:]:
            raise RuntimeError(f"{run} was trained with other options; give another --work")
        return run
    shutil.rmtree(run, ignore_errors=True)  # an unfinished attempt starts again from nothing
    started = time.monotonic()
    _run(command, args.work / f"{name}.log")
    seconds = round(time.monotonic() - started)
    marker.write_text(json.dumps({"command": command[1:], "seconds": seconds}) + "\n")
    return run


def resume_point(path: Path) -> dict[str, Any]:
    """Where a run resumed from ``path`` starts: the first epoch it trains, its global step,
    and the training seconds the checkpoint's Lightning timer counted (0 for a run without
    ``trainer.max_time``)."""
    ckpt = read_checkpoint(path)
    if "loops" not in ckpt:
        raise CheckpointError(f"{path}: not a training checkpoint of seq2seq-train")
    timer = ckpt.get("callbacks", {}).get("Timer", {}).get("time_elapsed", {})
    return {
        # Lightning resumes at the epoch after the last one processed (the one under way for a
        # checkpoint written mid-epoch): the first epoch the continuation trains.
        "epoch": int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"]),
        "step": int(ckpt["global_step"]),
        "trained_s": float(timer.get("train", 0.0)),
    }


def dev_score(checkpoint: Path, monitor: str) -> float | None:
    """The monitored dev score of the last validation before ``checkpoint`` was written, from
    its run's ``csv/metrics.csv`` (None without one). Not the checkpoint's own record:
    ``ModelCheckpoint``'s ``current_score`` is that of the last checkpoint it kept."""
    metrics = checkpoint.parent.parent / "csv" / "metrics.csv"
    if not metrics.is_file():
        return None
    step = resume_point(checkpoint)["step"]
    with open(metrics, encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get(monitor) and int(r["step"]) <= step]
    return float(rows[-1][monitor]) if rows else None


def stage_log(run: Path) -> dict[str, float]:
    """Mean logged ``train/reward`` of the stage's first and last epochs and ``train/baseline``
    of its last, from the run's ``csv/metrics.csv`` ({} when the stage logged nothing)."""
    epochs: dict[int, list[tuple[float, float]]] = {}
    with open(run / "csv" / "metrics.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("train/reward") and row.get("epoch"):
                pair = (float(row["train/reward"]), float(row["train/baseline"]))
                epochs.setdefault(int(row["epoch"]), []).append(pair)
    if not epochs:
        return {}
    first, last = epochs[min(epochs)], epochs[max(epochs)]
    return {
        "reward_first_epoch": mean(r for r, _ in first),
        "reward_last_epoch": mean(r for r, _ in last),
        "baseline_last_epoch": mean(b for _, b in last),
    }


def test_scores(args: argparse.Namespace, checkpoint: Path, cache: Path) -> dict[str, Any]:
    """The toolkit's test stage on ``checkpoint``, in this process, as ``seq2seq-train
    test=true`` runs it after training (same data, test search and metrics); kept in
    ``cache`` for a rerun."""
    if cache.is_file() and json.loads(cache.read_text())["checkpoint"] == str(checkpoint):
        return json.loads(cache.read_text())
    cfg = compose_train_config([f"experiment={args.experiment}", *args.override, "test=true"])
    with open_dict(cfg):
        cfg.run_dir = str(args.work / "test")  # nothing is written: no logger, no checkpoints
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    module = get_class(str(cfg.task.module)).from_config(cfg, datamodule)
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False, callbacks=[])
    started = time.monotonic()
    trainer.test(
        module, datamodule=datamodule, ckpt_path=str(checkpoint), weights_only=True, verbose=False
    )
    numbers = {k: v for k, v in module.test_results().items() if isinstance(v, int | float)}
    result = {"checkpoint": str(checkpoint), **numbers, "test_s": time.monotonic() - started}
    cache.write_text(json.dumps(result, indent=2) + "\n")
    return result


def study(args: argparse.Namespace, extra: float) -> list[dict[str, Any]]:
    """Train what is not trained yet, score the three rows; the rows."""
    if args.base_checkpoint is not None:
        start, base_cache = args.base_checkpoint.resolve(), args.work / "base_test.json"
    else:
        base_dir = train(args, "base", [*args.base_override, "test=false"])
        start, base_cache = (base_dir / "checkpoints" / LAST).resolve(), base_dir / "test.json"
    base = resume_point(start)
    # Lightning's format: whole seconds, rounded up; one limit for both continuations.
    total = math.ceil(base["trained_s"] + extra)
    days, rest = divmod(total, 86400)
    max_time = f"{days:02d}:{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"
    common = [
        f"ckpt_path={start}", f"trainer.max_time={max_time}", "trainer.max_epochs=-1",
        "budget=null", "callbacks.early_stopping=null", "test=false",
    ]  # fmt: skip
    stage = [
        f"seqlevel.start_epoch={base['epoch']}", f"seqlevel.samples={args.samples}",
        f"seqlevel.baseline={args.baseline}",
        *([f"seqlevel.lr={args.lr}"] if args.lr is not None else []),
        *([f"seqlevel.reward={args.reward}"] if args.reward is not None else []),
    ]  # fmt: skip
    runs = {
        "ce": train(args, "ce", [*common, "seqlevel.start_epoch=null"]),
        "seqlevel": train(args, "seqlevel", [*common, *stage]),
    }
    scores = test_scores(args, start, base_cache)
    rows = [{"run": "base", "checkpoint": str(start), "dev": dev_score(start, args.monitor)}]
    rows[0].update(scores)
    for name, run in runs.items():
        end = resume_point(run / "checkpoints" / LAST)
        if end["step"] <= base["step"]:
            raise RuntimeError(f"{run} trained no step after resuming; see {run}.log")
        logged = stage_log(run)
        if (name == "seqlevel") != bool(logged):
            state = "did not train" if name == "seqlevel" else "trained"
            raise RuntimeError(f"{run} {state} the sequence-level stage (train/reward)")
        # Its own best by dev score (a continuation that never validated: its last weights).
        best = (ranked_checkpoints(run)[:1] or [run / "checkpoints" / LAST])[0].resolve()
        rows.append({
            "run": name, "checkpoint": str(best), "dev": dev_score(best, args.monitor),
            **test_scores(args, best, run / "test.json"),
            "extra_s": end["trained_s"] - base["trained_s"],
            "epochs": end["epoch"] - base["epoch"], "steps": end["step"] - base["step"],
            **logged,
        })  # fmt: skip
    return rows


def table(rows: list[dict[str, Any]], task: str, monitor: str) -> str:
    """The rows as Markdown."""
    heads = [h for h, _ in METRICS[task]]
    lines = [
        f"| run | checkpoint | dev {monitor} | {' | '.join(heads)} | extra time | epochs | steps "
        "| reward (first → last epoch) | baseline (last epoch) |",
        "| --- | --- | ---: |" + " ---: |" * len(heads) + " ---: | ---: | ---: | ---: | ---: |",
    ]

    def number(value: float | None, spec: str = ".2f") -> str:
        return "—" if value is None else format(value, spec)

    for r in rows:
        scores = " | ".join(number(r.get(key)) for _, key in METRICS[task])
        reward = "—"
        if "reward_first_epoch" in r:
            reward = f"{r['reward_first_epoch']:.3f} → {r['reward_last_epoch']:.3f}"
        extra = format_duration(r["extra_s"]) if "extra_s" in r else "—"
        lines.append(
            f"| {LABELS[r['run']]} | {Path(r['checkpoint']).name} | {number(r['dev'])} | {scores} "
            f"| {extra} | {r.get('epochs', '—')} | {r.get('steps', '—')} | {reward} "
            f"| {number(r.get('baseline_last_epoch'), '.3f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.bench.seqlevel_study", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--experiment", default="shapes_sat")
    parser.add_argument("--work", type=Path, help="default: bench_runs/seqlevel/EXPERIMENT")
    parser.add_argument("--base-checkpoint", type=Path, help="continue this checkpoint")
    parser.add_argument(
        "--base-override", action="append", default=[], metavar="KEY=VALUE",
        help="a Hydra override for the base run only (repeatable), e.g. budget=00:00:10:00",
    )  # fmt: skip
    parser.add_argument("--extra", default="00:00:05:00", help="DD:HH:MM:SS of training per arm")
    parser.add_argument("--samples", type=int, default=5, help="seqlevel.samples")
    parser.add_argument("--baseline", choices=("greedy", "mean"), default="greedy")
    parser.add_argument("--lr", type=float, help="seqlevel.lr (default: the optimiser's)")
    parser.add_argument("--reward", help="seqlevel.reward (default: the task's)")
    add_override_option(parser)
    args = parser.parse_args(argv)
    try:
        extra = parse_duration(args.extra, "--extra")
    except ConfigError as err:
        parser.error(str(err))
    if args.base_checkpoint is not None and not args.base_checkpoint.is_file():
        parser.error(f"--base-checkpoint {args.base_checkpoint}: no such file")
    try:
        cfg = compose_train_config([f"experiment={args.experiment}", *args.override])
    except HydraException as err:
        parser.error(f"--experiment/--override: {str(err).splitlines()[0]}")
    task, args.monitor = str(cfg.task.name), str(cfg.monitor)
    args.work = args.work or Path("bench_runs/seqlevel") / args.experiment
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        rows = study(args, extra)
    except (CheckpointError, RuntimeError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    machine = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpus": os.cpu_count()}
    options = {k: getattr(args, k) for k in ("samples", "baseline", "lr", "reward")}
    summary = {
        "machine": machine, "experiment": args.experiment, "extra_s": extra,
        "base_override": args.base_override, "override": args.override,
        "seqlevel": options, "rows": rows,
    }  # fmt: skip
    (args.work / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{args.experiment}, test split, extra {format_duration(extra)} each, {machine}")
    print(table(rows, task, str(cfg.monitor_tag)))


if __name__ == "__main__":
    main()
