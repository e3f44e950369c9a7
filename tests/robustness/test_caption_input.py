"""Bad captioning data through the data module (the class the data configs instantiate):
missing paths name the config key, bad image files are an error naming the file or, with
``skip_bad_images=true``, dropped and counted, odd image modes and sizes are converted, and
malformed annotation entries are an error naming the file, the entry and the field."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile

from seq2seq.captioning.annotations.records import AnnotationError
from seq2seq.captioning.datamodule import CaptionDataModule
from seq2seq.captioning.images import ImageError

SIZE = 32


def raises(exc: type[Exception], *parts: str):
    """pytest.raises matching all ``parts`` literally, in order."""
    return pytest.raises(exc, match=".*".join(re.escape(p) for p in parts))


def entry(name: str, split: str = "train", caption: str = "a red square") -> dict[str, Any]:
    return {"filename": name, "split": split, "sentences": [{"raw": caption}]}


def dataset(folder: Path, train: dict[str, Image.Image | bytes]) -> Path:
    """A Karpathy JSON with ``train`` images (PIL images are saved by file extension, bytes
    written as they are) and one good image each for val and test; returns the JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    images = {**train, "val.png": Image.new("RGB", (40, 30)), "test.png": Image.new("RGB", (9, 9))}
    for name, content in images.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            content.save(folder / name)
    split = {"val.png": "val", "test.png": "test"}
    entries = [entry(name, split.get(name, "train")) for name in images]
    path = folder / "dataset_test.json"
    path.write_text(json.dumps({"images": entries}))
    return path


def module(annotations: Path, **kwargs: Any) -> CaptionDataModule:
    return CaptionDataModule(
        annotations=str(annotations),
        image_size=SIZE,
        resize="stretch",
        batch_size=2,
        captions_per_image=None,
        cache_features=False,
        **kwargs,
    )


