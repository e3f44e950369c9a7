"""``seq2seq-translate CKPT [CKPT...]``: translate stdin (or ``-i FILE``) line by line.

One output line per input line, in order; an empty line translates to an empty line. With
``--nbest N`` each input gives N lines ``LINE ||| HYPOTHESIS ||| LOGPROB`` (Moses n-best
format, LINE counted from 0). Several checkpoints translate with their ensemble.

The input is read and translated ``--chunk-size`` lines at a time (sorted by length inside
a chunk, so that batches hold sentences of similar length), and each chunk's translations
are written, in input order, and flushed as soon as it is done: memory does not grow with
the input, and the command works as a filter in a pipe (a chunk also ends when no line has
come for a moment, so a line written to its stdin is answered without closing it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

from seq2seq.cli.common import add_model_args, count_lines, fail, load_translator, read_chunks
from seq2seq.data.progress import Progress

#: Lines translated together by default: enough for full, length-sorted batches.
DEFAULT_CHUNK = 1000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seq2seq-translate", description=__doc__.split("\n")[0])
    add_model_args(parser)
    parser.add_argument("-i", "--input", type=Path, help="input file (default: stdin)")
    parser.add_argument("-o", "--output", type=Path, help="output file (default: stdout)")
    parser.add_argument("--nbest", type=int, default=1, help="hypotheses per sentence")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK,
        help=f"lines read, sorted and translated together (default {DEFAULT_CHUNK})",
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show progress on stderr even when it is not a terminal (it is shown on one)",
    )
    return parser


def _write_chunk(out: TextIO, results: list, first: int, nbest: int) -> None:
    """Write one chunk's translations; ``first`` is the number of its first line from 0."""
    for i, hyps in enumerate(results, start=first):
        if nbest == 1:
            out.write(hyps[0].text + "\n")
        else:
            for hyp in hyps:
                out.write(f"{i} ||| {hyp.text} ||| {hyp.logprob:.4f}\n")
    out.flush()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.chunk_size < 1:
        fail(f"--chunk-size must be at least 1, got {args.chunk_size}")
    if args.input is not None and not args.input.is_file():
        fail(f"-i {args.input}: no such file")
    translator = load_translator(args, nbest=args.nbest)
    progress = None
    if args.progress or sys.stderr.isatty():
        total = count_lines(args.input) if args.input is not None else None
        progress = Progress("translating", total=total, unit="lines", bar=True)
    try:
        out = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
    except OSError as err:
        fail(f"cannot write {args.output}: {err.strerror}")
    done = 0
    try:
        for chunk in read_chunks(args.input, args.chunk_size):
            results = translator.translate_nbest(
                chunk, args.nbest, args.batch_size, first_line=done + 1
            )
            _write_chunk(out, results, done, args.nbest)
            done += len(chunk)
            if progress is not None:
                progress.update(len(chunk))
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix filters do. Python would
        # otherwise report the failed flush of stdout again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    finally:
        if progress is not None:
            progress.close()
        if out is not sys.stdout:
            out.close()


if __name__ == "__main__":
    main()
