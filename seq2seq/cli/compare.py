"""``seq2seq-compare CKPT [CKPT ...] --src FILE --ref FILE --out DIR``: compare models by source
length and draw their alignments (Bahdanau et al. 2015, Figures 2 and 3).

Writes to DIR: ``bleu_by_length.csv``, ``bleu_by_length.md``, ``bleu_by_length.png``,
``hyp.NAME.txt`` per model and ``alignment.NAME.LINE.png`` per chosen line of each model that
has attention; prints the Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from seq2seq.checkpoint import CheckpointError
from seq2seq.cli.common import fail, read_lines
from seq2seq.data.tokenizer import UNK
from seq2seq.search.decode import DecodeConfig
from seq2seq.translation.metrics import (
    BucketScore,
    CorpusScores,
    bleu_by_source_length,
    corpus_scores,
)
from seq2seq.translation.translator import Translation, Translator

#: Hydra's default run folder name, ``runs/<experiment>/<date>``: not a useful model name.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}")


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        fail(f"{option} must be comma-separated integers, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seq2seq-compare", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", type=Path, nargs="+", metavar="CKPT", help="checkpoints")
    parser.add_argument("--src", type=Path, required=True, help="source sentences, one per line")
    parser.add_argument("--ref", type=Path, required=True, help="reference translations")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--names", nargs="+", help="one name per checkpoint (default: run folder)")
    parser.add_argument("--edges", default="0,10,20,30,40,50,60", help="bucket edges (words)")
    parser.add_argument("--beam", type=int, default=5, help="beam size; 1 = greedy (default 5)")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument("--heatmaps", type=int, default=3, help="lines to draw, spread by length")
    pick.add_argument("--heatmap-lines", help="lines to draw, 1-based, e.g. 3,17")
    return parser


def default_name(checkpoint: Path) -> str:
    """``runs/X/checkpoints/best.ckpt`` gives ``X``; under a Hydra date folder, the experiment
    folder above it; a checkpoint outside a ``checkpoints`` folder, its file stem."""
    if checkpoint.parent.name != "checkpoints":
        return checkpoint.stem
    run = checkpoint.resolve().parent.parent
    return run.parent.name if _TIMESTAMP.fullmatch(run.name) and run.parent.name else run.name


def model_names(checkpoints: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    """Names from ``--names`` (checked) or derived from the paths, made unique."""
    if names is not None:
        if len(names) != len(checkpoints):
            fail(f"--names gives {len(names)} names for {len(checkpoints)} checkpoints")
        if len(set(names)) != len(names):
            fail(f"--names must be distinct, got {' '.join(names)}")
        bad = [n for n in names if not n or "/" in n or n.startswith(".")]
        if bad:
            fail(f"--names {bad[0]!r} cannot be used in a file name")
        return list(names)
    out: list[str] = []
    for checkpoint in checkpoints:
        base = name = default_name(checkpoint)
        count = 1
        while name in out:  # two runs with the same folder name still get separate files
            count += 1
            name = f"{base}-{count}"
        out.append(name)
    return out


def pick_lines(sources: Sequence[str], count: int) -> list[int]:
    """``count`` 0-based non-empty lines spread over source lengths, the longest included
    (where a fixed vector fails, the figure is most telling)."""
    order = sorted(
        (i for i, s in enumerate(sources) if s.strip()), key=lambda i: len(sources[i].split())
    )
    if not order or count <= 0:
        return []
    count = min(count, len(order))
    # Steps of len(order) / count >= 1 back from the longest: floor keeps the picks distinct.
    return sorted(order[len(order) - 1 - k * len(order) // count] for k in range(count))


def alignment(
    translator: Translator, source: str, translation: Translation
) -> tuple[torch.Tensor, list[str], list[str]] | None:
    """``(weights (T, S), source labels, target labels)`` of one translation, or None when the
    model has no attention. The attention rows span the padded batch: crop to the source."""
    if translation.attention is None:
        return None
    src_tok = translator.loaded.src_tokenizer
    # The same ids the translator fed the encoder: truncated, and UNK for an empty encoding.
    ids = src_tok.encode(source)[: translator.max_src_len] or [UNK]
    weights = translation.attention[:, : len(ids)].float().cpu()
    tgt = list(translation.tokens)
    if weights.shape[0] == len(tgt) + 1:
        tgt.append("</s>")  # the row that generated EOS
    return weights, [src_tok.id_to_piece(i) for i in ids], tgt


def markdown(
    results: dict[str, list[BucketScore]], overall: dict[str, CorpusScores], total: int
) -> str:
    """One row per bucket, a BLEU and a chrF column per model, and the corpus scores in an
    "all" row."""
    names = list(results)
    header = " | ".join(f"{n} BLEU | {n} chrF" for n in names)
    rows = [
        f"| source length | sentences | {header} |",
        "| --- | ---: | " + " | ".join("---: | ---:" for _ in names) + " |",
    ]

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}"

    for k, bucket in enumerate(results[names[0]]):
        text = " | ".join(f"{cell(results[n][k].bleu)} | {cell(results[n][k].chrf)}" for n in names)
        rows.append(f"| {bucket.label} | {bucket.sentences} | {text} |")
    text = " | ".join(f"{overall[n].bleu:.2f} | {overall[n].chrf:.2f}" for n in names)
    rows.append(f"| all | {total} | {text} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    for option, path in [("--src", args.src), ("--ref", args.ref)] + [
        ("checkpoint", c) for c in args.checkpoints
    ]:
        if not path.is_file():
            fail(f"{option} {path}: no such file")
    edges = _int_list(args.edges, "--edges")
    if not edges or edges[0] < 0 or edges != sorted(set(edges)):
        fail(f"--edges must be non-negative and strictly increasing, got {args.edges!r}")
    if args.beam < 1 or args.batch_size < 1:
        fail("--beam and --batch-size must be at least 1")
    names = model_names(args.checkpoints, args.names)
    sources, references = read_lines(args.src), read_lines(args.ref)
    if len(sources) != len(references):
        fail(f"{args.src} has {len(sources)} lines but {args.ref} has {len(references)}")
    if args.heatmap_lines is not None:
        lines = sorted({n - 1 for n in _int_list(args.heatmap_lines, "--heatmap-lines")})
        if lines and not 0 <= lines[0] <= lines[-1] < len(sources):
            fail(f"--heatmap-lines must be between 1 and {len(sources)}, got {args.heatmap_lines}")
        empty = [n + 1 for n in lines if not sources[n].strip()]
        if empty:
            fail(f"--heatmap-lines: line {empty[0]} of {args.src} is empty, nothing to align")
    else:
        lines = pick_lines(sources, args.heatmaps)

    from seq2seq.translation import plots  # matplotlib only now, after the cheap checks

    args.out.mkdir(parents=True, exist_ok=True)
    config = DecodeConfig(beam_size=args.beam, return_attention=bool(lines))
    results: dict[str, list[BucketScore]] = {}
    overall: dict[str, CorpusScores] = {}
    heatmaps: list[Path] = []
    for checkpoint, name in zip(args.checkpoints, names, strict=True):
        print(f"decoding {args.src} with {name} ({checkpoint}) ...", file=sys.stderr)
        try:
            translator = Translator.from_checkpoint(
                checkpoint, decode_config=config, device=args.device
            )
        except (CheckpointError, ValueError) as err:
            fail(str(err))
        best = [n[0] for n in translator.translate_nbest(sources, 1, args.batch_size)]
        hypotheses = [t.text for t in best]
        (args.out / f"hyp.{name}.txt").write_text("".join(h + "\n" for h in hypotheses), "utf-8")
        results[name] = bleu_by_source_length(sources, hypotheses, references, edges)
        overall[name] = corpus_scores(hypotheses, references)
        for line in lines:
            drawn = alignment(translator, sources[line], best[line])
            if drawn is None:
                print(f"{name}: no attention (fixed-vector decoder), no heatmaps", file=sys.stderr)
                break
            path = args.out / f"alignment.{name}.{line + 1}.png"
            heatmaps.append(plots.plot_alignment(*drawn, path, title=f"{name}, line {line + 1}"))

    with (args.out / "bleu_by_length.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "bucket", "low", "high", "sentences", "bleu", "chrf"])
        for name, buckets in results.items():
            for b in buckets:
                high, bleu, chrf = ("" if x is None else x for x in (b.high, b.bleu, b.chrf))
                writer.writerow([name, b.label, b.low, high, b.sentences, bleu, chrf])
    table = markdown(results, overall, len(sources))
    signature = next(iter(overall.values())).bleu_signature
    (args.out / "bleu_by_length.md").write_text(f"{table}\n\nBLEU: {signature}\n", "utf-8")
    plots.plot_bleu_by_length(results, args.out / "bleu_by_length.png")

    print(table)
    print(f"\nwritten to {args.out}: bleu_by_length.csv, bleu_by_length.md, bleu_by_length.png,")
    print(f"  {', '.join(f'hyp.{n}.txt' for n in names)}, and {len(heatmaps)} alignment heatmaps")


if __name__ == "__main__":
    main()