def bad_files(tmp_path: Path) -> dict[str, bytes]:
    """A truncated JPEG, a corrupt PNG and a text file named like an image."""
    buffer = tmp_path / "full.jpg"
    Image.effect_noise((64, 64), 60).convert("RGB").save(buffer)
    jpeg = buffer.read_bytes()
    png = tmp_path / "full.png"
    Image.effect_noise((64, 64), 60).convert("RGB").save(png)
    data = bytearray(png.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 20] = b"\x00" * 20  # inside the pixel data: its checksum fails
    return {"cut.jpg": jpeg[: len(jpeg) // 2], "corrupt.png": bytes(data), "notes.jpg": b"hi\n"}


# --- paths ----------------------------------------------------------------------------------


def test_missing_annotation_file_names_path_and_key(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "dataset_coco.json"
    with raises(AnnotationError, f"data.annotations={missing}: no such file"):
        module(missing).prepare()


def test_missing_image_root_names_path_and_key(tmp_path: Path) -> None:
    path = dataset(tmp_path / "d", {"a.png": Image.new("RGB", (8, 8))})
    root = tmp_path / "images"
    with raises(ImageError, f"data.image_root={root}: no such folder", str(path)):
        module(path, image_root=str(root)).prepare()


def test_missing_image_names_file_root_and_key(tmp_path: Path) -> None:
    path = dataset(tmp_path / "d", {"a.png": Image.new("RGB", (8, 8))})
    (tmp_path / "d" / "a.png").unlink()
    with raises(ImageError, str(tmp_path / "d" / "a.png"), "not found", "skip_bad_images=true",
                f"image root: {tmp_path / 'd'}", "data.annotations"):  # fmt: skip
        module(path).prepare()


# --- bad image files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("cut.jpg", "truncated or corrupt"),
        ("corrupt.png", "corrupt"),
        ("notes.jpg", "not an image"),
    ],
)
def test_bad_image_is_an_error_naming_the_file(tmp_path: Path, name: str, problem: str) -> None:
    good = {f"ok{i}.png": Image.new("RGB", (8, 8)) for i in range(3)}
    path = dataset(tmp_path / "d", {**good, name: bad_files(tmp_path)[name]})
    dm = module(path)
    # A file that is not an image shows it in its header, read before training; broken pixel
    # data only when the image is decoded.
    with raises(ImageError, str(tmp_path / "d" / name), problem):
        dm.setup()
        for _ in dm.train_dataloader():
            pass


def test_bad_images_skipped_and_counted(tmp_path: Path, caplog) -> None:
    good = {f"ok{i}.png": Image.new("RGB", (8, 8)) for i in range(3)}
    path = dataset(tmp_path / "d", {**good, **bad_files(tmp_path), "empty.png": b""})
    (tmp_path / "d" / "ok0.png").unlink()  # listed, but missing
    dm = module(path, skip_bad_images=True)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert dm.skipped_images == {"train": 5, "dev": 0, "test": 0}
    assert "train: skipped 2 images that are missing or empty" in caplog.text
    assert "train: skipped 1 images that are not readable images" in caplog.text  # notes.jpg
    assert "train: skipped 2 images that cannot be decoded (data.skip_bad_images=true)" in (
        caplog.text
    )
    assert [r.image_id for r in dm.records["train"]] == ["ok1.png", "ok2.png"]
    batches = list(dm.train_dataloader())
    assert sum(len(b.indices) for b in batches) == 2


# --- images over data.max_image_pixels ----------------------------------------------------


def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any decoding of pixel data fail the test: only headers may be read."""

    def load(self):  # noqa: ANN001, ANN202
        raise AssertionError(f"{self.filename} was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_image_over_max_image_pixels_is_reported_before_any_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = {f"ok{i}.png": Image.new("RGB", (8, 8)) for i in range(2)}
    path = dataset(tmp_path / "d", {**good, "wide.png": Image.new("RGB", (300, 200))})
    no_decoding(monkeypatch)
    with raises(ImageError, str(tmp_path / "d" / "wide.png"), "300x200 = 60,000 pixels",
                "limit of 50,000 pixels (data.max_image_pixels)", "decompression bomb",
                "raise data.max_image_pixels", "1 of 3 images of split 'train'",
                "data.skip_bad_images=true"):  # fmt: skip
        module(path, max_image_pixels=50_000).prepare()


def test_images_over_max_image_pixels_are_skipped_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    good = {f"ok{i}.png": Image.new("RGB", (8, 8)) for i in range(2)}
    path = dataset(tmp_path / "d", {**good, "wide.png": Image.new("RGB", (300, 200))})
    no_decoding(monkeypatch)
    dm = module(path, max_image_pixels=50_000, skip_bad_images=True)
    with caplog.at_level(logging.WARNING):
        dm.prepare()
    assert [r.image_id for r in dm.records["train"]] == ["ok0.png", "ok1.png"]
    assert dm.skipped_images == {"train": 1, "dev": 0, "test": 0}
    assert "train: skipped 1 images" in caplog.text
    assert "data.max_image_pixels=50000" in caplog.text and "wide.png" in caplog.text


def test_genuine_image_over_pillows_limit_passes_the_default_limit(tmp_path: Path) -> None:
    # The 10561x16000 PNG (169 million pixels; Pillow refuses over 89 million): a
    # one-bit image keeps the file at 20 KB. Its header passes data.max_image_pixels's default.
    big = Image.new("1", (10561, 16000))
    path = dataset(tmp_path / "d", {"ok.png": Image.new("RGB", (8, 8)), "scan.png": big})
    del big
    dm = module(path)
    dm.prepare()
    assert [r.image_id for r in dm.records["train"]] == ["ok.png", "scan.png"]
    # null keeps Pillow's limit: refused up front, with the key that raises it.
    with raises(ImageError, "scan.png", "10561x16000", "89,478,485", "data.max_image_pixels"):
        module(path, max_image_pixels=None).prepare()


def test_genuine_image_over_pillows_limit_is_decoded_and_resized(tmp_path: Path) -> None:
    # 9500x9500 = 90 million pixels, just over Pillow's limit: decoded, within the default.
    path = dataset(tmp_path / "d", {"scan.png": Image.new("1", (9500, 9500), 1)})
    dm = module(path)
    dm.setup()
    pixels = dm.datasets["train"].source[0]
    assert pixels.shape == (3, SIZE, SIZE) and pixels.isfinite().all()


def test_max_image_pixels_is_applied_in_loader_workers(tmp_path: Path) -> None:
    path = dataset(tmp_path / "d", {f"ok{i}.png": Image.new("RGB", (8, 8)) for i in range(2)})
    dm = module(path, max_image_pixels=5_000, num_workers=1)
    dm.setup()
    # The file grows after the header check (a worker reads it as it is then).
    Image.new("RGB", (100, 100)).save(tmp_path / "d" / "ok1.png")
    with raises(ImageError, str(tmp_path / "d" / "ok1.png"), "100x100", "data.max_image_pixels"):
        for _ in dm.train_dataloader():
            pass


@pytest.mark.parametrize("value", [0, -5, True, 2.5, "many"])
def test_max_image_pixels_must_be_a_positive_integer(tmp_path: Path, value: object) -> None:
    with raises(ValueError, "data.max_image_pixels must be a positive number of pixels"):
        module(tmp_path / "d.json", max_image_pixels=value)


# --- odd modes and sizes --------------------------------------------------------------------


def odd_images() -> dict[str, Image.Image]:
    palette = Image.new("P", (20, 10))
    palette.putpalette([255, 0, 0, 0, 0, 255] * 128)
    transparent = Image.new("P", (10, 10))
    transparent.info["transparency"] = 0
    sixteen = Image.fromarray(np.full((12, 7), 40000, dtype=np.uint16))
    return {
        "grey.png": Image.new("L", (10, 20), 128),
        "bilevel.png": Image.new("1", (10, 10), 1),
        "rgba.png": Image.new("RGBA", (10, 10), (0, 0, 0, 0)),
        "palette.png": palette,
        "palette_alpha.png": transparent,
        "cmyk.jpg": Image.new("CMYK", (15, 15), (0, 255, 255, 0)),
        "sixteen.png": sixteen,
        "huge.png": Image.new("RGB", (6000, 4000), (0, 128, 255)),
        "tiny.png": Image.new("RGB", (1, 1)),
    }


def test_odd_modes_and_huge_images_are_converted_and_resized(tmp_path: Path) -> None:
    path = dataset(tmp_path / "d", odd_images())
    dm = module(path)
    dm.setup()
    source = dm.datasets["train"].source
    assert len(source) == len(odd_images())
    for i, record in enumerate(source.records):
        pixels = source[i]
        assert pixels.shape == (3, SIZE, SIZE), record.path
        assert pixels.isfinite().all(), record.path
    white = source[[r.image_id for r in source.records].index("rgba.png")]
    assert white.mean() > 1.0  # transparency composited on white (normalised > 0)


# --- malformed annotation files -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "d.json",
            json.dumps({"images": [entry("a.png"), {"split": "train", "sentences": []}]}),
            ["images[1].filename", "missing"],
        ),
        (
            "d.json",
            json.dumps({"images": [entry("a.png") | {"sentences": [{"tokens": "x"}]}]}),
            ["images[0].sentences[0].tokens", "list of strings"],
        ),
        (
            "d.json",
            json.dumps({"images": [{"filename": 3, "split": "train"}]}),
            ["images[0].filename", "string", "found 3"],
        ),
        ("d.csv", "image,text\na.png,a cat\n", [":1:", "lacks 'caption'"]),
        ("d.csv", "image,caption,split\na.png,cat,train\n,dog,train\n", [":3:", "empty 'image'"]),
        ("d.jsonl", '{"image": "a.png", "caption": 5}\n', [":1:", "'caption'", "string", "5"]),
    ],
)
def test_malformed_annotations_name_file_entry_and_field(
    tmp_path: Path, name: str, text: str, expected: list[str]
) -> None:
    path = tmp_path / name
    path.write_text(text)
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with raises(AnnotationError, str(path), *expected):
        module(path).prepare()
