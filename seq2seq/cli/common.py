"""Pieces the inference command lines share: checkpoint and decoding options, input reading."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from seq2seq.checkpoint import CheckpointError
from seq2seq.search.decode import DecodeConfig
from seq2seq.translation.translator import Translator


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """Checkpoint and search options."""
    parser.add_argument("checkpoint", type=Path, help="checkpoint written by seq2seq-train")
    parser.add_argument("--beam", type=int, default=5, help="beam size; 1 = greedy (default 5)")
    parser.add_argument(
        "--length-penalty", type=float, default=1.0, help="rank by logprob / length**LP (default 1)"
    )
    parser.add_argument(
        "--max-len-ratio", type=float, default=2.0, help="max output tokens per source token"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    parser.add_argument(
        "--max-src-len",
        type=int,
        default=250,
        help="longer input lines are cut to this many tokens, with a warning (default 250)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--suppress-unk",
        action="store_true",
        help="never generate <unk> (the next best word is taken); off by default, as an <unk> "
        "in a translation marks a word to look up",
    )


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` as the program's error and exit."""
    print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def load_translator(args: argparse.Namespace, nbest: int = 1) -> Translator:
    """Build the translator from parsed arguments, turning bad input into a clean error."""
    if args.beam < 1:
        fail(f"--beam must be at least 1, got {args.beam}")
    if args.batch_size < 1:
        fail(f"--batch-size must be at least 1, got {args.batch_size}")
    if nbest < 1:
        fail(f"--nbest must be at least 1, got {nbest}")
    if args.max_src_len < 1:
        fail(f"--max-src-len must be at least 1, got {args.max_src_len}")
    try:
        config = DecodeConfig(
            beam_size=max(args.beam, nbest),
            nbest=nbest,
            length_penalty=args.length_penalty,
            max_len_ratio=args.max_len_ratio,
            suppress_unk=args.suppress_unk,
        )
        return Translator.from_checkpoint(
            args.checkpoint, decode_config=config, device=args.device, max_src_len=args.max_src_len
        )
    except (CheckpointError, ValueError) as err:
        fail(str(err))


def read_lines(path: Path | None) -> list[str]:
    """Input lines from ``path`` or stdin, without their line endings; invalid UTF-8 is an
    error naming the line."""
    try:
        data = path.read_bytes() if path is not None else sys.stdin.buffer.read()
    except OSError as err:
        fail(f"cannot read {path}: {err.strerror}")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the trailing newline ends the last line; it does not start a new one
    out = []
    for number, raw in enumerate(lines, start=1):
        try:
            out.append(raw.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as err:
            where = f"{path or '<stdin>'}, line {number}"
            fail(f"{where}: not valid UTF-8 ({err.reason} at byte {err.start})")
    return out
