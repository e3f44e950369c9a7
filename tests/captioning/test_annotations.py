"""Tests for caption annotation readers and image loading."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from seq2seq.captioning.annotations.karpathy import read_karpathy
from seq2seq.captioning.annotations.reader import read_annotations
from seq2seq.captioning.annotations.records import (
    AnnotationError,
    ImageRecord,
    normalise_caption,
    split_records,
)
from seq2seq.captioning.annotations.tables import read_table
from seq2seq.captioning.images import ImageError, check_images, load_image

# --- helpers --------------------------------------------------------------------------------


def sentence(text: str) -> dict[str, Any]:
    return {"raw": text, "tokens": text.lower().rstrip(".").split()}


def karpathy_image(filename: str, split: str = "train", *texts: str, **extra: Any) -> dict:
    texts = texts or ("A cat.",)
    entry = {"filename": filename, "split": split, "sentences": [sentence(t) for t in texts]}
    return entry | extra


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def write_karpathy(tmp_path: Path, images: list[Any]) -> Path:
    return write_json(tmp_path / "dataset_test.json", {"dataset": "test", "images": images})


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    return write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def raises(exc: type[Exception], *parts: str):
    """pytest.raises matching all ``parts`` literally, in order."""
    return pytest.raises(exc, match=".*".join(re.escape(p) for p in parts))


# --- normalise_caption ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A dog, running.", "a dog , running"),
        ("  Two   DOGS!  ", "two dogs !"),
        ("The dog's t-shirt costs 2.50 dollars...", "the dog's t-shirt costs 2.50 dollars"),
        ("a (small) cat", "a ( small ) cat"),
        (" . ", ""),
    ],
)
def test_normalise_caption(raw: str, expected: str) -> None:
    assert normalise_caption(raw) == expected


# --- Karpathy JSON --------------------------------------------------------------------------


def test_karpathy_paths_captions_restval_and_objects(tmp_path: Path) -> None:
    objects = [{"shape": "circle", "colour": "red", "size": "small", "box": [1, 2, 5, 6]}]
    images = [
        karpathy_image("a.jpg", "train", "A cat.", "Cat on a MAT", objects=objects),
        karpathy_image("b.jpg", "val", filepath="val2014"),
        {"filename": "c.jpg", "split": "test", "sentences": [{"raw": "A Dog, running."}]},
        {"filename": "d.jpg", "split": "test", "sentences": [{"raw": "x", "tokens": []}]},
        karpathy_image("e.jpg", "restval", width=64, height=48),
    ]
    path = write_karpathy(tmp_path, images)
    records = read_karpathy(path, tmp_path / "imgs")
    assert [r.image_id for r in records] == ["a.jpg", "val2014/b.jpg", "c.jpg", "d.jpg", "e.jpg"]
    assert records[1].path == tmp_path / "imgs" / "val2014" / "b.jpg"
    assert records[0].captions == ("a cat", "cat on a mat")
    assert records[0].objects == tuple(objects)
    assert records[1].objects == ()
    assert records[2].captions == ("a dog , running",)  # raw, normalised
    assert records[3].captions == ("x",)  # empty tokens fall back to raw
    assert [r.split for r in records] == ["train", "val", "test", "test", "train"]
    assert records[4].size == (64, 48) and records[0].size is None

    assert read_karpathy(path, tmp_path, restval="val")[-1].split == "val"
    assert [r.image_id for r in read_karpathy(path, tmp_path, restval="skip")][-1] == "d.jpg"
    with pytest.raises(ValueError, match="restval"):
        read_karpathy(path, tmp_path, restval="dev")


def test_karpathy_reads_scenes_json(tmp_path: Path) -> None:
    from seq2seq.datasets.scenes import ScenesConfig, write_scenes

    json_path = write_scenes(tmp_path, ScenesConfig(n_train=3, n_val=1, n_test=1))
    records = read_annotations(json_path, tmp_path)
    assert len(records) == 5 and all(r.path.is_file() and r.objects for r in records)
    assert {s: len(rs) for s, rs in split_records(records).items()} == {
        "train": 3,
        "val": 1,
        "test": 1,
    }


@pytest.mark.parametrize(
    ("images", "expected"),
    [
        ("nope", ["images", "list", "found"]),
        (["a.jpg"], ["images[0]", "expected an object"]),
        ([{"split": "train", "sentences": [sentence("a")]}], ["images[0].filename", "missing"]),
        ([{"filename": 3, "split": "train"}], ["images[0].filename", "string", "found 3"]),
        ([karpathy_image("a.jpg", "dev")], ["images[0].split", "train, val, test", '"dev"']),
        ([{"filename": "a.jpg", "split": "train"}], ["images[0].sentences", "non-empty list"]),
        ([karpathy_image("a.jpg") | {"sentences": []}], ["images[0].sentences", "empty list"]),
        (
            [karpathy_image("a.jpg"), karpathy_image("b.jpg") | {"sentences": [{"tokens": "x"}]}],
            ["images[1].sentences[0].tokens", "list of strings"],
        ),
        (
            [karpathy_image("a.jpg") | {"sentences": [sentence("ok"), {"raw": " ", "tokens": []}]}],
            ["images[0].sentences[1]", "'tokens' or 'raw'"],
        ),
        (
            [karpathy_image("a.jpg", filepath="d"), karpathy_image("a.jpg", filepath="d")],
            ["images[1]", "duplicate image 'd/a.jpg'", "images[0]"],
        ),
        ([karpathy_image("a.jpg", objects={"x": 1})], ["images[0].objects", "list of objects"]),
        ([karpathy_image("a.jpg", width=3)], ["images[0].height", "positive integer"]),
    ],
)
def test_karpathy_errors(tmp_path: Path, images: Any, expected: list[str]) -> None:
    path = write_karpathy(tmp_path, images)
    with raises(AnnotationError, str(path), *expected):
        read_karpathy(path, tmp_path)


def test_karpathy_invalid_json_and_missing_file(tmp_path: Path) -> None:
    path = write_text(tmp_path / "bad.json", '{"images": [\n  {"filename": "a.jpg",,}\n]}')
    with raises(AnnotationError, f"{path}:2:", "not valid JSON"):
        read_karpathy(path, tmp_path)
    with raises(AnnotationError, f"{path}:2:", "not valid JSON"):
        read_annotations(path, tmp_path)
    with raises(AnnotationError, "missing.json", "file not found"):
        read_karpathy(tmp_path / "missing.json", tmp_path)
    top = write_json(tmp_path / "top.json", [1, 2])
    with raises(AnnotationError, str(top), "'images' list", "a list of 2"):
        read_karpathy(top, tmp_path)


# --- Tables ---------------------------------------------------------------------------------


def test_csv_groups_references_in_first_seen_order(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "caps.csv",
        "\ufeffsplit,Image,caption\n"
        'train,b.jpg,"A dog, running."\n'
        "train,a.jpg,A cat\n"
        "\n"
        "train,b.jpg,Another Dog\n"
        'val,sub/c.png,"He said ""hi"""\n',
    )
    records = read_table(path, tmp_path)
    assert [r.image_id for r in records] == ["b.jpg", "a.jpg", "sub/c.png"]
    assert records[0].captions == ("a dog , running", "another dog")
    assert records[2].captions == ('he said " hi "',)
    assert records[2].path == tmp_path / "sub" / "c.png"
    assert [r.split for r in records] == ["train", "train", "val"]


