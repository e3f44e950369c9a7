"""Ensembles and checkpoint averaging against the best single model:
``python -m seq2seq.bench.ensemble_study``.

Trains one experiment with several seeds (each run keeping its ``--top-k`` best checkpoints
by dev score), then scores on the test split with the same search for every row (the task's
test metrics: BLEU and chrF for translation, CIDEr-D and BLEU-4 for captioning; see
:mod:`seq2seq.bench.ensemble_scoring`):

- each run's best checkpoint alone (from a run with ``model.ema_decay``, also that checkpoint's
  training weights, ``seq2seq-average --training-weights``: the moving average against the
  raw weights of the same step);
- the ensembles of the 2, 3, ... ``top-k`` best checkpoints of the first run, and their
  average (``seq2seq-average``);
- the ensembles of the best checkpoints of the first 2, 3, ... runs.

It prints a Markdown table and writes ``WORK/results.json``. Every training and every
decoding is a subprocess of the toolkit's own commands, so the figures are what a user gets.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from seq2seq.bench.ensemble_scoring import make_scorer, resolve_beam
from seq2seq.bench.options import add_override_option
from seq2seq.checkpoint import read_checkpoint
from seq2seq.config import compose_train_config
from seq2seq.training.ema import holds_training_weights


def _run(command: list[str], log: Path) -> str:
    """Run a toolkit command; its stdout (stderr goes to ``log``)."""
    with open(log, "a", encoding="utf-8") as err:
        child = subprocess.run(command, stdout=subprocess.PIPE, stderr=err, text=True)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}); see {log}")
    return child.stdout


def train(args: argparse.Namespace, seed: int) -> Path:
    """Train seed ``seed`` (unless its run directory has finished before); its run dir."""
    run = args.work / f"seed{seed}"
    if (run / "done").is_file():
        return run
    command = [
        sys.executable, "-m", "seq2seq.cli.train",
        f"experiment={args.experiment}", f"seed={seed}", f"hydra.run.dir={run}",
        f"callbacks.model_checkpoint.save_top_k={args.top_k}",
        "test=false", "trainer.enable_progress_bar=false", *args.override,
    ]  # fmt: skip
    started = time.monotonic()
    _run(command, args.work / f"train_seed{seed}.log")
    (run / "done").write_text(f"{time.monotonic() - started:.0f}\n")
    return run


def ranked_checkpoints(run: Path) -> list[Path]:
    """The run's kept checkpoints, best dev score first (the score ends the file name)."""

    def score(path: Path) -> float:
        match = re.search(r"(-?\d+(?:\.\d+)?)$", path.stem)
        return float(match.group(1)) if match else float("-inf")

    # Sorted first, so that checkpoints of equal score keep their epoch order.
    found = sorted((run / "checkpoints").glob("epoch*.ckpt"))
    return sorted(found, key=score, reverse=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.bench.ensemble_study", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--experiment", default="synthetic_bahdanau")
    parser.add_argument("--seeds", default=None, help="seeds to train (default 1,2,3)")
    parser.add_argument(
        "--runs",
        default=None,
        help="comma-separated finished run directories (e.g. recipes/bible_en_es/study.sh's) "
        "to score instead of training; --seeds then only labels them (default 1, 2, ...)",
    )
    parser.add_argument("--top-k", type=int, default=4, help="checkpoints kept per run")
    parser.add_argument(
        "--beam",
        type=int,
        default=None,
        help="beam size of every decoding (default: the experiment's decode.test.beam_size)",
    )
    parser.add_argument("--work", type=Path, default=Path("bench_runs/ensembles"))
    add_override_option(parser)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    cfg = compose_train_config([f"experiment={args.experiment}", *args.override])
    args.beam = resolve_beam(cfg, args.beam)
    if args.runs:
        runs = [Path(r) for r in args.runs.split(",")]
        for run in runs:
            if not ranked_checkpoints(run):
                parser.error(f"--runs: {run} holds no checkpoints/epoch*.ckpt")
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else []
        seeds = seeds or list(range(1, len(runs) + 1))
        if len(seeds) != len(runs):
            parser.error(f"--seeds names {len(seeds)} runs, --runs gives {len(runs)}")
    else:
        seeds = [int(s) for s in (args.seeds or "1,2,3").split(",")]
        runs = [train(args, seed) for seed in seeds]
    # Built after the training: a captioning data module reads (or writes) the data set.
    scorer = make_scorer(cfg, args.beam)
    rows: list[dict[str, Any]] = []

    def row(label: str, checkpoints: list[Path]) -> None:
        result = scorer(checkpoints)
        rows.append({"model": label, "checkpoints": [str(c) for c in checkpoints], **result})
        scores = " ".join(f"{name} {result[key]:.2f}" for key, name in scorer.metrics)
        print(f"{label}: {scores}", flush=True)

    for seed, run in zip(seeds, runs, strict=True):
        best = ranked_checkpoints(run)[0]
        row(f"seed {seed}: best checkpoint", [best])
        if holds_training_weights(read_checkpoint(best)):
            # The same checkpoint's raw weights: the moving average against no average at
            # the same step, whatever speed the machine ran at.
            raw = args.work / f"seed{seed}_training_weights.ckpt"
            command = [sys.executable, "-m", "seq2seq.cli.average", "--training-weights"]
            _run([*command, str(best), "-o", str(raw)], args.work / "average.log")
            row(f"seed {seed}: best checkpoint's training weights (no moving average)", [raw])
    first = ranked_checkpoints(runs[0])
    for k in range(2, len(first) + 1):
        row(f"seed {seeds[0]}: ensemble of its {k} best checkpoints", first[:k])
    if len(first) >= 2:
        averaged = args.work / f"seed{seeds[0]}_average{len(first)}.ckpt"
        _run(
            [sys.executable, "-m", "seq2seq.cli.average", *map(str, first), "-o", str(averaged)],
            args.work / "average.log",
        )
        row(f"seed {seeds[0]}: average of its {len(first)} best checkpoints", [averaged])
    for k in range(2, len(runs) + 1):
        row(
            f"ensemble of the best checkpoints of seeds {','.join(map(str, seeds[:k]))}",
            [ranked_checkpoints(r)[0] for r in runs[:k]],
        )
    machine = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpus": os.cpu_count()}
    (args.work / "results.json").write_text(
        json.dumps(
            {"machine": machine, "experiment": args.experiment, "beam": args.beam, "rows": rows},
            indent=2,
        )
    )
    print(f"\n{args.experiment}, test split, beam {args.beam}, {machine}")
    names = [name for _, name in scorer.metrics]
    print(f"| model | {' | '.join(names)} | decoding time |")
    print("| --- |" + " ---: |" * (len(names) + 1))
    for r in rows:
        scores = " | ".join(f"{r[key]:.2f}" for key, _ in scorer.metrics)
        print(f"| {r['model']} | {scores} | {r['seconds']:.0f} s |")


if __name__ == "__main__":
    main()
