"""``seq2seq-translate CKPT``: translate stdin (or ``-i FILE``) line by line.

One output line per input line, in order; an empty line translates to an empty line. With
``--nbest N`` each input gives N lines ``LINE ||| HYPOTHESIS ||| LOGPROB`` (Moses n-best
format, LINE counted from 0).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seq2seq.cli.common import add_model_args, load_translator, read_lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seq2seq-translate", description=__doc__.split("\n")[0])
    add_model_args(parser)
    parser.add_argument("-i", "--input", type=Path, help="input file (default: stdin)")
    parser.add_argument("-o", "--output", type=Path, help="output file (default: stdout)")
    parser.add_argument("--nbest", type=int, default=1, help="hypotheses per sentence")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    translator = load_translator(args, nbest=args.nbest)
    lines = read_lines(args.input)
    out = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
    try:
        if args.nbest == 1:
            for text in translator.translate(lines, batch_size=args.batch_size):
                out.write(text + "\n")
        else:
            for i, hyps in enumerate(
                translator.translate_nbest(lines, args.nbest, args.batch_size)
            ):
                for hyp in hyps:
                    out.write(f"{i} ||| {hyp.text} ||| {hyp.logprob:.4f}\n")
    finally:
        if out is not sys.stdout:
            out.close()


if __name__ == "__main__":
    main()