def test_tsv_keeps_quotes_and_uses_default_split(tmp_path: Path) -> None:
    path = write_text(tmp_path / "caps.tsv", 'image\tcaption\na.jpg\t"quoted" cat\n')
    (record,) = read_annotations(path, tmp_path, default_split="test")
    assert record.captions == ('" quoted " cat',) and record.split == "test"
    with raises(AnnotationError, f"{path}:2:", "no split", "default_split"):
        read_table(path, tmp_path)
    with pytest.raises(ValueError, match="default_split"):
        read_table(path, tmp_path, default_split="dev")


def test_jsonl_groups_references(tmp_path: Path) -> None:
    rows = [
        {"image": "a.jpg", "caption": "One.", "split": "train"},
        {"image": "b.jpg", "caption": "Two", "split": "val"},
        {"image": "a.jpg", "caption": "Three", "split": "train"},
    ]
    for name in ("caps.jsonl", "caps.json"):
        path = write_jsonl(tmp_path / name, rows)
        records = read_annotations(path, tmp_path)
        assert [(r.image_id, r.split, r.captions) for r in records] == [
            ("a.jpg", "train", ("one", "three")),
            ("b.jpg", "val", ("two",)),
        ]
    single = write_jsonl(tmp_path / "one.json", rows[:1])
    assert read_annotations(single, tmp_path)[0].captions == ("one",)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("t.csv", "", ["empty file", "header"]),
        ("t.csv", "img,caption\na.jpg,x\n", [":1:", "lacks 'image'", "['img', 'caption']"]),
        ("t.csv", "image,caption,image\n", [":1:", "repeats 'image'"]),
        ("t.csv", "image,caption\na.jpg,x\nb.jpg, . \n", [":3:", "empty 'caption'", "b.jpg"]),
        ("t.csv", "image,caption\na.jpg,x,y\n", [":2:", "expected 2 comma-separated fields"]),
        ("t.csv", 'image,caption\n"a.jpg"x,y\n', [":2:", "malformed"]),
        ("t.tsv", "image\tcaption\n\tx\n", [":2:", "empty 'image'"]),
        (
            "t.csv",
            "image,caption,split\na.jpg,x,train\nb.jpg,y,dev\n",
            [":3:", "'dev'", "train, val, test"],
        ),
        (
            "t.csv",
            "image,caption,split\na.jpg,x,train\nb.jpg,y,val\na.jpg,z,test\n",
            [":4:", "'a.jpg'", "'test'", "'train' on line 2"],
        ),
        ("t.jsonl", '{"image": "a.jpg", "caption": "x"}\n{"image": \n', [":2:", "not valid JSON"]),
        ("t.jsonl", '\n["a.jpg", "x"]\n', [":2:", "expected an object", "a list of 2"]),
        ("t.jsonl", '{"image": "a.jpg", "caption": 5}\n', [":1:", "'caption'", "string", "5"]),
        ("t.jsonl", '{"image": "a.jpg"}\n', [":1:", "'caption'", "key missing"]),
        ("t.jsonl", '{"image": "a.jpg", "caption": "x", "split": 1}\n', [":1:", "'split'"]),
    ],
)
def test_table_errors(tmp_path: Path, name: str, text: str, expected: list[str]) -> None:
    path = write_text(tmp_path / name, text)
    with raises(AnnotationError, str(path), *expected):
        read_table(path, tmp_path, default_split="train")


