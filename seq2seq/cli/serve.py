"""``seq2seq-serve CKPT...``: an HTTP JSON API and a page for a translation and/or a captioning
checkpoint.

Each checkpoint's task is read from the checkpoint; one server holds at most one of each.
It listens on 127.0.0.1 unless ``--host`` says otherwise. See ``docs/serve.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields
from pathlib import Path

import uvicorn

from seq2seq.captioning.images import ImageError
from seq2seq.checkpoint import CheckpointError
from seq2seq.serve.app import create_app
from seq2seq.serve.limits import Limits
from seq2seq.serve.models import CaptioningModel, TranslationModel, checkpoint_task
from seq2seq.serve.server import server_config

PROG = "seq2seq-serve"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, metavar="CKPT")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (8000)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (cpu)")
    parser.add_argument(
        "--beam", type=int, default=5, help="translation beam size, at least --max-nbest (5)"
    )
    parser.add_argument(
        "--caption-beam", type=int, default=3, help="captioning beam size, at least --max-nbest (3)"
    )
    parser.add_argument("--max-batch", type=int, default=32, help="items per model call (32)")
    parser.add_argument(
        "--max-wait-ms", type=float, default=5.0,
        help="how long a model call waits for more items after the first (5)",
    )  # fmt: skip
    parser.add_argument(
        "--max-connections", type=int, default=128,
        help="open connections; beyond them the server answers 503 (128)",
    )  # fmt: skip
    parser.add_argument(
        "--header-timeout-s", type=float, default=10.0,
        help="seconds for a request's headers to arrive; a slower connection is closed (10)",
    )  # fmt: skip
    for field in fields(Limits):
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=type(field.default),
            default=field.default,
            help=f"request limit ({field.default})",
        )
    return parser


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def load_models(
    args: argparse.Namespace, limits: Limits
) -> tuple[TranslationModel | None, CaptioningModel | None]:
    """The checkpoints of ``args``, each loaded for its own task.

    Raises:
        ValueError: two checkpoints of one task, or a bad setting.
        CheckpointError: a checkpoint that cannot be used (the message names it).
    """
    paths: dict[str, Path] = {}
    for path in args.checkpoints:
        task = checkpoint_task(path)
        if task in paths:
            raise ValueError(
                f"{paths[task]} and {path} are both {task} checkpoints; a server holds at most "
                "one translation and one captioning checkpoint"
            )
        paths[task] = path
    translation = captioning = None
    if "translation" in paths:
        translation = TranslationModel.load(
            paths["translation"], beam=max(args.beam, limits.max_nbest), device=args.device
        )
    if "captioning" in paths:
        captioning = CaptioningModel.load(
            paths["captioning"], beam=max(args.caption_beam, limits.max_nbest), device=args.device,
            max_image_pixels=limits.max_image_pixels,
        )  # fmt: skip
    return translation, captioning


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("beam", "caption_beam", "max_batch", "max_connections"):
        if getattr(args, name) < 1:
            return _fail(
                f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}"
            )
    if args.max_wait_ms < 0:
        return _fail(f"--max-wait-ms must be 0 or more, got {args.max_wait_ms}")
    if args.header_timeout_s <= 0:
        return _fail(f"--header-timeout-s must be positive, got {args.header_timeout_s}")
    try:
        limits = Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)})
        translation, captioning = load_models(args, limits)
    except (CheckpointError, ImageError, ValueError) as err:
        return _fail(str(err).splitlines()[0])

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = create_app(
        translation=translation, captioning=captioning, limits=limits,
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
    )  # fmt: skip
    tasks = " and ".join(
        t for t, m in (("translation", translation), ("captioning", captioning)) if m
    )
    print(f"{PROG}: serving {tasks} on http://{args.host}:{args.port}/", file=sys.stderr)
    config = server_config(
        app, host=args.host, port=args.port, max_connections=args.max_connections,
        header_timeout_s=args.header_timeout_s,
    )  # fmt: skip
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
