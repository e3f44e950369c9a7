"""Image-caption examples and their batches.

Training iterates over (image, caption) pairs, so an image with five references is seen five
times an epoch; evaluation iterates over images, each decoded once and scored against all of
its references. An example's image is either preprocessed pixels or the CNN's cached feature
map (see :mod:`seq2seq.data.feature_cache`), and the batch says which.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import transforms

from seq2seq.data.captions import ImageRecord
from seq2seq.data.dataset import pad_targets
from seq2seq.data.images import load_image
from seq2seq.data.tokenizer import Tokenizer
from seq2seq.encoders.cnn import IMAGENET_MEAN, IMAGENET_STD

RESIZE_MODES = ("crop", "stretch")


def caption_transform(image_size: int, resize: str = "crop") -> Callable[..., Tensor]:
    """Preprocessing of a PIL RGB image to a normalised ``(3, S, S)`` float tensor.

    Args:
        image_size: side ``S`` the CNN sees.
        resize: ``crop`` resizes the short side to ``S·256/224`` and takes the centre square
            (the ImageNet evaluation crop); ``stretch`` resizes the whole image to ``S × S``
            (as Xu et al. did), so every pixel of the image is seen and grid cells map
            directly to image regions (needed for attention correctness).
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"data.resize must be one of {RESIZE_MODES}, got {resize!r}")
    if image_size < 16:
        raise ValueError(f"data.image_size must be at least 16, got {image_size}")
    if resize == "crop":
        geometry = [
            transforms.Resize(round(image_size * 256 / 224)),
            transforms.CenterCrop(image_size),
        ]
    else:
        geometry = [transforms.Resize((image_size, image_size))]
    return transforms.Compose(
        [*geometry, transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )


class ImageSource:
    """Gives the CNN input of image ``i``: pixels (loaded and transformed) or cached features.

    Args:
        records: the images, in data set order.
        transform: PIL image to tensor (see :func:`caption_transform`).
        features: ``(num, C, H, W)`` array of cached backbone features (a memory map), used
            instead of the images when given.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        transform: Callable[..., Tensor],
        features: np.ndarray | None = None,
    ) -> None:
        if features is not None and len(features) != len(records):
            raise ValueError(f"{len(features)} cached feature maps for {len(records)} images")
        self.records = list(records)
        self.transform = transform
        self.features = features

    @property
    def is_features(self) -> bool:
        return self.features is not None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Tensor:
        if self.features is not None:
            # Stored as float16 to halve the disk; the model computes in float32.
            return torch.from_numpy(np.asarray(self.features[i], dtype=np.float32))
        return self.transform(load_image(self.records[i].path))


class CaptionExample(NamedTuple):
    """One image with one caption.

    Attributes:
        index: the image's position in its split (evaluation outputs are keyed by it).
        image: ``(3, S, S)`` pixels or ``(C, H, W)`` features.
        caption: ``(T,)`` int64 caption ids, no BOS/EOS.
    """

    index: int
    image: Tensor
    caption: Tensor


class CaptionBatch(NamedTuple):
    """Stacked images and padded captions; Lightning moves the tensors to the device.

    Attributes:
        images: ``(B, 3, S, S)`` pixels or ``(B, C, H, W)`` cached features.
        tgt_in: ``(B, T)`` BOS then the caption, padded with PAD.
        tgt_out: ``(B, T)`` the caption then EOS, padded with PAD.
        indices: ``(B,)`` image index of each row.
        features: whether ``images`` holds backbone features rather than pixels.
    """

    images: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    indices: Tensor
    features: bool


class CaptionDataset(Dataset[CaptionExample]):
    """Caption examples of one split.

    Args:
        source: the split's images.
        tokenizer: caption tokenizer.
        per_caption: one example per (image, caption) pair (training); otherwise one per
            image, with its first reference as the target (for the validation loss).
        max_len: captions are cut to this many tokens (None: no limit); cut ones are counted
            in ``truncated``.
    """

    def __init__(
        self,
        source: ImageSource,
        tokenizer: Tokenizer,
        *,
        per_caption: bool = True,
        max_len: int | None = None,
    ) -> None:
        self.source = source
        self.pairs: list[tuple[int, Tensor]] = []
        self.truncated = 0
        for index, record in enumerate(source.records):
            captions = record.captions if per_caption else record.captions[:1]
            for caption in captions:
                ids = tokenizer.encode(caption)
                if max_len is not None and len(ids) > max_len:
                    ids = ids[:max_len]
                    self.truncated += 1
                self.pairs.append((index, torch.tensor(ids, dtype=torch.long)))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> CaptionExample:
        index, caption = self.pairs[i]
        return CaptionExample(index, self.source[index], caption)

    @property
    def lengths(self) -> Tensor:
        """``(num,)`` caption lengths, for length-bucketed batches."""
        return torch.tensor([len(c) for _, c in self.pairs], dtype=torch.long)


def collate_captions(examples: Sequence[CaptionExample], features: bool) -> CaptionBatch:
    """Stack examples into a :class:`CaptionBatch`."""
    images = torch.stack([e.image for e in examples])
    tgt_in, tgt_out, _ = pad_targets([e.caption for e in examples])
    indices = torch.tensor([e.index for e in examples], dtype=torch.long)
    return CaptionBatch(images, tgt_in, tgt_out, indices, features)
