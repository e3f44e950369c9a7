"""Backbone features computed once and kept on disk, so that later epochs skip the CNN.

With a frozen backbone (and no image augmentation) every epoch would push the same images
through the same CNN; caching its last feature map turns a captioning epoch into a decoder-only
epoch. Each split is one float16 ``.npy`` file ``(num, C, H, W)``, opened as a memory map so
that a COCO-sized cache need not fit in memory. The file name carries a hash of everything
the features depend on (backbone, weights, preprocessing, the image list), so a changed
setting never reads stale features; a file is written under a temporary name and renamed
only when complete, so an interrupted run leaves nothing that looks finished.
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
from seq2seq.captioning.images import load_image
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
) -> Path:
    """Write the backbone feature maps of ``records`` to ``path`` (``.npy``, float16).

    Args:
        encoder: a CNN encoder whose backbone is frozen.
        records: the images, in data set order.
        transform: PIL image to the CNN's input tensor.
        path: where the ``(num, C, H, W)`` array goes.
        batch_size: images per forward pass.
        device: where the backbone runs.

    Returns:
        ``path``.
    """
    if not encoder.grad_free:
        raise ValueError("features can only be cached for a frozen backbone (trainable_blocks=0)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    backbone = encoder.backbone
    was_training, home = backbone.training, next(encoder.parameters()).device
    backbone.eval().to(device)
    out: np.ndarray | None = None
    try:
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            images = torch.stack([transform(load_image(r.path)) for r in chunk]).to(device)
            features = encoder.extract(images).float().cpu().numpy()  # (b, C, H, W)
            if out is None:
                shape = (len(records), *features.shape[1:])
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
            out[start : start + len(chunk)] = features
        if out is None:
            raise ValueError(f"no images to compute features for ({path})")
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        backbone.to(home).train(was_training)
    return path


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
