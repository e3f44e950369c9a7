"""How long a COCO-sized Karpathy file takes to read and check, and to prepare up to a batch.

Generates ``dataset_coco.json`` in the Karpathy layout (``train2014`` / ``val2014`` folders,
5,000 val and 5,000 test images at full size, the rest train and restval) with ``--captions``
captions per image, and one tiny JPEG per image (the same 8x8 bytes everywhere: the point is
the per-file cost of existence and header checks, not decoding). Files are written once and
reused while the size matches. Then it times:

- ``read``: :func:`~seq2seq.captioning.annotations.reader.read_annotations` alone;
- ``check``: the data module's file and header checks on the records;
- ``prepare``: :meth:`CaptionDataModule.prepare` (read, check, vocabulary);
- ``first batch``: ``setup`` and the first training batch, with images decoded on the fly
  (no backbone, so nothing is downloaded).

Run as ``python -m seq2seq.bench.karpathy_scale --dir /tmp/coco_scale --images 123287``.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from seq2seq.bench.machine import describe
from seq2seq.captioning.annotations.reader import read_annotations
from seq2seq.captioning.datamodule import CaptionDataModule
from seq2seq.captioning.images import check_headers, check_images

JSON_NAME = "dataset_coco.json"
# A small vocabulary drawn with Zipf-like weights, as captions reuse a few common words.
_VOCABULARY = (
    "a an the man woman dog cat person people group of on in with and sitting standing "
    "next to table street field grass red blue white black large small two three plate "
    "food pizza bus train car bike road water beach sky kite ball playing holding riding"
)
_WORDS = _VOCABULARY.split()


def held_out(images: int) -> int:
    """Images in each of val and test: Karpathy's 5,000 of 123,287, at least one."""
    return max(1, round(images * 5000 / 123287))


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 80, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def generate(folder: Path, images: int, captions: int, seed: int = 0) -> Path:
    """Write the Karpathy JSON and its image files under ``folder`` (reused if the JSON
    already describes ``images`` x ``captions``); returns the JSON's path."""
    path = folder / JSON_NAME
    stamp = folder / "generated.json"
    wanted = {"images": images, "captions": captions, "seed": seed}
    if path.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return path
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(_WORDS))]
    jpeg = _jpeg()
    per_split = held_out(images)
    entries: list[dict[str, Any]] = []
    for i in range(images):
        split = "test" if i < per_split else "val" if i < 2 * per_split else "train"
        if split == "train" and i % 3 == 0:
            split = "restval"
        where = "val2014" if split != "train" else "train2014"
        name = f"COCO_{where}_{i:012d}.jpg"
        sentences = []
        for _ in range(captions):
            tokens = rng.choices(_WORDS, weights, k=rng.randint(8, 14))
            sentences.append({"raw": " ".join(tokens).capitalize() + ".", "tokens": tokens})
        entries.append({"filepath": where, "filename": name, "split": split,
                        "sentences": sentences})  # fmt: skip
        file = folder / where / name
        if not file.is_file():
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(jpeg)
    path.write_text(json.dumps({"images": entries, "dataset": "coco"}))
    stamp.write_text(json.dumps(wanted))
    return path


def _timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def measure(path: Path, batch_size: int = 64) -> list[tuple[str, float, str]]:
    """``(step, seconds, what it covered)`` of each timed step."""
    root = path.parent
    rows: list[tuple[str, float, str]] = []
    seconds, records = _timed(lambda: read_annotations(path, root))
    captions = sum(len(r.captions) for r in records)
    rows.append(("read", seconds, f"{len(records):,} images, {captions:,} captions"))

    def check() -> int:
        kept, _ = check_images(records)
        kept, bad = check_headers(kept)
        return len(kept)

    seconds, kept = _timed(check)
    rows.append(("check", seconds, f"{kept:,} files and headers"))
    module = CaptionDataModule(
        annotations=str(path), image_size=32, resize="stretch", batch_size=batch_size,
        eval_batch_size=batch_size, cache_features=False,
    )  # fmt: skip
    seconds, tokenizer = _timed(module.prepare)
    rows.append(("prepare", seconds, f"vocabulary {tokenizer.vocab_size}"))

    def first_batch() -> tuple[int, ...]:
        module.setup("fit")
        batch = next(iter(module.train_dataloader()))
        return tuple(batch.images.shape)

    seconds, shape = _timed(first_batch)
    rows.append(("first batch", seconds, f"setup + batch of images {shape}"))
    return rows


def table(rows: Sequence[tuple[str, float, str]]) -> str:
    """The timings as a plain-text table headed by the machine."""
    info = describe(torch.device("cpu"))
    machine = (
        f"{info['processor']}, {info['cpus']} CPUs, {info['cpu_capability']}, "
        f"Python {platform.python_version()}, torch {info['torch']}"
    )
    lines = [f"machine: {machine}", f"{'step':<12} {'seconds':>8}  covers"]
    lines += [f"{step:<12} {seconds:>8.2f}  {what}" for step, seconds, what in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="where the files are written")
    parser.add_argument("--images", type=int, default=123287)
    parser.add_argument("--captions", type=int, default=5, help="captions per image")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.images < 3 or args.captions < 1:
        parser.error("--images must be at least 3 (train, val, test) and --captions at least 1")
    seconds, path = _timed(lambda: generate(args.dir, args.images, args.captions))
    print(f"files: {path} ({seconds:.1f} s to generate or find)", file=sys.stderr)
    print(table(measure(path, args.batch_size)))


if __name__ == "__main__":
    main()
