"""Pieces the inference command lines share: checkpoint and decoding options, input reading."""

from __future__ import annotations

import argparse
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NoReturn

from seq2seq.checkpoint import CheckpointError
from seq2seq.search.decode import DecodeConfig
from seq2seq.translation.translator import Translator


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """Checkpoint and search options."""
    parser.add_argument(
        "checkpoints",
        type=Path,
        nargs="+",
        metavar="CKPT",
        help="checkpoint written by seq2seq-train; several: decode with their ensemble (the "
        "mean of their next-word probabilities; they must share the tokenizers)",
    )
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
        options = {"decode_config": config, "device": args.device, "max_src_len": args.max_src_len}
        if len(args.checkpoints) == 1:
            return Translator.from_checkpoint(args.checkpoints[0], **options)
        return Translator.from_checkpoints(args.checkpoints, **options)
    except (CheckpointError, ValueError) as err:
        fail(str(err))


def _decode(raw: bytes, number: int, path: Path | None) -> str:
    """One input line without its line ending; invalid UTF-8 is an error naming the line."""
    try:
        return raw.decode("utf-8").rstrip("\n").rstrip("\r")
    except UnicodeDecodeError as err:
        where = f"{path or '<stdin>'}, line {number}"
        fail(f"{where}: not valid UTF-8 ({err.reason} at byte {err.start})")


#: Seconds to wait for the next line before a partial chunk is translated: short enough for a
#: person typing into the pipe, long enough that a file never makes a chunk end early.
IDLE_SECONDS = 0.05


def read_chunks(path: Path | None, chunk_size: int) -> Iterator[list[str]]:
    """Input lines from ``path`` or stdin, ``chunk_size`` at a time, as they arrive.

    A thread reads the lines into a queue of at most two chunks, so memory does not grow
    with the input. A chunk ends when it is full, at the end of the input, or when no line
    has come for :data:`IDLE_SECONDS`: a program that writes a line and waits for its
    translation gets it (the translator works as a filter in a pipe).
    """
    try:
        stream: BinaryIO = path.open("rb") if path is not None else sys.stdin.buffer
    except OSError as err:
        fail(f"cannot read {path}: {err.strerror}")
    lines: queue.Queue[bytes | OSError | None] = queue.Queue(maxsize=2 * chunk_size)

    def read() -> None:
        try:
            for raw in stream:
                lines.put(raw)
        except OSError as err:
            lines.put(err)
        finally:
            if path is not None:
                stream.close()
            lines.put(None)

    # A daemon: a reader blocked on a silent stdin must not keep the program alive.
    threading.Thread(target=read, name="input-lines", daemon=True).start()
    number, ended = 0, False
    while not ended:
        item = lines.get()  # the first line of a chunk: wait as long as it takes
        chunk: list[str] = []
        while True:
            if item is None:
                ended = True
                break
            if isinstance(item, OSError):
                fail(f"cannot read {path or '<stdin>'}: {item.strerror or item}")
            number += 1
            chunk.append(_decode(item, number, path))
            if len(chunk) >= chunk_size:
                break
            try:
                item = lines.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                break
        if chunk:
            yield chunk


def count_lines(path: Path) -> int | None:
    """Lines of the file at ``path`` (for a progress display), or None if it cannot be read."""
    count, last = 0, b"\n"
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                count += block.count(b"\n")
                last = block[-1:]
    except OSError:
        return None
    return count + (last != b"\n")  # a last line without its newline still counts


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
