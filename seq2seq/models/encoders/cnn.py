"""A CNN image encoder for Show-and-Tell (NIC) and Show, Attend and Tell.

:class:`CNNEncoder` wraps any torchvision classification backbone, chosen by name, and cuts it
at its last convolutional feature map ``(B, C, H, W)``, the input of the global pooling:

- the annotations are the ``H*W`` cells of that map, ``(B, H*W, C)`` (Xu et al. 2015, Sec.
  3.1.1: "the encoder ... produces L vectors, each of which is a D-dimensional representation
  corresponding to a part of the image");
- the summary is the globally average pooled vector ``(B, C)``, the image vector NIC feeds to its
  LSTM (Vinyals et al. 2015, Sec. 3.1), equal to the mean of the annotations;
- an optional linear projection to ``project_dim`` (shared by both, so the summary stays the
  mean of the annotations) and dropout form the trainable *head*.

Where the map is taken: the input of the model's global average pooling (``avgpool``,
``F.adaptive_avg_pool2d`` or ``x.mean((2, 3))``), found by tracing the model with torch.fx and
cut with :func:`torchvision.models.feature_extraction.create_feature_extractor`. Trailing
max-pooling is skipped so that the grid keeps the resolution of the last convolution: for VGG
this is conv5_3 after its ReLU, 14x14 at 224 px, the 196 annotations of Xu et al.; for ResNet
it is ``layer4`` (7x7 at 224 px). Models without such a map (ViT) are refused.

Weights, with torchvision's weights API (``weights=``):

- ``None``: random initialisation;
- an enum name of the backbone (``"IMAGENET1K_V1"``, ``"DEFAULT"``): torchvision loads the file
  from ``$TORCH_HOME/hub/checkpoints/`` if it is there and downloads it otherwise; without a
  network this fails with :class:`WeightsUnavailableError` explaining where to put the file;
- a path to a local ``.pth`` state dict of the full torchvision model (``torch.save(
  model.state_dict(), path)``), loaded with ``weights_only=True`` and strict key matching.

GoogLeNet and Inception v3: their auxiliary classifiers are never built or are dropped
(torchvision insists on building them to load pretrained weights; they are removed afterwards),
as they only serve the classification loss. ``transform_input`` (which maps inputs normalised
with the ImageNet mean/std to the ``(x - 0.5) / 0.5`` normalisation the original Google weights
were trained with) defaults to torchvision's choice: on for the enum pretrained weights, off for
random or local weights; pass ``transform_input=True`` when a local file holds Google's weights.

The backbone is frozen by default: its parameters need no gradient, it runs under
``torch.no_grad()`` and stays in eval mode when the encoder is put in train mode, so BatchNorm
statistics are never updated. ``trainable_blocks=k`` unfreezes the last ``k`` top-level blocks
(``layer4``, then ``layer3``... of a ResNet), which then follow the encoder's train/eval mode;
``freeze=False`` makes the whole backbone trainable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torchvision.models.feature_extraction import (
    create_feature_extractor,
)

from seq2seq.core import Encoder, EncoderOutput
from seq2seq.models.encoders.backbones import (
    PROBE_SIZE,
    build_backbone,
    check_node,
    find_feature_node,
    top_level_blocks,
)


class CNNEncoder(Encoder):
    """A torchvision CNN cut at its last feature map: a grid of annotations and a pooled summary.

    Args:
        backbone: name of a torchvision classification model (``resnet50``, ``vgg16``,
            ``mobilenet_v2``, ``googlenet``, ``inception_v3``, ...).
        weights: None (random), a weights enum name of that model (``"IMAGENET1K_V1"``,
            ``"DEFAULT"``) or the path of a local ``.pth`` state dict of the full model.
        feature_layer: the traced node whose output is the grid (``"layer3"`` of a ResNet
            gives a grid twice as fine as the last map, at a quarter less compute); None
            takes the last feature map before the global pooling.
        project_dim: size of a linear projection of annotations and summary; None keeps the
            backbone's ``C`` channels.
        freeze: keep the backbone fixed (no gradient, always in eval mode).
        trainable_blocks: with ``freeze``, unfreeze the last ``k`` top-level blocks.
        dropout: dropout on the annotations and the summary.
        transform_input: GoogLeNet/Inception v3 only; None is torchvision's default (on for the
            enum pretrained weights, off otherwise).

    Attributes:
        feature_dim: channels ``C`` of the backbone's feature map.
        feature_node: the traced node the map is taken from (``"layer4.1.relu_1"``...).
        output_dim: size ``D`` of the annotations (``project_dim`` or ``C``).
        summary_dim: size ``S`` of the summary (same as ``output_dim``).
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        weights: str | os.PathLike[str] | None = None,
        feature_layer: str | None = None,
        project_dim: int | None = None,
        freeze: bool = True,
        trainable_blocks: int = 0,
        dropout: float = 0.0,
        transform_input: bool | None = None,
    ) -> None:
        super().__init__()
        self.backbone_name = backbone
        model = build_backbone(backbone, weights, transform_input)
        self.feature_node = (
            find_feature_node(model, backbone)
            if feature_layer is None
            else check_node(model, backbone, feature_layer)
        )
        self.backbone = create_feature_extractor(
            model.eval(), return_nodes={self.feature_node: "features"}
        )
        # Measure C on a small dummy image rather than keeping a table of channel counts.
        with torch.no_grad():
            probe = self.backbone(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE))["features"]
        if probe.dim() != 4:
            raise ValueError(
                f"{backbone}'s {self.feature_node} gives shape {tuple(probe.shape)}, not a "
                "(B, C, H, W) feature map"
            )
        self.feature_dim = int(probe.size(1))
        self.proj: nn.Linear | None = (
            nn.Linear(self.feature_dim, project_dim) if project_dim is not None else None
        )
        self.dropout = nn.Dropout(dropout)
        self.output_dim = project_dim if project_dim is not None else self.feature_dim
        self.summary_dim = self.output_dim

        self.blocks = top_level_blocks(self.backbone)
        self.freeze = freeze
        self.trainable_blocks = 0
        self.set_trainable_blocks(trainable_blocks if freeze else len(self.blocks))
        self.train(self.training)

    def set_trainable_blocks(self, k: int) -> None:
        """Unfreeze exactly the last ``k`` top-level blocks (0: the whole backbone frozen).

        Switches a frozen encoder to the fine-tuning stage without rebuilding it.
        """
        if not 0 <= k <= len(self.blocks):
            raise ValueError(
                f"trainable_blocks must be in [0, {len(self.blocks)}] for {self.backbone_name}, "
                f"got {k}"
            )
        if not self.freeze:
            self.backbone.requires_grad_(True)
            return
        self.backbone.requires_grad_(False)
        for block in self.blocks[len(self.blocks) - k :]:
            block.requires_grad_(True)
        self.trainable_blocks = k
        self.train(self.training)

    def train(self, mode: bool = True) -> CNNEncoder:
        """Set train/eval mode; frozen parts of the backbone always stay in eval mode."""
        super().train(mode)
        if self.freeze:
            # Frozen BatchNorm must keep its ImageNet statistics; only unfrozen blocks follow.
            self.backbone.eval()
            for block in self.blocks[len(self.blocks) - self.trainable_blocks :]:
                block.train(mode)
        return self

    @property
    def grad_free(self) -> bool:
        """Whether no backbone parameter needs a gradient, so it may run under no_grad."""
        return self.freeze and self.trainable_blocks == 0

    def backbone_parameters(self, trainable_only: bool = False) -> Iterator[nn.Parameter]:
        """Parameters of the CNN, for an optimizer group with a lower learning rate.

        Frozen ones are included unless ``trainable_only``: they get no gradient, so optimizers
        skip them, and unfreezing later needs no new optimizer.
        """
        return (p for p in self.backbone.parameters() if p.requires_grad or not trainable_only)

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the projection (none without ``project_dim``)."""
        return iter(()) if self.proj is None else self.proj.parameters()

    def extract(self, images: Tensor) -> Tensor:
        """Run only the backbone, e.g. to cache features.

        Args:
            images: ``(B, 3, H, W)`` normalised with the ImageNet mean/std (see
                :func:`image_transform`).

        Returns:
            ``(B, C, H', W')`` the last convolutional feature map.
        """
        if images.dim() != 4 or images.size(1) != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
        if self.grad_free:
            with torch.no_grad():
                return self.backbone(images)["features"]
        return self.backbone(images)["features"]

    def encode_features(self, features: Tensor) -> EncoderOutput:
        """Apply only the head to backbone feature maps (cached ones, say).

        Args:
            features: ``(B, C, H, W)`` from :meth:`extract`.

        Returns:
            annotations ``(B, H*W, D)``, mask ``(B, H*W)`` all True, summary ``(B, D)`` the
            average pooled map (projected like the annotations), grid ``(H, W)``.
        """
        if features.dim() != 4 or features.size(1) != self.feature_dim:
            raise ValueError(
                f"expected features (B, {self.feature_dim}, H, W), got {tuple(features.shape)}"
            )
        batch, _, height, width = features.shape
        annotations = features.flatten(2).transpose(1, 2)  # (B, H*W, C), row-major cells
        summary = features.mean(dim=(2, 3))  # (B, C) global average pooling
        if self.proj is not None:
            annotations = self.proj(annotations)
            summary = self.proj(summary)
        mask = torch.ones(batch, height * width, dtype=torch.bool, device=features.device)
        return EncoderOutput(
            annotations=self.dropout(annotations),
            mask=mask,
            summary=self.dropout(summary),
            grid=(height, width),
        )

    def forward(self, images: Tensor, lengths: Tensor | None = None) -> EncoderOutput:
        """Encode ``images`` ``(B, 3, H, W)``; ``lengths`` is ignored (every cell is real).

        Returns:
            annotations ``(B, H'*W', D)``, mask ``(B, H'*W')``, summary ``(B, D)``, grid
            ``(H', W')`` (7x7 for a ResNet at 224 px, 14x14 for VGG).
        """
        return self.encode_features(self.extract(images))
