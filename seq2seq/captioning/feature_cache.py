"""Backbone features computed once and kept on disk, so that later epochs skip the CNN.

With a frozen backbone (and no image augmentation) every epoch would push the same images
through the same CNN; caching its last feature map turns a captioning epoch into a decoder-only
epoch. Each split is one float16 ``.npy`` file ``(num, C, H, W)``, opened as a memory map so
that a COCO-sized cache need not fit in memory. The file name carries a hash of everything
the features depend on (backbone, weights, preprocessing, the image list), so a changed
setting never reads stale features; a file is written under a temporary name and renamed
only when complete, so an interrupted run leaves nothing that looks finished.

Computing the features decodes every image, so with ``skip_bad_images`` it is also the check
that the images decode: an image that does not gets a zero row, and its position and error are
kept beside the array (``<name>.unreadable.json``), for the data module to drop it, now and on
every later run that reads the cache instead of decoding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from seq2seq.captioning.annotations.records import ImageRecord
from seq2seq.captioning.images import PILLOW_LIMIT, ImageError, PixelLimit, load_image
from seq2seq.data.progress import Progress
from seq2seq.models.encoders.cnn import CNNEncoder

log = logging.getLogger(__name__)


def cache_key(records: Sequence[ImageRecord], settings: Mapping[str, Any]) -> str:
    """A hash of the image paths (with sizes and mtimes) and the feature settings."""
    digest = hashlib.sha256(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    for record in records:
        stat = record.path.stat()
        digest.update(f"{record.path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def encoder_settings(encoder: CNNEncoder) -> dict[str, Any]:
    """What a cached feature map depends on, on the model side: the backbone, the layer, and
    a hash of the weights themselves (a file name or a random seed could hide a change)."""
    digest = hashlib.sha256()
    for name, tensor in encoder.backbone.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return {
        "backbone": encoder.backbone_name,
        "node": encoder.feature_node,
        "weights": digest.hexdigest()[:16],
    }


@torch.no_grad()
def compute_features(
    encoder: CNNEncoder,
    records: Sequence[ImageRecord],
    transform: Callable[..., Tensor],
    path: Path,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    limit: PixelLimit = PILLOW_LIMIT,
    skip_unreadable: bool = False,
    what: str = "caching CNN features",
) -> Path:
    """Write the backbone feature maps of ``records`` to ``path`` (``.npy``, float16).

    Args:
        encoder: a CNN encoder whose backbone is frozen.
        records: the images, in data set order.
        transform: PIL image to the CNN's input tensor.
        path: where the ``(num, C, H, W)`` array goes.
        batch_size: images per forward pass.
        device: where the backbone runs.
        limit: images over this many pixels are refused (see
            :class:`~seq2seq.captioning.images.PixelLimit`).
        skip_unreadable: an image that cannot be decoded gets a zero row and is listed in
            :func:`unreadable_path` (read back by :func:`load_unreadable`); False: it is an
            :class:`~seq2seq.captioning.images.ImageError` naming the file.
        what: how the progress display names the step.

    Returns:
        ``path``.

    Raises:
        ImageError: an image cannot be decoded (without ``skip_unreadable``), or none can.
    """
    if not encoder.grad_free:
        raise ValueError("features can only be cached for a frozen backbone (trainable_blocks=0)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    backbone = encoder.backbone
    was_training, home = backbone.training, next(encoder.parameters()).device
    backbone.eval().to(device)
    out: np.ndarray | None = None
    unreadable: list[tuple[int, str]] = []
    try:
        with Progress(what, len(records), "images") as progress:
            for start in range(0, len(records), batch_size):
                chunk = records[start : start + batch_size]
                rows, pixels = [], []
                for row, record in enumerate(chunk, start=start):
                    try:
                        pixels.append(transform(load_image(record.path, limit)))
                    except ImageError as err:
                        if not skip_unreadable:
                            raise
                        unreadable.append((row, str(err)))
                    else:
                        rows.append(row)
                if pixels:
                    images = torch.stack(pixels).to(device)
                    features = encoder.extract(images).float().cpu().numpy()  # (b, C, H, W)
                    if out is None:
                        shape = (len(records), *features.shape[1:])
                        # A new file reads as zeros: the rows of unreadable images stay 0.
                        out = np.lib.format.open_memmap(
                            tmp, mode="w+", dtype=np.float16, shape=shape
                        )
                    out[rows] = features
                progress.update(len(chunk))
        if out is None:
            if unreadable:
                raise ImageError(f"{unreadable[0][1]}; none of the {len(records)} images decodes")
            raise ValueError(f"no images to compute features for ({path})")
        out.flush()
        del out
        # The listing is in place before the array: a finished array always has its own.
        write_unreadable(path, unreadable)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        backbone.to(home).train(was_training)
    return path


def unreadable_path(path: Path) -> Path:
    """Where the images of cache ``path`` that could not be decoded are listed."""
    return path.with_name(f"{path.stem}.unreadable.json")


def write_unreadable(path: Path, unreadable: Sequence[tuple[int, str]]) -> None:
    """List ``(row, error)`` of the images of cache ``path`` that did not decode, atomically,
    or remove a listing left from before when there are none."""
    listing = unreadable_path(path)
    if not unreadable:
        listing.unlink(missing_ok=True)
        return
    tmp = listing.with_name(f".{listing.name}.{os.getpid()}.tmp")
    try:
        entries = [{"index": row, "error": error} for row, error in unreadable]
        tmp.write_text(json.dumps(entries, indent=0), encoding="utf-8")
        os.replace(tmp, listing)
    finally:
        tmp.unlink(missing_ok=True)


def load_unreadable(path: Path) -> list[tuple[int, str]]:
    """``(row, error)`` of each image of cache ``path`` that could not be decoded (its row
    holds zeros); empty when there is no listing (all decoded)."""
    listing = unreadable_path(path)
    if not listing.is_file():
        return []
    try:
        entries = json.loads(listing.read_text(encoding="utf-8"))
        return [(int(e["index"]), str(e["error"])) for e in entries]
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ValueError(
            f"feature cache listing {listing} cannot be read ({err}); delete it and {path} "
            "to recompute"
        ) from err


def load_features(path: Path, expected: int) -> np.ndarray:
    """Open a cache file as a read-only memory map ``(num, C, H, W)``.

    Only plain numeric arrays are read: a file holding Python objects (which loading would
    unpickle) is refused, as is anything else that is not what :func:`compute_features` wrote.
    """
    try:
        # allow_pickle=False (numpy's default, spelt out): object arrays are never unpickled.
        features = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(
            f"feature cache {path} cannot be used ({err}); expected a float16 array written "
            "by seq2seq-train, nothing in it was unpickled. Delete it to recompute"
        ) from err
    if features.dtype != np.float16 or features.ndim != 4 or len(features) != expected:
        raise ValueError(
            f"feature cache {path} holds a {features.dtype} array of shape {features.shape}, "
            f"expected {expected} maps (num, C, H, W) in float16; delete it to recompute"
        )
    return features
