"""What a torchvision CNN expects as input: resized RGB images normalised with the ImageNet
statistics. It lives beside the encoder because the normalisation belongs to the backbone's
weights; the captioning data pipeline and :class:`~seq2seq.captioning.captioner.Captioner`
import it from here so that training and inference preprocess alike.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from torch import Tensor, nn
from torchvision import transforms

from seq2seq.models.encoders.backbones import check_backbone, is_local_file, resolve_enum

#: ImageNet channel statistics used by every torchvision classification model.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)


IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


RESIZE_MODES = ("crop", "stretch")


def input_transform(image_size: int, resize: str = "crop") -> Callable[..., Tensor]:
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


def image_transform(
    backbone: str, weights: str | os.PathLike[str] | None = None, size: int | None = None
) -> nn.Module | transforms.Compose:
    """Preprocessing of PIL images (or uint8 tensors) for ``backbone``: resize, center crop,
    to a float tensor ``(3, size, size)``, normalise with the ImageNet mean/std.

    Args:
        backbone: torchvision model name.
        weights: as for :class:`CNNEncoder`; an enum name uses that enum's own
            ``transforms()`` (interpolation, resize size), the rest the ImageNet constants.
        size: side of the crop; None is the weights' crop size, or 224 (299 for Inception v3).

    Returns:
        a callable transform.
    """
    check_backbone(backbone)
    if weights is not None and not is_local_file(weights):
        preset = resolve_enum(backbone, os.fspath(weights)).transforms
        if size is None:
            return preset()
        keywords = getattr(preset, "keywords", {})
        ratio = keywords.get("resize_size", 256) / keywords.get("crop_size", 224)
        return preset(crop_size=size, resize_size=round(size * ratio))
    size = size if size is not None else (299 if backbone == "inception_v3" else 224)
    return input_transform(size, "crop")
