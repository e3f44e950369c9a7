"""Image-caption examples and their batches.

Training iterates either over (image, caption) pairs, so an image with five references is
seen five times an epoch, or over images that each bring up to ``captions_per_image`` of their
references (the ``seq_per_img`` of Karpathy's neuraltalk2): the CNN then runs once per image
and its output is repeated for each caption, which divides the CNN's share of an epoch by the
number of references. Evaluation iterates over images, each decoded once and scored against
all of its references. An example's image is either preprocessed pixels or the CNN's cached feature
map (see :mod:`seq2seq.captioning.feature_cache`), and the batch says which.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from seq2seq.captioning.annotations.records import ImageRecord
from seq2seq.captioning.images import PILLOW_LIMIT, PixelLimit, load_image
from seq2seq.data.padding import pad_targets
from seq2seq.data.tokenizer import Tokenizer


class ImageSource:
    """Gives the CNN input of image ``i``: pixels (loaded and transformed) or cached features.

    Args:
        records: the images, in data set order.
        transform: PIL image to tensor (see
            :func:`~seq2seq.models.encoders.image_input.input_transform`).
        features: ``(num, C, H, W)`` array of cached backbone features (a memory map), used
            instead of the images when given.
        rows: the row of ``features`` that holds each record's map, when the cache also has
            rows of images dropped since (None: row ``i`` is record ``i``).
        limit: images over this many pixels are refused when loaded (worker processes get
            it with the source, so it holds there too).
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        transform: Callable[..., Tensor],
        features: np.ndarray | None = None,
        *,
        rows: Sequence[int] | None = None,
        limit: PixelLimit = PILLOW_LIMIT,
    ) -> None:
        self.records = list(records)
        self.rows = list(rows) if rows is not None else None
        if self.rows is not None and len(self.rows) != len(self.records):
            raise ValueError(f"{len(self.rows)} feature rows for {len(self.records)} images")
        if features is not None and self.rows is None and len(features) != len(self.records):
            raise ValueError(f"{len(features)} cached feature maps for {len(records)} images")
        self.transform = transform
        self.features = features
        self.limit = limit

    @property
    def is_features(self) -> bool:
        return self.features is not None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Tensor:
        if self.features is not None:
            row = i if self.rows is None else self.rows[i]
            # Stored as float16 to halve the disk; the model computes in float32.
            return torch.from_numpy(np.asarray(self.features[row], dtype=np.float32))
        return self.transform(load_image(self.records[i].path, self.limit))


class CaptionExample(NamedTuple):
    """One image with one or more captions.

    Attributes:
        index: the image's position in its split (evaluation outputs are keyed by it).
        image: ``(3, S, S)`` pixels or ``(C, H, W)`` features.
        captions: ``(T_k,)`` int64 caption ids each, no BOS/EOS.
    """

    index: int
    image: Tensor
    captions: list[Tensor]


class CaptionBatch(NamedTuple):
    """Stacked images and padded captions; Lightning moves the tensors to the device.

    Attributes:
        images: ``(B, 3, S, S)`` pixels or ``(B, C, H, W)`` cached features.
        tgt_in: ``(B, T)`` BOS then the caption, padded with PAD.
        tgt_out: ``(B, T)`` the caption then EOS, padded with PAD.
        indices: ``(B,)`` image index of each image row.
        features: whether ``images`` holds backbone features rather than pixels.
        image_rows: ``(B',)`` the image row of each caption row when images bring several
            captions (``tgt_in`` is then ``(B', T)``); None when row ``i`` of the captions
            belongs to image ``i``.
    """

    images: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    indices: Tensor
    features: bool
    image_rows: Tensor | None = None


class CaptionDataset(Dataset[CaptionExample]):
    """Caption examples of one split.

    Args:
        source: the split's images.
        tokenizer: caption tokenizer.
        captions_per_image: None: one example per (image, caption) pair; ``k``: one example
            per image with ``k`` of its captions, drawn at random when it has more (all of
            them when fewer); 0: one example per image with its first caption only (for the
            validation loss).
        max_len: captions are cut to this many tokens (None: no limit); cut ones are counted
            in ``truncated``.
    """

    def __init__(
        self,
        source: ImageSource,
        tokenizer: Tokenizer,
        *,
        captions_per_image: int | None = None,
        max_len: int | None = None,
    ) -> None:
        if captions_per_image is not None and captions_per_image < 0:
            raise ValueError(f"captions_per_image must be >= 0, got {captions_per_image}")
        self.source = source
        self.captions_per_image = captions_per_image
        self.truncated = 0
        # Token ids per image, as lists: one tensor per caption made here took half of the
        # set-up of COCO's 600k captions; an example's few are made when it is drawn.
        self.captions: list[list[list[int]]] = []
        for record in source.records:
            kept = record.captions if captions_per_image != 0 else record.captions[:1]
            self.captions.append([self._encode(tokenizer, c, max_len) for c in kept])
        if captions_per_image is None:
            self.items = [(i, k) for i, caps in enumerate(self.captions) for k in range(len(caps))]
        else:
            self.items = [(i, -1) for i in range(len(self.captions))]

    def _encode(self, tokenizer: Tokenizer, caption: str, max_len: int | None) -> list[int]:
        ids = tokenizer.encode(caption)
        if max_len is not None and len(ids) > max_len:
            ids = ids[:max_len]
            self.truncated += 1
        return ids

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> CaptionExample:
        index, k = self.items[i]
        captions = self.captions[index]
        if k >= 0:
            chosen = [captions[k]]
        elif self.captions_per_image and len(captions) > self.captions_per_image:
            # Python's RNG: seeded per worker by Lightning's seed_everything(workers=True).
            chosen = random.sample(captions, self.captions_per_image)
        else:
            chosen = captions
        tensors = [torch.tensor(ids, dtype=torch.long) for ids in chosen]
        return CaptionExample(index, self.source[index], tensors)

    @property
    def lengths(self) -> Tensor:
        """``(num,)`` caption length of each example (the longest, for an image with
        several), for length-bucketed batches."""
        return torch.tensor(
            [
                len(self.captions[i][k]) if k >= 0 else max(len(c) for c in self.captions[i])
                for i, k in self.items
            ],
            dtype=torch.long,
        )


def collate_captions(examples: Sequence[CaptionExample], features: bool) -> CaptionBatch:
    """Stack examples into a :class:`CaptionBatch`."""
    images = torch.stack([e.image for e in examples])
    captions = [c for e in examples for c in e.captions]
    tgt_in, tgt_out, _ = pad_targets(captions)
    indices = torch.tensor([e.index for e in examples], dtype=torch.long)
    rows = None
    if len(captions) != len(examples):
        counts = torch.tensor([len(e.captions) for e in examples])
        rows = torch.repeat_interleave(torch.arange(len(examples)), counts)
    return CaptionBatch(images, tgt_in, tgt_out, indices, features, rows)
