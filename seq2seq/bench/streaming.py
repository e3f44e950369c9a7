"""Streaming translation against the read-everything one: ``python -m seq2seq.bench.streaming``.

The source file (say the Bible test set) is repeated or cut to each ``--lines N`` and written
once to the work folder. Each translator then runs in a fresh process, with that file on its
standard input and its standard output a pipe that this script copies to a file, greedy by
default (``--beam 1``: the measure is of the translator, not of the search). Per run:

- wall seconds from the start of the process to the end of its output, and lines/s;
- the peak RSS of the process (``ru_maxrss`` of ``os.wait4``), and its RSS sampled every
  ``--sample-every`` seconds (``/proc/PID/status``), kept in the results for the largest N
  to show whether memory grows with the input. The largest sample up to the last output
  line is reported too: ``ru_maxrss`` includes a spike of about 130 MB when the interpreter
  exits (PyTorch's, whatever the program: ``python -c 'import torch'`` peaks at 650 MB, 520
  MB with ``os._exit``), which hides what the translation itself held;
- the seconds until the first output line reaches the pipe.

``--baseline-tree DIR`` adds the translator of an older checkout (at the ``--baseline-lines``
sizes, by default all), run with ``PYTHONPATH=DIR`` from the work folder: ``python -m`` puts
the working directory first on ``sys.path``, which would shadow it. The comparison is with
the parent of the streaming commit ccdf117, ``git archive 9487c0e | tar -x -C DIR``. Its
``seq2seq-translate`` reads the whole input, translates it and only then writes; its command
line (one checkpoint, ``-i``, ``-o``, ``--beam``, ``--batch-size``) is a subset of today's,
so both get the same arguments. It loads checkpoints written by today's ``seq2seq-train``:
the model config keys added since (``ema_decay``, ...) are top-level ones its
``build_model`` ignores, and the tokenizer states did not change. Checked on a synthetic
and a SentencePiece (Bible-data) checkpoint of today's training: both load, and the second
gives the same 200 translations with either translator. (The other way also holds: today's
translator loads a checkpoint of the old tree's ``seq2seq-train``.) So one checkpoint of
today's training serves both tools. Within a repeat the two alternate at every N, and the
one that goes first changes from repeat to repeat, so a drifting machine tilts neither.

Results go to ``WORK/results.json`` (with the machine) and are printed as a Markdown table.
There is no ``--override``: the translators take no Hydra overrides. Threads follow the
environment (``OMP_NUM_THREADS``). It is a benchmark: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

import seq2seq
from seq2seq.bench.corpus_scale import _path
from seq2seq.bench.machine import describe

#: The checkout this process imports seq2seq from: "ours".
OURS = Path(seq2seq.__file__).resolve().parent.parent


def write_input(src: Path, lines: int, work: Path) -> Path:
    """``work/input_<src stem>_<lines>.txt``: the lines of ``src`` repeated or cut to ``lines``
    lines (written once; reused while its size is right)."""
    source = src.read_bytes().splitlines(keepends=True)
    source = [line if line.endswith(b"\n") else line + b"\n" for line in source]
    whole, rest = divmod(lines, len(source))
    size = whole * sum(map(len, source)) + sum(map(len, source[:rest]))
    out = work / f"input_{src.stem}_{lines}.txt"
    if out.is_file() and out.stat().st_size == size:
        return out
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as handle:
        for _ in range(whole):
            handle.writelines(source)
        handle.writelines(source[:rest])
    tmp.rename(out)
    return out


def _rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` now, in MB (Linux), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def run_once(
    command: list[str], env: dict[str, str], source: Path, output: Path, every: float
) -> dict[str, Any]:
    """Run ``command`` with ``source`` on stdin, copy its stdout to ``output``; wall seconds,
    seconds to the first and the last output line, peak RSS (MB) over the process's life and
    sampled up to its last line, sampled RSS ``[[s, MB], ...]`` and the output lines."""
    samples: list[list[float]] = []
    done = threading.Event()
    with open(source, "rb") as stdin, open(output, "wb") as out:
        started = time.perf_counter()
        child = subprocess.Popen(
            command,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=output.parent,
        )

        def sample() -> None:
            while not done.wait(every):
                rss = _rss_mb(child.pid)
                if rss is not None:
                    samples.append([round(time.perf_counter() - started, 2), round(rss, 1)])

        errors: list[bytes] = []
        threading.Thread(target=lambda: errors.append(child.stderr.read()), daemon=True).start()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        first, last, newlines = None, 0.0, 0
        fd = child.stdout.fileno()
        while block := os.read(fd, 1 << 16):
            last = time.perf_counter() - started
            if first is None and b"\n" in block:
                first = last
            newlines += block.count(b"\n")
            out.write(block)
        # wait4's usage is the child's own (it starts none).
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
    code = os.waitstatus_to_exitcode(status)
    child.returncode = code
    child.stdout.close()
    if code != 0:
        tail = b"".join(errors).decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise RuntimeError(f"{' '.join(command)} failed ({code}): {tail[0]}")
    return {
        "wall_s": wall,
        "first_line_s": first,
        "last_line_s": last,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        # Without the spike of PyTorch's interpreter exit (about 130 MB here), which
        # ru_maxrss includes: the memory the translation itself held.
        "working_rss_mb": max((rss for t, rss in samples if t <= last), default=0.0),
        "output_lines": newlines,
        "rss_samples": samples,
    }


def tools(args: argparse.Namespace) -> dict[str, Path]:
    """The checkouts to compare, by name: ours, and the baseline when given."""
    found = {"ours": OURS}
    if args.baseline_tree is not None:
        found["baseline"] = args.baseline_tree
    return found


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every tool at every N, ``--repeats`` times, the tools alternating; one entry per
    (tool, N) with its runs and their medians."""
    checkouts = tools(args)
    inputs = {n: write_input(args.src, n, args.work) for n in args.lines}
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for repeat in range(args.repeats):
        for n in args.lines:
            order = list(checkouts) if repeat % 2 == 0 else list(reversed(checkouts))
            for name in order:
                if name == "baseline" and n not in args.baseline_lines:
                    continue
                env = {**os.environ, "PYTHONPATH": _path(checkouts[name])}
                command = [
                    sys.executable, "-m", "seq2seq.cli.translate", str(args.checkpoint),
                    "--beam", str(args.beam), "--batch-size", str(args.batch_size),
                ]  # fmt: skip
                output = args.work / f"output_{name}_{n}.txt"
                run = run_once(command, env, inputs[n], output, args.sample_every)
                if run["output_lines"] != n:
                    raise RuntimeError(f"{name}: {run['output_lines']} output lines for {n}")
                runs.setdefault((name, n), []).append(run)
                print(
                    f"{name}, {n:,} lines: {run['wall_s']:.1f} s, "
                    f"{run['peak_rss_mb']:,.0f} MB, first line at {run['first_line_s']:.1f} s",
                    flush=True,
                )
    results = []
    for (name, n), its in sorted(runs.items(), key=lambda item: (item[0][1], item[0][0])):
        wall = statistics.median(r["wall_s"] for r in its)
        entry = {
            "tool": name,
            "tree": str(checkouts[name]),
            "lines": n,
            "wall_s": wall,
            "lines_per_s": n / wall,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in its),
            "working_rss_mb": max(r["working_rss_mb"] for r in its),
            "first_line_s": statistics.median(r["first_line_s"] for r in its),
            "runs": [{k: v for k, v in r.items() if k != "rss_samples"} for r in its],
        }
        if n == max(args.lines):
            entry["rss_samples"] = its[-1]["rss_samples"]
        results.append(entry)
    return results


