"""``seq2seq-evaluate CKPT [CKPT...] --src FILE --ref FILE``: translate and score with sacrebleu.

Prints BLEU and chrF with their signatures (and, with ``--by-length``, BLEU per source-length
bucket), then the same as one JSON line. Several checkpoints translate with their ensemble.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from seq2seq.cli.common import add_model_args, fail, load_translator, read_lines
from seq2seq.translation.metrics import bleu_by_source_length, corpus_scores, format_buckets


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seq2seq-evaluate", description=__doc__.split("\n")[0])
    add_model_args(parser)
    parser.add_argument("--src", type=Path, required=True, help="source sentences, one per line")
    parser.add_argument("--ref", type=Path, required=True, help="reference translations")
    parser.add_argument("--hyp-out", type=Path, help="also write the hypotheses here")
    parser.add_argument(
        "--by-length",
        action="store_true",
        help="also print BLEU per source-length bucket (0-10, 10-20, ..., 60+ words)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    for option, path in (("--src", args.src), ("--ref", args.ref)):
        if not path.is_file():
            fail(f"{option} {path}: no such file")
    sources, references = read_lines(args.src), read_lines(args.ref)
    if len(sources) != len(references):
        fail(f"{args.src} has {len(sources)} lines but {args.ref} has {len(references)}")
    translator = load_translator(args)
    hypotheses = translator.translate(sources, batch_size=args.batch_size)
    if args.hyp_out:
        args.hyp_out.write_text("".join(h + "\n" for h in hypotheses), encoding="utf-8")
    scores = corpus_scores(hypotheses, references)
    print(scores)
    result = scores.to_dict()
    if args.by_length:
        buckets = bleu_by_source_length(sources, hypotheses, references)
        print(format_buckets(buckets))
        result["by_source_length"] = [
            {"bucket": b.label, "sentences": b.sentences, "bleu": b.bleu} for b in buckets
        ]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
