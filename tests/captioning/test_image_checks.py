"""Checking images before training: the pixel limit (``PixelLimit``, ``data.max_image_pixels``),
header checks that decode nothing, progress shown for every pass over the images, and
``skip_bad_images`` decoding each image once when its features are cached."""

from __future__ import annotations

import json
import logging
import pickle
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from seq2seq.captioning import dataset as dataset_module
from seq2seq.captioning import feature_cache, images
from seq2seq.captioning.annotations.records import ImageRecord
from seq2seq.captioning.datamodule import CaptionDataModule
from seq2seq.captioning.dataset import ImageSource
from seq2seq.captioning.feature_cache import compute_features, load_unreadable, unreadable_path
from seq2seq.captioning.images import (
    ImageError,
    PixelLimit,
    check_headers,
    load_image,
    read_header,
)
from seq2seq.models.encoders.cnn import CNNEncoder
from seq2seq.models.encoders.image_input import input_transform

SIZE = 32
#: The logger of :class:`seq2seq.data.progress.Progress`.
PROGRESS = "seq2seq.data.progress"


def raises(exc: type[Exception], *parts: str):
    return pytest.raises(exc, match=".*".join(re.escape(p) for p in parts))


def noise(size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def corrupt_png(path: Path) -> None:
    """A PNG whose header reads but whose pixel data fails its checksum."""
    noise((64, 64), 99).save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 20] = b"\x00" * 20
    path.write_bytes(bytes(data))


def write_dataset(folder: Path, n_train: int = 4) -> Path:
    """Train images ok0..ok{n-1} plus ``bad.png`` (corrupt pixels), one val and one test."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(n_train):
        noise((20, 16), i).save(folder / f"ok{i}.png")
        entries.append(("train", f"ok{i}.png"))
    corrupt_png(folder / "bad.png")
    entries.insert(1, ("train", "bad.png"))
    for split in ("val", "test"):
        noise((10, 10), 50 + len(split)).save(folder / f"{split}.png")
        entries.append((split, f"{split}.png"))
    rows = [{"filename": f, "split": s, "sentences": [{"raw": f"picture {f}"}]} for s, f in entries]
    path = folder / "dataset_test.json"
    path.write_text(json.dumps({"images": rows}))
    return path


def datamodule(annotations: Path, **kwargs: Any) -> CaptionDataModule:
    return CaptionDataModule(
        annotations=str(annotations), image_size=SIZE, resize="stretch", batch_size=2,
        captions_per_image=None, eval_batch_size=2, **kwargs,
    )  # fmt: skip


@pytest.fixture(scope="module")
def encoder() -> CNNEncoder:
    torch.manual_seed(0)
    return CNNEncoder("resnet18", freeze=True)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the decodes of each image file (file name -> count), wherever they happen."""
    counts: Counter[str] = Counter()

    def counting(path: str | Path, *args: Any, **kwargs: Any) -> Image.Image:
        counts[Path(path).name] += 1
        return load_image(path, *args, **kwargs)

    for module in (images, feature_cache, dataset_module):
        monkeypatch.setattr(module, "load_image", counting)
    return counts


# --- PixelLimit / read_header / load_image -------------------------------------------------