def table(results: list[dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    rows = [
        "| tool | lines | seconds | lines/s | peak RSS | sampled to last line | first line after |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        rows.append(
            f"| {r['tool']} | {r['lines']:,} | {r['wall_s']:.1f} | {r['lines_per_s']:,.0f} | "
            f"{r['peak_rss_mb']:,.0f} MB | {r['working_rss_mb']:,.0f} MB | "
            f"{r['first_line_s']:.1f} s |"
        )
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, checked: each bad input is a one-line error."""
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.bench.streaming", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="a translation model")
    parser.add_argument("--src", type=Path, default=Path("data/bible_en_es/test.en"))
    parser.add_argument("--lines", default="100000", help="input sizes N[,N...] in lines")
    parser.add_argument("--beam", type=int, default=1, help="beam size (default 1: greedy)")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    parser.add_argument("--baseline-tree", type=Path, help="an older checkout to compare with")
    parser.add_argument("--baseline-lines", help="the sizes to run it at (default: --lines)")
    parser.add_argument("--work", type=Path, default=Path("bench_runs/streaming"))
    parser.add_argument("--repeats", type=int, default=1, help="runs of each tool at each N")
    parser.add_argument("--sample-every", type=float, default=0.5, help="RSS sampling seconds")
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    if not args.src.is_file() or args.src.stat().st_size == 0:
        parser.error(f"--src {args.src}: no such file, or empty")
    try:
        args.lines = [int(n) for n in args.lines.split(",")]
        args.baseline_lines = (
            args.lines
            if args.baseline_lines is None
            else [int(n) for n in args.baseline_lines.split(",")]
        )
    except ValueError:
        parser.error("--lines, --baseline-lines: not lists of integers")
    if not set(args.baseline_lines) <= set(args.lines):
        parser.error("--baseline-lines must be among --lines")
    if min(args.lines) < 1 or args.repeats < 1 or args.sample_every <= 0:
        parser.error("--lines, --repeats and --sample-every must be positive")
    if args.baseline_tree is not None:
        args.baseline_tree = args.baseline_tree.resolve()
        if not (args.baseline_tree / "seq2seq" / "cli" / "translate.py").is_file():
            parser.error(f"--baseline-tree {args.baseline_tree}: no seq2seq/cli/translate.py")
    args.checkpoint, args.src = args.checkpoint.resolve(), args.src.resolve()
    args.work = args.work.resolve()
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    machine = describe(torch.device("cpu"))
    print(f"machine: {machine}", flush=True)
    results = measure(args)
    settings = {
        "checkpoint": str(args.checkpoint),
        "src": str(args.src),
        "beam": args.beam,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    (args.work / "results.json").write_text(
        json.dumps({"machine": machine, "settings": settings, "results": results}, indent=2)
    )
    print(table(results))


if __name__ == "__main__":
    main()
