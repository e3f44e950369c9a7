"""Tests for the synthetic captioning scenes (seq2seq.datasets.scenes)."""

from __future__ import annotations

import json
import random
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from seq2seq.datasets.scenes import (
    COLOURS,
    FORMAT_VERSION,
    JSON_NAME,
    SHAPES,
    SIZES,
    STAMP_NAME,
    VOCAB,
    ScenesConfig,
    describe_scene,
    generate_scene,
    main,
    true_captions,
    write_scenes,
)

TINY = ScenesConfig(seed=3, n_train=20, n_val=5, n_test=5)
RELATIONS = ("above", "below", "left of", "right of", "next to")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scenes")
    write_scenes(out, TINY)
    return out


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    """Many scenes straight from generate_scene, for the properties that must always hold."""
    rng = random.Random(0)
    return [generate_scene(rng, TINY)[1] for _ in range(300)]


def load(out: Path) -> dict[str, Any]:
    return json.loads((out / JSON_NAME).read_text(encoding="utf-8"))


def centre(box: list[int]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def find(objects: list[dict[str, Any]], colour: str, shape: str) -> dict[str, Any]:
    (obj,) = [o for o in objects if o["colour"] == colour and o["shape"] == shape]
    return obj


def parse_relation(tokens: list[str]) -> tuple[tuple[str, str], str, tuple[str, str]] | None:
    """((colour, shape), relation, (colour, shape)) of a relational caption, else None."""
    for k in range(len(tokens)):
        rel = next((r for r in RELATIONS if tokens[k : k + len(r.split())] == r.split()), None)
        if rel is None:
            continue
        before, after = tokens[:k], tokens[k + len(rel.split()) :]
        i = max(n for n, w in enumerate(before) if w in SHAPES)
        j = min(n for n, w in enumerate(after) if w in SHAPES)
        # Relations always name colours, so each side picks out exactly one object.
        assert before[i - 1] in COLOURS and after[j - 1] in COLOURS, tokens
        return (before[i - 1], before[i]), rel, (after[j - 1], after[j])
    return None


def relation_holds(a: list[int], rel: str, b: list[int], size: int) -> bool:
    (ax, ay), (bx, by) = centre(a), centre(b)
    dx, dy = bx - ax, by - ay
    vertical, horizontal = abs(dx) < abs(dy) / 2, abs(dy) < abs(dx) / 2
    return {
        "above": vertical and a[3] <= b[1],
        "below": vertical and b[3] <= a[1],
        "left of": horizontal and a[2] <= b[0],
        "right of": horizontal and b[2] <= a[0],
        # Neighbours: side by side with less than a grid cell between them.
        "next to": horizontal and max(b[0] - a[2], a[0] - b[2]) < size / 3,
    }[rel]


# --- determinism ----------------------------------------------------------------------------
def test_same_seed_same_bytes_different_seed_differs(tiny_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_scenes(again, TINY)
    assert (again / JSON_NAME).read_bytes() == (tiny_dir / JSON_NAME).read_bytes()
    for path in sorted((tiny_dir / "images").iterdir()):
        assert (again / "images" / path.name).read_bytes() == path.read_bytes()
    other = tmp_path / "other"
    write_scenes(other, ScenesConfig(seed=4, n_train=20, n_val=5, n_test=5))
    a, b = load(tiny_dir)["images"], load(other)["images"]
    assert [im["sentences"] for im in a] != [im["sentences"] for im in b]
    assert (other / "images" / "train_000000.png").read_bytes() != (
        tiny_dir / "images" / "train_000000.png"
    ).read_bytes()


def test_generate_scene_is_a_function_of_the_rng_state() -> None:
    (im1, r1), (im2, r2) = (generate_scene(random.Random(9), TINY) for _ in range(2))
    assert im1.tobytes() == im2.tobytes() and r1 == r2
    assert im1.size == (96, 96) and im1.mode == "RGB"


# --- captions -------------------------------------------------------------------------------
def test_captions_use_the_vocabulary(records: list[dict[str, Any]]) -> None:
    for rec in records:
        raws = [s["raw"] for s in rec["sentences"]]
        assert len(raws) == TINY.captions_per_image == len(set(raws))
        for s in rec["sentences"]:
            assert s["tokens"] == s["raw"].split() and s["raw"] == " ".join(s["tokens"])
            assert set(s["tokens"]) <= VOCAB, s["raw"]
            pairs = pairwise(s["tokens"])
            assert all((w[0] in "aeiou") == (det == "an") for det, w in pairs if det in ("a", "an"))


def test_stated_relations_are_geometrically_true(records: list[dict[str, Any]]) -> None:
    seen = set()
    for rec in records:
        for s in rec["sentences"]:
            parsed = parse_relation(s["tokens"])
            if parsed is None:
                continue
            (ca, sa), rel, (cb, sb) = parsed
            a, b = find(rec["objects"], ca, sa), find(rec["objects"], cb, sb)
            assert relation_holds(a["box"], rel, b["box"], TINY.image_size), (s["raw"], rec)
            seen.add(rel)
    assert seen == set(RELATIONS)  # every relation occurs in 300 scenes


def test_objects_inside_image_apart_and_distinct(records: list[dict[str, Any]]) -> None:
    counts = set()
    for rec in records:
        objs = rec["objects"]
        counts.add(len(objs))
        assert len({(o["colour"], o["shape"]) for o in objs}) == len(objs)
        for o in objs:
            x0, y0, x1, y1 = o["box"]
            assert 0 <= x0 < x1 <= TINY.image_size and 0 <= y0 < y1 <= TINY.image_size
            assert o["shape"] in SHAPES and o["colour"] in COLOURS and o["size"] in SIZES
        for i, a in enumerate(objs):
            for b in objs[i + 1 :]:
                (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a["box"], b["box"]
                assert ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0, rec
    assert counts == {1, 2, 3}


def test_pixel_at_box_centre_has_the_objects_colour(tiny_dir: Path) -> None:
    for im in load(tiny_dir)["images"]:
        with Image.open(tiny_dir / im["filepath"] / im["filename"]) as image:
            assert image.mode == "RGB" and image.size == (96, 96)
            for o in im["objects"]:
                x0, y0, x1, y1 = o["box"]
                assert image.getpixel(((x0 + x1) // 2, (y0 + y1) // 2)) == COLOURS[o["colour"]]


def test_hand_picked_scenes_give_the_expected_words() -> None:
    config = ScenesConfig(captions_per_image=200)
    circle = {"shape": "circle", "colour": "red", "size": "small", "box": [41, 9, 55, 23]}
    square = {"shape": "square", "colour": "blue", "size": "large", "box": [35, 35, 61, 61]}
    caps = describe_scene([circle, square], random.Random(1), config)
    assert "a small red circle above a large blue square" in caps
    assert "the blue square is below the red circle" in caps
    assert "a small red circle at the top" in caps and "a large square in the centre" in caps
    assert "two objects : a red circle and a blue square" in caps
    assert not any(r in c for c in caps for r in ("left of", "right of", "next to"))

    star = {"shape": "star", "colour": "orange", "size": "large", "box": [3, 67, 29, 93]}
    caps = describe_scene([star], random.Random(1), config)
    assert "there is an orange star in the bottom left corner" in caps
    assert "one object : a large orange star" in caps
    assert not any("a orange" in c or "above" in c for c in caps)

    left = {"shape": "cross", "colour": "green", "size": "small", "box": [9, 41, 23, 55]}
    right = {"shape": "triangle", "colour": "yellow", "size": "small", "box": [73, 41, 87, 55]}
    caps = describe_scene([left, square, right], random.Random(1), config)
    assert "a green cross left of a yellow triangle" in caps
    assert "a blue square next to a yellow triangle" in caps
    stated = {parse_relation(c.split()) for c in caps}
    assert (("green", "cross"), "next to", ("blue", "square")) in stated
    assert (("green", "cross"), "next to", ("yellow", "triangle")) not in stated  # 2 cells apart
    assert any(c.startswith("three ") for c in caps)


def test_true_captions_hold_every_sampled_caption_and_nothing_false() -> None:
    rng = random.Random(11)
    for _ in range(100):
        _, record = generate_scene(rng)
        truths = true_captions(record["objects"], ScenesConfig().image_size)
        assert {s["raw"] for s in record["sentences"]} <= truths
        assert all(set(c.split()) <= VOCAB for c in truths)
    circle = {"shape": "circle", "colour": "red", "size": "small", "box": [41, 9, 55, 23]}
    square = {"shape": "square", "colour": "blue", "size": "large", "box": [35, 35, 61, 61]}
    truths = true_captions([circle, square], 96)
    assert "a small red circle above a large blue square" in truths
    assert "a small red circle below a large blue square" not in truths  # false relation
    assert "a small blue circle above a large blue square" not in truths  # wrong colour
    assert "three objects : a red circle and a blue square" not in truths  # wrong count
    assert "a picture of a large blue square and a small red circle" in truths  # any order


# --- files ----------------------------------------------------------------------------------
def test_json_schema_and_split_counts(tiny_dir: Path) -> None:
    data = load(tiny_dir)
    assert data["dataset"] == "scenes"
    images = data["images"]
    assert [im["split"] for im in images] == ["train"] * 20 + ["val"] * 5 + ["test"] * 5
    sentids = []
    for imgid, im in enumerate(images):
        assert set(im) == {
            "filename",
            "filepath",
            "split",
            "imgid",
            "sentids",
            "sentences",
            "objects",
        }
        assert im["filepath"] == "images" and im["imgid"] == imgid
        assert im["filename"].startswith(im["split"] + "_") and im["filename"].endswith(".png")
        assert (tiny_dir / "images" / im["filename"]).is_file()
        for s in im["sentences"]:
            assert set(s) == {"raw", "tokens", "imgid", "sentid"} and s["imgid"] == imgid
        assert im["sentids"] == [s["sentid"] for s in im["sentences"]]
        sentids += im["sentids"]
        for o in im["objects"]:
            assert set(o) == {"shape", "colour", "size", "box"}
    assert sentids == list(range(len(images) * 5))
    assert len(list((tiny_dir / "images").iterdir())) == 30


def test_writing_is_idempotent(tmp_path: Path) -> None:
    config = ScenesConfig(seed=5, n_train=4, n_val=2, n_test=2)
    json_path = write_scenes(tmp_path, config)
    image = tmp_path / "images" / "val_000001.png"
    stamp = json.loads((tmp_path / STAMP_NAME).read_text(encoding="utf-8"))
    assert stamp["format_version"] == FORMAT_VERSION and stamp["seed"] == 5
    before = json_path.stat().st_mtime_ns, image.stat().st_mtime_ns
    assert write_scenes(tmp_path, config) == json_path
    assert (json_path.stat().st_mtime_ns, image.stat().st_mtime_ns) == before
    # A missing image or a different config regenerates.
    image.unlink()
    write_scenes(tmp_path, config)
    assert image.is_file() and json_path.stat().st_mtime_ns != before[0]
    write_scenes(tmp_path, ScenesConfig(seed=5, n_train=6, n_val=2, n_test=2))
    assert len(load(tmp_path)["images"]) == 10
    assert not list(tmp_path.glob(".*.tmp"))


def test_splits_are_prefix_stable(tiny_dir: Path, tmp_path: Path) -> None:
    write_scenes(tmp_path, ScenesConfig(seed=3, n_train=10, n_val=5, n_test=3))
    small, big = load(tmp_path)["images"], load(tiny_dir)["images"]
    key = lambda ims, split: [(i["filename"], i["objects"]) for i in ims if i["split"] == split]
    assert key(small, "train") == key(big, "train")[:10]
    assert key(small, "test") == key(big, "test")[:3]


def test_cli_prints_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(tmp_path), "--seed", "2", "--n-train", "3", "--n-val", "1", "--n-test", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "train: 3 images, 15 captions" in out and "test: 2 images, 10 captions" in out


@pytest.mark.parametrize(
    "bad", [{"image_size": 32}, {"max_objects": 4}, {"captions_per_image": 0}, {"n_val": -1}]
)
def test_bad_config_is_rejected(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ScenesConfig(**bad)
