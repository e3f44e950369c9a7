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
from PIL import Image

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
    dm.setup()
    with raises(ImageError, str(tmp_path / "d" / name), problem):
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
    assert "train: skipped 3 images that cannot be decoded (data.skip_bad_images=true)" in (
        caplog.text
    )
    assert [r.image_id for r in dm.records["train"]] == ["ok1.png", "ok2.png"]
    batches = list(dm.train_dataloader())
    assert sum(len(b.indices) for b in batches) == 2


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