def test_pixel_limit_overrides_pillows_and_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    noise((64, 48), 0).save(tmp_path / "a.png")  # 3,072 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow alone: over twice, an error
    with raises(ImageError, "a.png", "64x48 = 3,072 pixels", "1,000", "PIL.Image.MAX_IMAGE_PIXELS"):
        load_image(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png", PixelLimit(5000, "my.key")).size == (64, 48)
    assert read_header(tmp_path / "a.png", PixelLimit(5000, "my.key")) == ("PNG", (64, 48))
    assert Image.MAX_IMAGE_PIXELS == 1000  # restored after a pass ...
    with raises(ImageError, str(tmp_path / "a.png"), "limit of 3,000 pixels (my.key)",
                "If the image is genuine, raise my.key"):  # fmt: skip
        load_image(tmp_path / "a.png", PixelLimit(3000, "my.key"))
    with raises(ImageError, "limit of 3,000 pixels (my.key)"):
        read_header(tmp_path / "a.png", PixelLimit(3000, "my.key"))
    assert Image.MAX_IMAGE_PIXELS == 1000  # ... and after a refusal


@pytest.mark.parametrize("pixels", [0, -1, True, 1.5])
def test_pixel_limit_must_be_positive(pixels: Any) -> None:
    with raises(ValueError, "my.key must be a positive number of pixels"):
        PixelLimit(pixels, "my.key")


def test_header_check_names_bad_files_without_decoding(tmp_path: Path) -> None:
    noise((30, 20), 0).save(tmp_path / "ok.png")
    corrupt_png(tmp_path / "bad.png")  # the header is fine: only decoding finds this one
    (tmp_path / "notes.png").write_text("not an image\n")
    (tmp_path / "empty.png").touch()
    records = [ImageRecord(n, tmp_path / n, "train", ("c",)) for n in
               ("ok.png", "bad.png", "notes.png", "empty.png", "missing.png")]  # fmt: skip
    kept, bad = check_headers(records, PixelLimit(500, "k"))
    assert kept == [] and len(bad) == 5
    assert "ok.png: image is 30x20 = 600 pixels, over the limit of 500 pixels (k)" in bad[0][1]
    kept, bad = check_headers(records)
    assert [r.image_id for r in kept] == ["ok.png", "bad.png"]
    problems = dict((r.image_id, message) for r, message in bad)
    assert "not an image file" in problems["notes.png"]
    assert "empty file" in problems["empty.png"] and "not found" in problems["missing.png"]
    assert all(message.startswith(str(tmp_path)) for message in problems.values())


def test_header_and_decode_checks_on_worker_processes_match_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    noise((30, 20), 0).save(tmp_path / "ok.png")
    corrupt_png(tmp_path / "bad.png")
    (tmp_path / "notes.png").write_text("not an image\n")
    names = ["ok.png", "bad.png", "notes.png", "missing.png"] * 3
    records = [ImageRecord(f"{i}/{n}", tmp_path / n, "train", ("c",)) for i, n in
               enumerate(names)]  # fmt: skip
    checks = (check_headers, images.find_unreadable_images)
    serial = [check(records) for check in checks]
    assert images.check_workers(len(records)) == 1  # so few: one process
    # COCO-sized checks run on forked workers, in chunks: here 12 images in chunks of 5.
    monkeypatch.setattr(images, "check_workers", lambda count: 2)
    monkeypatch.setattr(images, "_CHUNK", 5)
    pooled = [check(records) for check in checks]
    assert pooled == serial
    # Kept in input order, whichever worker finished first.
    kept = ["0/ok.png", "1/bad.png", "4/ok.png", "5/bad.png", "8/ok.png", "9/bad.png"]
    assert [r.image_id for r in pooled[0][0]] == kept
    assert [r.image_id for r in pooled[1][0]] == ["0/ok.png", "4/ok.png", "8/ok.png"]


def test_image_source_carries_its_limit_to_worker_processes(tmp_path: Path) -> None:
    noise((64, 48), 0).save(tmp_path / "a.png")
    record = ImageRecord("a.png", tmp_path / "a.png", "train", ("c",))
    source = ImageSource([record], input_transform(SIZE, "stretch"), limit=PixelLimit(1000, "k"))
    copy = pickle.loads(pickle.dumps(source))  # what a DataLoader worker receives
    assert copy.limit == PixelLimit(1000, "k")
    with raises(ImageError, "a.png", "3,072 pixels", "(k)"):
        copy[0]


# --- the feature cache ----------------------------------------------------------------------


def test_feature_cache_applies_the_limit_and_lists_unreadable_images(
    tmp_path: Path, encoder: CNNEncoder
) -> None:
    for i in range(3):
        noise((20, 16), i).save(tmp_path / f"ok{i}.png")
    corrupt_png(tmp_path / "bad.png")
    names = ["ok0.png", "bad.png", "ok1.png", "ok2.png"]
    records = [ImageRecord(n, tmp_path / n, "train", ("c",)) for n in names]
    transform = input_transform(SIZE, "stretch")
    with raises(ImageError, "ok0.png", "over the limit of 100 pixels (data.max_image_pixels)"):
        compute_features(encoder, records, transform, tmp_path / "c" / "x.npy",
                         limit=PixelLimit(100, "data.max_image_pixels"))  # fmt: skip
    with raises(ImageError, str(tmp_path / "bad.png"), "corrupt"):
        compute_features(encoder, records, transform, tmp_path / "c" / "x.npy")
    assert not (tmp_path / "c" / "x.npy").exists()

    path = compute_features(encoder, records, transform, tmp_path / "c" / "x.npy",
                            batch_size=3, skip_unreadable=True)  # fmt: skip
    unreadable = load_unreadable(path)
    assert [row for row, _ in unreadable] == [1]
    assert unreadable[0][1].startswith(f"{tmp_path / 'bad.png'}: ")
    cached = np.load(path)
    assert not cached[1].any()  # the unreadable image's row
    good = [records[i] for i in (0, 2, 3)]
    direct = encoder.extract(torch.stack([transform(load_image(r.path)) for r in good]))
    torch.testing.assert_close(torch.from_numpy(cached[[0, 2, 3]].astype(np.float32)), direct,
                               atol=1e-2, rtol=1e-2)  # fmt: skip
    # A run in which all images decode leaves no listing behind.
    clean = compute_features(encoder, good, transform, tmp_path / "c" / "y.npy",
                             skip_unreadable=True)  # fmt: skip
    assert load_unreadable(clean) == [] and not unreadable_path(clean).exists()


# --- skip_bad_images: one decode per image, progress for every pass ------------------------


def test_skip_bad_images_with_cached_features_decodes_each_image_once(
    tmp_path: Path, encoder: CNNEncoder, decodes: Counter[str], caplog
) -> None:
    path = write_dataset(tmp_path / "d")
    dm = datamodule(path, skip_bad_images=True)
    # Quick steps log their closing line at DEBUG level (a long one at INFO).
    with caplog.at_level(logging.INFO), caplog.at_level(logging.DEBUG, PROGRESS):
        dm.prepare()
        assert sum(decodes.values()) == 0  # prepare reads headers only
        dm.set_feature_extractor(encoder)
        dm.prepare_data()
        dm.setup()
    # One decode per listed image: the caching pass is also the check.
    assert decodes == Counter({f"ok{i}.png": 1 for i in range(4)} | {"bad.png": 1,
                              "val.png": 1, "test.png": 1})  # fmt: skip
    assert [r.image_id for r in dm.records["train"]] == [f"ok{i}.png" for i in range(4)]
    assert dm.skipped_images == {"train": 1, "dev": 0, "test": 0}
    assert "train: skipped 1 images that cannot be decoded (data.skip_bad_images=true)" in (
        caplog.text
    )
    # Every pass over the images shows its progress, with a rate.
    for step in ("train: reading image headers: 5 images", "train: caching CNN features: 5 "):
        assert re.search(re.escape(step) + r".* in \d+:\d\d \([\d,.]+/s\)", caplog.text), step
    # Each kept image gets its own cached row (the dropped image's row is skipped).
    source = dm.datasets["train"].source
    assert source.is_features and source.rows == [0, 2, 3, 4]
    transform = input_transform(SIZE, "stretch")
    direct = encoder.extract(torch.stack([transform(load_image(r.path)) for r in source.records]))
    from_cache = torch.stack([source[i] for i in range(len(source))])
    torch.testing.assert_close(from_cache, direct, atol=1e-2, rtol=1e-2)
    assert sum(len(b.indices) for b in dm.train_dataloader()) == 4

    # A later run reads the cache: nothing is decoded, the same image is dropped.
    decodes.clear()
    again = datamodule(path, skip_bad_images=True)
    again.prepare()
    again.set_feature_extractor(encoder)
    again.setup()
    assert sum(decodes.values()) == 0
    assert again.records["train"] == dm.records["train"] and again.skipped_images["train"] == 1
    # Without skip_bad_images the listed image is the error it would have been.
    strict = datamodule(path)
    strict.prepare()
    strict.set_feature_extractor(encoder)
    with raises(ImageError, str(tmp_path / "d" / "bad.png"), "corrupt",
                "data.skip_bad_images=true"):  # fmt: skip
        strict.setup()


def test_skip_bad_images_without_a_cache_decodes_once_in_setup(
    tmp_path: Path, decodes: Counter[str], caplog
) -> None:
    path = write_dataset(tmp_path / "d")
    dm = datamodule(path, skip_bad_images=True, cache_features=False)
    with caplog.at_level(logging.INFO), caplog.at_level(logging.DEBUG, PROGRESS):
        dm.prepare()
        assert sum(decodes.values()) == 0
        dm.setup()
    assert decodes["bad.png"] == 1 and decodes["ok0.png"] == 1
    assert [r.image_id for r in dm.records["train"]] == [f"ok{i}.png" for i in range(4)]
    assert dm.datasets["train"].source.rows is None
    step = "train: decoding images to check them: 5 images"
    assert re.search(re.escape(step) + r".* in \d+:\d\d \([\d,.]+/s\)", caplog.text)


def test_uncached_bad_image_without_skip_is_an_error_when_cached(
    tmp_path: Path, encoder: CNNEncoder
) -> None:
    path = write_dataset(tmp_path / "d")
    dm = datamodule(path)
    dm.prepare()
    dm.set_feature_extractor(encoder)
    with raises(ImageError, str(tmp_path / "d" / "bad.png"), "corrupt",
                "data.skip_bad_images=true drops such images"):  # fmt: skip
        dm.prepare_data()
