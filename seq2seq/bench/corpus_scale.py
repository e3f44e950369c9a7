"""Corpus size against preparation and start-up: ``python -m seq2seq.bench.corpus_scale``.

For a corpus replicated ``k`` times (its training split; dev and test as they are), this
measures, each in a fresh process:

- ``seq2seq-prepare``: wall time and peak RSS (the largest of the process and its children,
  the SentencePiece trainer among them);
- ``seq2seq-train`` for a few steps from the prepared store: the process's age and RSS at
  its first training step (the probe of :mod:`seq2seq.bench.startup_probe`), its peak RSS,
  and target tokens per second after the first steps;
- optionally the same training with an older checkout (``--baseline-tree``), which prepares
  its data in every run, to compare both paths in one session.

Results go to ``WORK/results.json`` and are printed as a Markdown table. It is a benchmark:
run it on a quiet machine, and nothing of it is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from seq2seq.bench.options import add_override_option

SPLITS = ("train", "dev", "test")
PROBE = Path(__file__).with_name("startup_probe.py")


def replicate(corpus: Path, out: Path, copies: int, langs: tuple[str, str]) -> Path:
    """``out`` with the training files of ``corpus`` repeated ``copies`` times (reused when
    present with the right size)."""
    out.mkdir(parents=True, exist_ok=True)
    for lang in langs:
        for split in SPLITS:
            source, target = corpus / f"{split}.{lang}", out / f"{split}.{lang}"
            times = copies if split == "train" else 1
            if target.is_file() and target.stat().st_size == times * source.stat().st_size:
                continue
            tmp = target.with_name(target.name + ".tmp")
            with open(tmp, "wb") as handle:
                for _ in range(times):
                    with open(source, "rb") as part:
                        shutil.copyfileobj(part, handle)
            tmp.rename(target)
    return out


def timed(
    command: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> dict[str, float]:
    """Run ``command``; its wall seconds and the peak RSS (MB) of it and its descendants."""
    started = time.perf_counter()
    with open(log or os.devnull, "wb") as output:
        # From a neutral folder: `python -m` puts the working directory first on sys.path,
        # which would shadow the checkout that PYTHONPATH names.
        child = subprocess.Popen(
            command,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=log.parent if log else None,
        )
        # wait4's usage covers the child and the children it waited for (Linux).
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}); see {log}")
    return {"wall_s": time.perf_counter() - started, "peak_rss_mb": usage.ru_maxrss / 1024}


def train_command(
    python: str, data: Path, run: Path, probe: Path, args: argparse.Namespace
) -> list[str]:
    experiment, steps = args.experiment, args.steps
    return [
        python, "-m", "seq2seq.cli.train",
        f"experiment={experiment}",
        f"data.dir={data}",
        f"hydra.run.dir={run}",
        f"trainer.max_steps={steps}",
        "trainer.num_sanity_val_steps=0",
        "trainer.limit_val_batches=0",
        "trainer.enable_progress_bar=false",
        "test=false",
        "budget=null",
        "+callbacks.startup._target_=startup_probe.StartupProbe",
        f"+callbacks.startup.path={probe}",
        *args.override,
    ]  # fmt: skip


def _path(*folders: Path) -> str:
    """PYTHONPATH with ``folders`` first."""
    return os.pathsep.join([*map(str, folders), *filter(None, [os.environ.get("PYTHONPATH")])])


def measure(args: argparse.Namespace, copies: int) -> dict[str, Any]:
    work: Path = args.work
    data = replicate(args.corpus, work / f"x{copies}", copies, tuple(args.langs.split(",")))
    with open(data / f"train.{args.langs.split(',')[0]}", "rb") as handle:
        pairs = sum(1 for _ in handle)
    result: dict[str, Any] = {"copies": copies, "train_pairs": pairs}
    shutil.rmtree(data / "prepared", ignore_errors=True)
    # The probe is imported as a top-level module, so that an older checkout can use it.
    env = {**os.environ, "PYTHONPATH": _path(PROBE.parent)}
    prepare = [
        sys.executable,
        "-m",
        "seq2seq.cli.prepare",
        f"experiment={args.experiment}",
        f"data.dir={data}",
        *args.override,
    ]
    result["prepare"] = timed(prepare, env, work / f"prepare_x{copies}.log")
    print(f"x{copies}: prepared in {result['prepare']['wall_s']:.1f} s", flush=True)
    probe = work / f"probe_x{copies}.json"
    command = train_command(sys.executable, data, work / f"run_x{copies}", probe, args)
    result["train"] = timed(command, env, work / f"train_x{copies}.log")
    result["train"].update(json.loads(probe.read_text()))
    print(f"x{copies}: first step at {result['train']['first_step_s']:.1f} s", flush=True)
    if args.baseline_tree and copies in args.baseline_copies:
        tree = args.baseline_tree.resolve()
        env_old = {**os.environ, "PYTHONPATH": _path(PROBE.parent, tree)}
        probe_old = work / f"probe_old_x{copies}.json"
        run_old = work / f"run_old_x{copies}"
        command = train_command(sys.executable, data, run_old, probe_old, args)
        result["baseline"] = timed(command, env_old, work / f"train_old_x{copies}.log")
        result["baseline"].update(json.loads(probe_old.read_text()))
        print(
            f"x{copies}: old path's first step at {result['baseline']['first_step_s']:.1f} s",
            flush=True,
        )
    return result


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| training pairs | prepare | prepare peak RSS | first step | RSS at first step | "
        "train peak RSS | tokens/s | old path: first step, peak RSS |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        p, t = r["prepare"], r["train"]
        old = r.get("baseline")
        rows.append(
            f"| {r['train_pairs']:,} | {p['wall_s']:.0f} s | {p['peak_rss_mb'] / 1024:.2f} GB | "
            f"{t['first_step_s']:.1f} s | {t['first_step_rss_mb']:,.0f} MB | "
            f"{t['peak_rss_mb']:,.0f} MB | {t.get('tokens_per_s', 0):,.0f} | "
            + (
                f"{old['first_step_s']:.1f} s, {old['peak_rss_mb'] / 1024:.2f} GB |"
                if old
                else "– |"
            )
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.bench.corpus_scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=Path("data/bible_en_es"),
        help="corpus folder (train/dev/test files)",
    )
    parser.add_argument("--langs", default="en,es", help="source,target file suffixes")
    parser.add_argument("--experiment", default="bible_bahdanau")
    parser.add_argument("--work", type=Path, default=Path("bench_runs/corpus_scale"))
    parser.add_argument("--copies", default="1,8,32,128", help="replication factors")
    parser.add_argument("--steps", type=int, default=20, help="training steps per run")
    parser.add_argument("--baseline-tree", type=Path, help="an older checkout to compare with")
    parser.add_argument("--baseline-copies", default="1,8,32", help="sizes to run it at")
    add_override_option(parser)
    args = parser.parse_args(argv)
    args.work, args.corpus = args.work.resolve(), args.corpus.resolve()
    args.baseline_copies = [int(c) for c in args.baseline_copies.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    machine = {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
    }
    print(f"machine: {machine}", flush=True)
    results = [measure(args, int(c)) for c in args.copies.split(",")]
    (args.work / "results.json").write_text(
        json.dumps({"machine": machine, "results": results}, indent=2)
    )
    print(table(results))


if __name__ == "__main__":
    main()
