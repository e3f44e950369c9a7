"""``seq2seq-caption CKPT [CKPT.ckpt...] IMAGE...``: caption images with a trained captioner.

The first argument is the checkpoint; the arguments after it that end in ``.ckpt`` (up to
the first that does not) are further checkpoints, and the images are captioned with the
ensemble of all of them (the mean of their next-word probabilities; they must share the
tokenizer and the image preprocessing).

For each image its path, then its caption and log-probability on indented lines (with
``--nbest N > 1`` the captions are numbered, best first). ``--attention-dir DIR`` also draws
each image's best caption word by word with its attention over the image (Xu et al.'s
figure), one ``DIR/<stem>.png`` per image. An image that cannot be read is reported on stderr
as ``error: PATH: REASON`` and skipped; the exit status is then 1. A checkpoint that cannot be
used stops the program with exit status 2. Captions never contain ``<unk>`` (the search takes
the next best word) unless ``--allow-unk`` is given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from seq2seq.captioning.captioner import Caption, Captioner
from seq2seq.captioning.images import ImageError, PixelLimit, load_image
from seq2seq.captioning.plots import plot_caption_attention
from seq2seq.checkpoint import CheckpointError

PROG = "seq2seq-caption"
#: Exit status when some images could not be captioned or drawn.
EXIT_SOME_FAILED = 1
#: Exit status when nothing could be done (bad checkpoint, options or output directory).
EXIT_FATAL = 2


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path, help="captioning checkpoint from seq2seq-train")
    parser.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image files to caption; leading arguments ending in .ckpt are further "
        "checkpoints, captioning with the ensemble",
    )
    parser.add_argument(
        "--beam", type=_positive_int, default=3, help="beam size; 1 = greedy (default 3)"
    )
    parser.add_argument(
        "--nbest", type=_positive_int, default=1, help="captions per image, at most --beam"
    )
    parser.add_argument(
        "--length-penalty", type=float, default=1.0, help="rank by logprob / length**LP (default 1)"
    )
    parser.add_argument(
        "--attention-dir", type=Path, help="write each image's attention figure here (<stem>.png)"
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=16, help="images per batch (default 16)"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument(
        "--allow-unk",
        action="store_true",
        help="let captions contain <unk> (by default the search never generates it)",
    )
    parser.add_argument(
        "--max-image-pixels",
        type=_positive_int,
        metavar="N",
        help="refuse images with more pixels, as possible decompression bombs "
        f"(default: Pillow's limit, {Image.MAX_IMAGE_PIXELS:,})",
    )
    return parser


def _error(message: str) -> None:
    """Print ``error: MESSAGE`` on one line of stderr."""
    # Flush first so that, on a terminal, the error appears after the captions printed so far.
    sys.stdout.flush()
    # One line per error keeps stderr greppable; PyTorch's unpickling errors append pages of
    # advice after the first line that say nothing more about the file.
    lines = message.strip().splitlines() or [""]
    print(f"error: {lines[0]}", file=sys.stderr)


def print_captions(path: str, captions: Sequence[Caption], numbered: bool) -> None:
    """Print ``path`` and its captions, each followed by its log-probability."""
    print(path)
    for rank, caption in enumerate(captions, start=1):
        if numbered:
            print(f"  {rank}. {caption.text}")
            print(f"     logprob: {caption.logprob:.2f}")
        else:
            print(f"  {caption.text}")
            print(f"  logprob: {caption.logprob:.2f}")


class AttentionWriter:
    """Writes one attention figure per image into ``directory``, under unique names.

    Args:
        directory: created (with its parents) when missing.

    Raises:
        OSError: ``directory`` cannot be created or is not a directory.
    """

    def __init__(self, directory: Path) -> None:
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(f"{directory} exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        #: Lower-cased names already given, so case-insensitive file systems do not clash.
        self._used: set[str] = set()
        #: False once the model turned out to have no attention: stop asking for it.
        self.active = True

    def path_for(self, image_path: str) -> Path:
        """``<stem>.png``, or ``<stem>-2.png``, ``<stem>-3.png``, ... for repeated stems."""
        stem = Path(image_path).stem or "image"
        name, k = f"{stem}.png", 1
        while name.lower() in self._used:
            k += 1
            name = f"{stem}-{k}.png"
        self._used.add(name.lower())
        return self.directory / name

    def write(self, image_path: str, picture: Image.Image, caption: Caption) -> bool:
        """Draw ``caption``'s attention over ``picture`` (the image as the model saw it).

        Returns:
            False when the figure could not be written (reported on stderr).
        """
        if caption.attention is None or caption.grid is None:
            self.active = False
            print(
                f"{PROG}: note: this model has no attention (e.g. NIC); "
                f"no attention figures are written to {self.directory}",
                file=sys.stderr,
            )
            return True
        out = self.path_for(image_path)
        try:
            plot_caption_attention(
                picture, caption.words, caption.attention, caption.grid, out, title=image_path
            )
        except OSError as err:
            _error(f"{out}: cannot write attention figure ({err.strerror or err})")
            return False
        return True


def _load(paths: Sequence[str], limit: PixelLimit) -> tuple[list[tuple[str, Image.Image]], bool]:
    """Read ``paths``; unreadable ones are reported and left out. Returns the loaded images
    and whether any failed."""
    loaded, failed = [], False
    for path in paths:
        try:
            loaded.append((path, load_image(path, limit)))
        except ImageError as err:  # its message is "PATH: REASON"
            _error(str(err))
            failed = True
    return loaded, failed


ENSEMBLE_SUFFIX = ".ckpt"


def split_checkpoints(first: Path, rest: Sequence[str]) -> tuple[list[Path], list[str]]:
    """The checkpoints (``first``, then the leading ``rest`` ending in ``.ckpt``) and the
    images (the others)."""
    count = 0
    while count < len(rest) and rest[count].endswith(ENSEMBLE_SUFFIX):
        count += 1
    return [first, *map(Path, rest[:count])], list(rest[count:])


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, 1 or 2, see the module docstring)."""
    args = build_parser().parse_args(argv)
    checkpoints, args.images = split_checkpoints(args.checkpoint, args.images)
    if not args.images:
        _error(f"no image given, only checkpoints ({', '.join(map(str, checkpoints))})")
        return EXIT_FATAL
    if args.nbest > args.beam:
        _error(f"--nbest {args.nbest} needs --beam {args.nbest} or more (got --beam {args.beam})")
        return EXIT_FATAL
    limit = PixelLimit(args.max_image_pixels, "--max-image-pixels")
    try:
        captioner = Captioner.from_checkpoints(
            checkpoints, device=args.device, max_image_pixels=args.max_image_pixels
        )
    except (CheckpointError, ValueError) as err:
        _error(str(err))
        return EXIT_FATAL
    writer = None
    if args.attention_dir is not None:
        try:
            writer = AttentionWriter(args.attention_dir)
        except OSError as err:
            _error(f"--attention-dir {args.attention_dir}: {err.strerror or err}")
            return EXIT_FATAL

    failed = False
    # Images are read a batch at a time so that a long list never sits in memory at once.
    for start in range(0, len(args.images), args.batch_size):
        loaded, load_failed = _load(args.images[start : start + args.batch_size], limit)
        failed |= load_failed
        if not loaded:
            continue
        want_attention = writer is not None and writer.active
        results = captioner.caption(
            [image for _, image in loaded],
            beam_size=args.beam,
            nbest=args.nbest,
            length_penalty=args.length_penalty,
            return_attention=want_attention,
            batch_size=len(loaded),
            suppress_unk=not args.allow_unk,
        )
        for (path, image), captions in zip(loaded, results, strict=True):
            print_captions(path, captions, numbered=args.nbest > 1)
            if writer is not None and writer.active:
                picture = captioner.input_image(image)
                failed |= not writer.write(path, picture, captions[0])
    sys.stdout.flush()
    return EXIT_SOME_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
