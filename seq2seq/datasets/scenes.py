"""Built-in synthetic scenes for image captioning: seeded pictures of a few coloured shapes.

Each image shows one to three objects (a shape, a colour and a size) on a plain or lightly
noisy grey background, with several reference captions from a small grammar::

    a small red circle above a large blue square
    there is a blue square below a red circle
    two objects : a red circle left of a green star
    a purple cross in the top left corner
    three shapes : a small triangle , a large star and a small circle

The scenes exist to compare captioners on a task small enough to train in minutes: a
fixed-vector model (NIC, Show and Tell) has to squeeze every object and relation into one
image vector, while Show, Attend and Tell can look at each object when it names it. Objects sit
in the cells of a 3x3 grid, so relations are never borderline: "above" / "below" are only said
of objects in the same column, "left of" / "right of" of objects in the same row, and "next to"
of horizontal neighbours. Every record keeps each object's bounding box, so attention maps can
be scored against where the object really is (attention correctness, Liu et al. 2017).

:func:`write_scenes` writes the images and a Karpathy-style ``dataset_scenes.json`` (the
format of ``dataset_coco.json``) with an extra ``"objects"`` key per image.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from seq2seq.data.files import atomic_write_text

#: Bump whenever drawing or captioning changes, so stale datasets are regenerated.
FORMAT_VERSION = 1
STAMP_NAME = "scenes_stamp.json"
JSON_NAME = "dataset_scenes.json"
SPLITS = ("train", "val", "test")

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
#: Saturated colours, far from each other and from the grey background.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (40, 160, 50), "blue": (40, 70, 220),
    "yellow": (235, 205, 25), "purple": (140, 50, 170), "orange": (245, 130, 25),
}  # fmt: skip
#: Side of an object's box as a share of a grid cell.
SIZES = {"small": 0.45, "large": 0.8}
FUNCTION_WORDS = (
    "a", "an", "the", "there", "is", "and", ",", ":", "of", "picture",
    "above", "below", "left", "right", "next", "to",
    "in", "at", "on", "top", "bottom", "centre", "corner",
    "one", "two", "three", "object", "objects", "shape", "shapes",
)  # fmt: skip
#: Every word a caption can contain.
VOCAB = frozenset((*FUNCTION_WORDS, *SHAPES, *COLOURS, *SIZES))

_ROWS = ("top", "middle", "bottom")
_COLS = ("left", "centre", "right")
_COUNTS = ("one", "two", "three")
_DETAILS = ("full", "colour", "size")  # which adjectives a noun phrase keeps


@dataclass(frozen=True)
class ScenesConfig:
    """How many scenes to write, how big, and from which seed.

    Attributes:
        seed: data seed; each split draws from its own stream, so changing one split's size
            leaves the others unchanged (and smaller sizes give prefixes of larger ones).
        n_train: training images.
        n_val: validation images.
        n_test: test images.
        image_size: width and height in pixels, at least 48.
        captions_per_image: reference captions per image.
        max_objects: objects per image are drawn uniformly from 1..max_objects (at most 3).
    """

    seed: int = 1234
    n_train: int = 6000
    n_val: int = 500
    n_test: int = 500
    image_size: int = 96
    captions_per_image: int = 5
    max_objects: int = 3

    def __post_init__(self) -> None:
        if min(self.n_train, self.n_val, self.n_test) < 0:
            raise ValueError("split sizes must be non-negative")
        if self.image_size < 48:
            raise ValueError(f"image_size must be at least 48, got {self.image_size}")
        if self.captions_per_image < 1:
            raise ValueError("captions_per_image must be at least 1")
        if not 1 <= self.max_objects <= len(_COUNTS):
            raise ValueError(f"max_objects must be in 1..{len(_COUNTS)}, got {self.max_objects}")


def _grid(size: int) -> tuple[int, int]:
    """Cell side and offset of the centred 3x3 grid."""
    cell = size // 3
    return cell, (size - 3 * cell) // 2


def _layout(rng: random.Random, n: int) -> list[tuple[int, int]]:
    """``n`` distinct (row, col) grid cells."""
    cells = [(rng.randrange(3), rng.randrange(3))]
    while len(cells) < n:
        free = [(r, c) for r in range(3) for c in range(3) if (r, c) not in cells]
        # Only objects sharing a row or column get a relation; favour them so that most
        # multi-object scenes have relational captions.
        aligned = [p for p in free if any(p[0] == q[0] or p[1] == q[1] for q in cells)]
        cells.append(rng.choice(aligned if aligned and rng.random() < 0.8 else free))
    return cells


def _background(rng: random.Random, size: int) -> Image.Image:
    """Plain or lightly noisy light grey, drawn from ``rng`` (Pillow's noise is unseeded)."""
    base, amp = rng.randint(210, 240), rng.choice((0, 0, 10, 20))
    if amp == 0:
        return Image.new("RGB", (size, size), (base,) * 3)
    noise = Image.frombytes("L", (size, size), rng.randbytes(size * size))
    return noise.point(lambda v: base - amp // 2 + v * amp // 255).convert("RGB")


def _draw(draw: ImageDraw.ImageDraw, obj: dict[str, Any]) -> None:
    """Draw one object filling its box."""
    x0, y0, x1, y1 = obj["box"]
    x1, y1 = x1 - 1, y1 - 1  # records use half-open boxes; Pillow's include the last pixel
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    fill, shape = COLOURS[obj["colour"]], obj["shape"]
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    elif shape == "triangle":
        draw.polygon([(x0, y1), (x1, y1), (cx, y0)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)
    elif shape == "star":
        # Ten points alternating between the outer and an inner radius, first one at the top.
        rad = [r if k % 2 == 0 else 0.45 * r for k in range(10)]
        pts = [(cx + q * math.sin(k * math.pi / 5), cy - q * math.cos(k * math.pi / 5))
               for k, q in enumerate(rad)]  # fmt: skip
        draw.polygon(pts, fill=fill)
    else:  # cross
        t = max(1, round(r / 3))
        draw.rectangle((x0, round(cy) - t, x1, round(cy) + t), fill=fill)
        draw.rectangle((round(cx) - t, y0, round(cx) + t, y1), fill=fill)


def _cell(obj: dict[str, Any], size: int) -> tuple[int, int]:
    """The (row, col) grid cell holding the centre of ``obj``'s box."""
    cell, off = _grid(size)
    x0, y0, x1, y1 = obj["box"]
    row, col = ((y0 + y1) // 2 - off) // cell, ((x0 + x1) // 2 - off) // cell
    return min(max(row, 0), 2), min(max(col, 0), 2)


def _np(obj: dict[str, Any], detail: str, det: str = "a") -> str:
    """Noun phrase such as "a small red circle", "an orange star" or "the large cross"."""
    adjectives = {"full": [obj["size"], obj["colour"]], "colour": [obj["colour"]]}
    words = [*adjectives.get(detail, [obj["size"]]), obj["shape"]]
    if det == "a" and words[0][0] in "aeiou":
        det = "an"
    return " ".join([det, *words])


def _where(row: int, col: int) -> str:
    """Where a grid cell lies in the image, e.g. "in the top left corner"."""
    if (row, col) == (1, 1):
        return "in the centre"
    if row == 1:
        return f"on the {_COLS[col]}"
    if col == 1:
        return f"at the {_ROWS[row]}"
    return f"in the {_ROWS[row]} {_COLS[col]} corner"


def _relations(cells: Sequence[tuple[int, int]]) -> list[tuple[int, str, int]]:
    """Every true (i, relation, j) between objects in the given cells."""
    rels = []
    for i, (ri, ci) in enumerate(cells):
        for j, (rj, cj) in enumerate(cells):
            if ci == cj and ri != rj:
                rels.append((i, "above" if ri < rj else "below", j))
            if ri == rj and ci != cj:
                rels.append((i, "left of" if ci < cj else "right of", j))
                if abs(ci - cj) == 1:
                    rels.append((i, "next to", j))
    return rels


def _caption(
    rng: random.Random,
    objects: Sequence[dict[str, Any]],
    cells: Sequence[tuple[int, int]],
    rels: Sequence[tuple[int, str, int]],
) -> str:
    """One caption from a randomly chosen template; true of the scene by construction."""
    n = len(objects)
    kinds = ["single", "where", "count"] + ["list"] * 2 * (n > 1) + ["relation"] * 3 * bool(rels)
    kind, detail = rng.choice(kinds), rng.choice(_DETAILS)
    if kind == "single":
        return rng.choice(("{}", "there is {}", "a picture of {}")).format(
            _np(rng.choice(objects), detail)
        )
    if kind == "where":
        i = rng.randrange(n)
        return rng.choice(("", "there is ")) + f"{_np(objects[i], detail)} {_where(*cells[i])}"
    if kind == "relation":
        i, rel, j = rng.choice(rels)
        # Scenes never repeat a (colour, shape) pair, so a colour keeps "the ..." unambiguous
        # and lets a reader (or a test) tell which objects the relation is about.
        detail = rng.choice(("full", "colour"))
        a, b = _np(objects[i], detail), _np(objects[j], detail)
        forms = [f"{a} {rel} {b}", f"there is {a} {rel} {b}", f"a picture of {a} {rel} {b}"]
        forms.append(f"{_np(objects[i], detail, 'the')} is {rel} {_np(objects[j], detail, 'the')}")
        if n == 2:
            forms.append(f"two {rng.choice(('objects', 'shapes'))} : {a} {rel} {b}")
        return rng.choice(forms)
    phrases = [_np(o, detail) for o in rng.sample(list(objects), n)]
    listing = phrases[0] if n == 1 else " , ".join(phrases[:-1]) + " and " + phrases[-1]
    if kind == "list":
        return rng.choice(("{}", "a picture of {}")).format(listing)
    noun = rng.choice(("object", "shape") if n == 1 else ("objects", "shapes"))
    return f"{_COUNTS[n - 1]} {noun} : {listing}"


def true_captions(objects: Sequence[dict[str, Any]], image_size: int) -> set[str]:
    """Every caption the grammar can say of a scene: all templates, details, orders and
    relations that :func:`describe_scene` draws from.

    A generated caption in this set is a true, well-formed description of the image, which
    lets a test score say how many images a captioner gets right, not only how close it comes
    to five sampled references.
    """
    n = len(objects)
    cells = [_cell(o, image_size) for o in objects]
    out: set[str] = set()
    for obj, detail in itertools.product(objects, _DETAILS):
        out.update(f.format(_np(obj, detail)) for f in ("{}", "there is {}", "a picture of {}"))
    for i, detail in itertools.product(range(n), _DETAILS):
        out.update(f"{p}{_np(objects[i], detail)} {_where(*cells[i])}" for p in ("", "there is "))
    for (i, rel, j), detail in itertools.product(_relations(cells), ("full", "colour")):
        a, b = _np(objects[i], detail), _np(objects[j], detail)
        out.update((f"{a} {rel} {b}", f"there is {a} {rel} {b}", f"a picture of {a} {rel} {b}"))
        out.add(f"{_np(objects[i], detail, 'the')} is {rel} {_np(objects[j], detail, 'the')}")
        if n == 2:
            out.update(f"two {noun} : {a} {rel} {b}" for noun in ("objects", "shapes"))
    nouns = ("object", "shape") if n == 1 else ("objects", "shapes")
    for order, detail in itertools.product(itertools.permutations(objects), _DETAILS):
        phrases = [_np(o, detail) for o in order]
        listing = phrases[0] if n == 1 else " , ".join(phrases[:-1]) + " and " + phrases[-1]
        if n > 1:
            out.update((listing, f"a picture of {listing}"))
        out.update(f"{_COUNTS[n - 1]} {noun} : {listing}" for noun in nouns)
    return out


def describe_scene(
    objects: Sequence[dict[str, Any]],
    rng: random.Random,
    config: ScenesConfig = ScenesConfig(),  # noqa: B008 (frozen, so sharing it is safe)
) -> list[str]:
    """``config.captions_per_image`` different true captions of a scene.

    Args:
        objects: object records (shape, colour, size, box) laid out on the grid of
            ``config.image_size``, with distinct (colour, shape) pairs.
        rng: random source.
        config: image size and number of captions.

    Returns:
        Lowercase captions of words from :data:`VOCAB`, separated by single spaces. Only if the
        grammar has fewer distinct captions for the scene than asked for are some repeated.
    """
    cells = [_cell(o, config.image_size) for o in objects]
    rels = _relations(cells)
    captions: list[str] = []
    for _ in range(20 * config.captions_per_image):
        caption = _caption(rng, objects, cells, rels)
        if caption not in captions:
            captions.append(caption)
            if len(captions) == config.captions_per_image:
                return captions
    return [captions[k % len(captions)] for k in range(config.captions_per_image)]


def generate_scene(
    rng: random.Random,
    config: ScenesConfig = ScenesConfig(),  # noqa: B008 (frozen, so sharing it is safe)
) -> tuple[Image.Image, dict[str, Any]]:
    """Draw one random scene and caption it.

    Args:
        rng: random source; the same state gives the same scene.
        config: image size, captions per image and maximum number of objects.

    Returns:
        The RGB image and ``{"sentences": [{"raw", "tokens"}, ...], "objects": [{"shape",
        "colour", "size", "box"}, ...]}``; boxes are half-open pixel boxes ``[x0, y0, x1, y1]``
        (as in ``Image.crop``), inside the image and at least two pixels apart.
    """
    cell, off = _grid(config.image_size)
    objects: list[dict[str, Any]] = []
    used: set[tuple[str, str]] = set()
    for row, col in _layout(rng, rng.randint(1, config.max_objects)):
        shape, colour = rng.choice(SHAPES), rng.choice(tuple(COLOURS))
        while (shape, colour) in used:
            shape, colour = rng.choice(SHAPES), rng.choice(tuple(COLOURS))
        used.add((shape, colour))
        size = rng.choice(tuple(SIZES))
        side = round(SIZES[size] * cell)
        # Keep a pixel of margin inside the cell, and keep objects within an eighth of a cell
        # of its centre so that same-row / same-column pairs stay clearly aligned.
        jitter = max(0, min((cell - side) // 2 - 1, cell // 8))
        x0 = off + col * cell + (cell - side) // 2 + rng.randint(-jitter, jitter)
        y0 = off + row * cell + (cell - side) // 2 + rng.randint(-jitter, jitter)
        box = [x0, y0, x0 + side, y0 + side]
        objects.append({"shape": shape, "colour": colour, "size": size, "box": box})
    image = _background(rng, config.image_size)
    draw = ImageDraw.Draw(image)
    for obj in objects:
        _draw(draw, obj)
    captions = describe_scene(objects, rng, config)
    sentences = [{"raw": c, "tokens": c.split()} for c in captions]
    return image, {"sentences": sentences, "objects": objects}


def write_scenes(
    out_dir: str | Path,
    config: ScenesConfig = ScenesConfig(),  # noqa: B008 (frozen, so sharing it is safe)
) -> Path:
    """Write ``out_dir/images/{split}_{i:06d}.png`` and ``out_dir/dataset_scenes.json``.

    The JSON follows Karpathy's split format (``{"dataset": "scenes", "images": [{"filename",
    "filepath": "images", "split", "imgid", "sentids", "sentences": [{"raw", "tokens",
    "imgid", "sentid"}]}]}``) plus an ``"objects"`` list per image. A JSON stamp (config and
    format version) makes the call idempotent: a matching stamp with all files present skips
    generation, anything else regenerates. The JSON is written atomically and the stamp last.

    Args:
        out_dir: directory to write into; created if missing.
        config: sizes, seed and drawing options.

    Returns:
        Path of the JSON file.
    """
    out = Path(out_dir)
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    json_path, stamp_path = out / JSON_NAME, out / STAMP_NAME
    stamp = {"format_version": FORMAT_VERSION, **asdict(config)}
    counts = {"train": config.n_train, "val": config.n_val, "test": config.n_test}
    names = {s: [f"{s}_{i:06d}.png" for i in range(counts[s])] for s in SPLITS}
    try:
        old = json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    present = json_path.is_file() and all(
        (image_dir / n).is_file() for s in SPLITS for n in names[s]
    )
    if old == stamp and present:
        return json_path
    # No stamp may vouch for a half-written mix of old and new files.
    stamp_path.unlink(missing_ok=True)
    images: list[dict[str, Any]] = []
    n_sentences = 0
    for split in SPLITS:
        # One stream per split (string seeds hash deterministically, unlike tuples).
        rng = random.Random(f"scenes:{config.seed}:{split}")
        for name in names[split]:
            image, record = generate_scene(rng, config)
            image.save(image_dir / name)
            imgid, first = len(images), n_sentences
            n_sentences += len(record["sentences"])
            sentences = [
                {**sent, "imgid": imgid, "sentid": first + k}
                for k, sent in enumerate(record["sentences"])
            ]
            images.append({
                "filename": name, "filepath": "images", "split": split, "imgid": imgid,
                "sentids": list(range(first, n_sentences)), "sentences": sentences,
                "objects": record["objects"],
            })  # fmt: skip
    atomic_write_text(json_path, json.dumps({"dataset": "scenes", "images": images}) + "\n")
    atomic_write_text(stamp_path, json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    return json_path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the scenes and print image and caption counts per split."""
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.datasets.scenes", description=main.__doc__
    )
    parser.add_argument("out_dir", type=Path)
    for f in fields(ScenesConfig):
        parser.add_argument("--" + f.name.replace("_", "-"), type=int, default=f.default)
    a = parser.parse_args(argv)
    config = ScenesConfig(**{f.name: getattr(a, f.name) for f in fields(ScenesConfig)})
    json_path = write_scenes(a.out_dir, config)
    images = json.loads(json_path.read_text(encoding="utf-8"))["images"]
    print(json_path)
    for split in SPLITS:
        mine = [im for im in images if im["split"] == split]
        n_caps = sum(len(im["sentences"]) for im in mine)
        n_objs = sum(len(im["objects"]) for im in mine)
        print(f"{split}: {len(mine)} images, {n_caps} captions, {n_objs} objects")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