def test_table_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"image,caption\na.jpg,caf\xe9\n")
    with raises(AnnotationError, f"{path}:2:", "invalid UTF-8", "expected UTF-8"):
        read_table(path, tmp_path, default_split="train")


def test_unknown_extension(tmp_path: Path) -> None:
    path = write_text(tmp_path / "caps.xml", "<x/>")
    with raises(AnnotationError, str(path), "'.xml'", ".json, .jsonl, .csv, .tsv"):
        read_annotations(path, tmp_path)
    with raises(AnnotationError, str(path), ".csv"):
        read_table(path, tmp_path)
    other = write_json(tmp_path / "other.json", {"annotations": []})
    with raises(AnnotationError, str(other), "'images' list"):
        read_annotations(other, tmp_path)


# --- check_images / split_records -----------------------------------------------------------


def test_check_images_error_and_skip(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "ok.png")
    (tmp_path / "empty.png").touch()
    (tmp_path / "dir.png").mkdir()
    names = ["ok.png", "gone.png", "empty.png", "dir.png"]
    records = [ImageRecord(n, tmp_path / n, "train", ("a cat",)) for n in names]
    with raises(ImageError, str(tmp_path / "gone.png"), "not found", "3 of 4", "on_missing=skip"):
        check_images(records)
    kept, skipped = check_images(records, on_missing="skip")
    assert [r.image_id for r in kept] == ["ok.png"]
    assert [r.image_id for r in skipped] == ["gone.png", "empty.png", "dir.png"]
    assert check_images(records[:1]) == (records[:1], [])
    with pytest.raises(ValueError, match="on_missing"):
        check_images(records, on_missing="ignore")


def test_image_record_validates() -> None:
    with pytest.raises(ValueError, match="split"):
        ImageRecord("a", Path("a"), "dev", ("x",))
    with pytest.raises(ValueError, match="caption"):
        ImageRecord("a", Path("a"), "train", ())


# --- load_image -----------------------------------------------------------------------------


def rgb(image: Image.Image, xy: tuple[int, int] = (0, 0)) -> tuple[int, int, int]:
    assert image.mode == "RGB"
    return image.getpixel(xy)


def test_load_image_grey_and_bilevel(tmp_path: Path) -> None:
    Image.new("L", (3, 2), 77).save(tmp_path / "l.png")
    Image.new("1", (3, 2), 1).save(tmp_path / "one.png")
    assert rgb(load_image(tmp_path / "l.png")) == (77, 77, 77)
    assert rgb(load_image(str(tmp_path / "one.png"))) == (255, 255, 255)
    assert load_image(tmp_path / "l.png").size == (3, 2)


def test_load_image_alpha_becomes_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (2, 1), (200, 10, 10, 255))
    rgba.putpixel((1, 0), (0, 0, 0, 0))  # transparent black, as in emoji PNGs
    rgba.save(tmp_path / "rgba.png")
    image = load_image(tmp_path / "rgba.png")
    assert rgb(image) == (200, 10, 10) and rgb(image, (1, 0)) == (255, 255, 255)

    la = Image.new("LA", (1, 1), (0, 0))
    la.save(tmp_path / "la.png")
    assert rgb(load_image(tmp_path / "la.png")) == (255, 255, 255)


def test_load_image_palette(tmp_path: Path) -> None:
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 10, 120, 30] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "p.png")
    assert rgb(load_image(tmp_path / "p.png"), (1, 0)) == (10, 120, 30)
    assert rgb(load_image(tmp_path / "p.png")) == (0, 0, 0)

    palette.save(tmp_path / "pt.png", transparency=0)
    palette.save(tmp_path / "pt.gif", transparency=0)
    for name in ("pt.png", "pt.gif"):
        image = load_image(tmp_path / name)
        assert rgb(image) == (255, 255, 255) and rgb(image, (1, 0)) == (10, 120, 30)


def test_load_image_cmyk_jpeg(tmp_path: Path) -> None:
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg")
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    assert all(v > 245 for v in rgb(load_image(tmp_path / "cmyk.jpg")))


def test_load_image_16_bit_and_float(tmp_path: Path) -> None:
    deep = Image.new("I;16", (3, 1))
    deep.putpixel((1, 0), 32768)
    deep.putpixel((2, 0), 65535)
    deep.save(tmp_path / "deep.png")
    image = load_image(tmp_path / "deep.png")
    assert [rgb(image, (x, 0))[0] for x in range(3)] == [0, 128, 255]

    floats = Image.new("F", (2, 1), 0.0)
    floats.putpixel((1, 0), 1.0)
    floats.save(tmp_path / "f.tif")
    image = load_image(tmp_path / "f.tif")
    assert [rgb(image, (x, 0))[0] for x in range(2)] == [0, 255]


def test_load_image_applies_exif_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    Image.new("RGB", (8, 4), (0, 90, 200)).save(tmp_path / "phone.jpg", exif=exif)
    assert load_image(tmp_path / "phone.jpg").size == (4, 8)


def test_load_image_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.effect_noise((64, 64), 60).convert("RGB").save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    write_text(tmp_path / "notes.jpg", "not an image\n")
    (tmp_path / "empty.png").touch()
    (tmp_path / "folder").mkdir()
    cases = {
        "cut.jpg": "truncated or corrupt",
        "notes.jpg": "not an image file",
        "empty.png": "empty file",
        "folder": "is a directory",
        "missing.png": "not found",
    }
    for name, problem in cases.items():
        with raises(ImageError, str(tmp_path / name), problem):
            load_image(tmp_path / name)

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 4096 px: over, not twice over
    with raises(ImageError, str(tmp_path / "full.jpg"), "decompression bomb"):
        load_image(tmp_path / "full.jpg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # twice over: error
    with raises(ImageError, str(tmp_path / "full.jpg"), "decompression bomb"):
        load_image(tmp_path / "full.jpg")


def test_load_image_zero_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No common format can store a zero-sized image, so stand in for a decoder that yields one.
    Image.new("RGB", (2, 2)).save(tmp_path / "z.png")
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: Image.new("RGB", (0, 5)))
    with raises(ImageError, str(tmp_path / "z.png"), "zero size"):
        load_image(tmp_path / "z.png")
