"""A real, offline captioning data set: emoji images named by their Unicode names.

Everything comes from three Debian packages (``apt-get install fonts-noto-color-emoji
unicode-data unicode-cldr-core``), so the data set builds without a network:

- images: each fully-qualified emoji of ``emoji-test.txt`` drawn with Noto Color Emoji, a
  colour bitmap font that Pillow renders only at size 109 (its one bitmap strike), cropped to
  its ink, padded to a centred square, put on white and resized (128 x 128 by default);
- captions: the emoji's English name from ``emoji-test.txt`` ("thumbs up: medium skin tone"),
  plus references from the CLDR English annotations (``annotations/en.xml`` and, if present,
  ``annotationsDerived/en.xml``), whose ``cp`` keys are looked up with U+FE0F removed because
  CLDR strips it while ``emoji-test.txt`` keeps it.

Captions. ``tokens`` are lowercase words: ``:``, ``,``, brackets, quotes (``“`` ``”``), ``!``
and ``.`` are dropped ("Mrs. Claus" -> "mrs claus", "U.S." -> "us"), ``&`` becomes "and",
``’`` becomes ``'`` and stays inside its word ("o'clock", "d'ivoire"), hyphenated words stay
one token ("medium-light", "upside-down"), letters such as "ñ" are kept. The keycap symbols
``#`` and ``*`` are kept as words ("keycap #"), because the caption names what is printed on
the key, just as "keycap 1" does. ``raw`` keeps the original text, as in Karpathy's files.

References, in this order, at most :data:`MAX_REFERENCES`, duplicates (by tokens) dropped:

1. the ``emoji-test.txt`` name;
2. the CLDR text-to-speech name, when it differs after normalisation;
3. CLDR keywords of two or more words, in file order, that share a content word with the name
   (without its skin tones): alternative names such as "honey badger" (badger), "ice cube"
   (ice) or "blond-haired woman" (woman: blond hair) qualify, while associations such as
   "fairy tale" (princess), "good night" (sleepy face) or "12:00" (twelve o'clock) do not.
   Keywords describe the base emoji, so a skin-tone variant's keyword gets the variant's
   tones appended ("blond-haired woman: light skin tone"), as CLDR derives variant names.

A candidate is dropped when its tokens are a contiguous part of a reference already taken, or
the same words in another order: single keywords ("face", "grin") and fragments of the name
("thumbs up" for a skin-tone variant) are true but incomplete, and as references they would
reward captions that leave part of the picture out. So most emoji have one reference and a
few have two or three; the count varies per image.

Splits are drawn from a SHA-256 hash of the name, so they are stable across runs and
machines. By default every emoji is drawn on its own, so a skin-tone variant may be tested
while its siblings were trained on: the captioner must then get the base ("thumbs up") and the
tone ("medium skin tone") right from what it learnt of each elsewhere, which is the
compositional part of naming an emoji. With ``group_skin_tones`` the hash is of the name
with its skin tones removed ("thumbs up: medium skin tone" -> "thumbs up", "person: light
skin tone, blond hair" -> "person: blond hair"), so every variant lands in the split of its
emoji and test emoji are wholly unseen: a test of naming new pictures from their parts
("flag" but not "france"), on which captioners score near zero. Only skin tones are merged
(not the text before every ":"), since "flag: France" and "flag: Japan" are different
pictures.

An emoji that draws no ink is skipped and counted; one that the font cannot shape into a
single glyph (a ZWJ sequence it lacks, or any sequence when Pillow has no Raqm layout) is
drawn as several glyphs side by side, kept, and counted.

:func:`write_emoji_dataset` writes ``images/{index:05d}.png`` and a Karpathy-style
``dataset_emoji.json`` (the format of ``dataset_coco.json``) with extra ``"emoji"``,
``"group"`` and ``"subgroup"`` keys per image.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import PIL
from PIL import Image, ImageDraw, ImageFont, features

from seq2seq.data.files import atomic_write_text
from seq2seq.datasets.emoji_names import (
    MAX_REFERENCES,
    cldr_key,
    parse_cldr_annotations,
    parse_emoji_test,
    references,
    split_key,
)

#: Bump whenever parsing, captioning, splitting or drawing changes, so stale sets are rebuilt.
FORMAT_VERSION = 1


STAMP_NAME = "emoji_stamp.json"


JSON_NAME = "dataset_emoji.json"


SPLITS = ("train", "val", "test")


FONT_PATH = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")


EMOJI_TEST_PATH = Path("/usr/share/unicode/emoji/emoji-test.txt")


_CLDR = Path("/usr/share/unicode/cldr/common")


CLDR_DIRS = (_CLDR / "annotations", _CLDR / "annotationsDerived")


PACKAGES = "fonts-noto-color-emoji unicode-data unicode-cldr-core"


#: The only pixel size of Noto Color Emoji's bitmaps; FreeType refuses any other.
FONT_SIZE = 109


def assign_split(
    name: str,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    group_skin_tones: bool = False,
) -> str:
    """Train, val or test for an emoji name, stable across runs, machines and Python versions.

    Args:
        name: the emoji-test name.
        ratios: shares of train, val and test (non-negative, summing to 1).
        seed: salt of the hash; another seed draws another split.
        group_skin_tones: skin-tone variants share the split of their base emoji.

    Returns:
        One of :data:`SPLITS`.
    """
    _check_ratios(ratios)
    # hashlib, not hash(): Python salts str hashes per process.
    key = split_key(name) if group_skin_tones else name
    digest = hashlib.sha256(f"emoji:{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for split, ratio in zip(SPLITS, ratios, strict=True):
        edge += ratio
        if u < edge:
            return split
    return SPLITS[-1]  # u within rounding error of 1


def _check_ratios(ratios: Sequence[float]) -> None:
    if len(ratios) != len(SPLITS) or min(ratios) < 0 or abs(sum(ratios) - 1) > 1e-6:
        raise ValueError(
            f"ratios must be {len(SPLITS)} non-negative shares of {SPLITS} summing to 1, "
            f"got {tuple(ratios)}"
        )


def load_font(path: str | Path = FONT_PATH) -> ImageFont.FreeTypeFont:
    """Noto Color Emoji at its bitmap size, with Raqm layout when Pillow has it (Raqm shapes
    ZWJ sequences and flags into one glyph; basic layout draws their parts side by side)."""
    engine = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
    return ImageFont.truetype(str(path), FONT_SIZE, layout_engine=engine)


def _layout_box(font: ImageFont.FreeTypeFont, sequence: str) -> tuple[int, int, int, int]:
    """Pixel box of ``sequence`` as laid out from the origin (mode "RGBA": colour glyphs)."""
    left, top, right, bottom = font.getbbox(sequence, mode="RGBA")
    return math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom)


def render_emoji(
    font: ImageFont.FreeTypeFont, sequence: str, size: int = 128
) -> Image.Image | None:
    """Draw one emoji as a ``size`` x ``size`` RGB image on white.

    Args:
        font: a colour bitmap font from :func:`load_font`.
        sequence: the emoji.
        size: side of the output image in pixels.

    Returns:
        The emoji cropped to its ink, centred in a square, on white, resized with Lanczos; or
        None when nothing is drawn (a sequence the font has no glyphs for).
    """
    left, top, right, bottom = _layout_box(font, sequence)
    pad = 8  # bounding boxes of bitmap glyphs can be off by a pixel or two
    canvas = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((pad - left, pad - top), sequence, font=font, embedded_color=True)
    ink = canvas.getchannel("A").getbbox()
    if ink is None:
        return None
    glyph = canvas.crop(ink)
    side = max(glyph.size)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    square.alpha_composite(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    # Composite before resizing: resampling transparent pixels would pull in their black RGB.
    return square.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)


def _inputs(font: Path, emoji_test: Path, cldr_dirs: Sequence[Path]) -> list[Path]:
    """The input files in use; raises naming each missing file and its Debian package."""
    cldr = [d / "en.xml" for d in cldr_dirs if (d / "en.xml").is_file()]
    missing = [
        f"{path} (Debian package {package})"
        for path, package in ((font, "fonts-noto-color-emoji"), (emoji_test, "unicode-data"))
        if not path.is_file()
    ]
    if not cldr:
        tried = " or ".join(str(d / "en.xml") for d in cldr_dirs) or "a CLDR annotations en.xml"
        missing.append(f"{tried} (Debian package unicode-cldr-core)")
    if missing:
        raise FileNotFoundError(
            f"emoji data set input missing: {'; '.join(missing)}. Install with: "
            f"sudo apt-get install {PACKAGES}"
        )
    return [font, emoji_test, *cldr]


def write_emoji_dataset(
    out_dir: str | Path,
    *,
    image_size: int = 128,
    font: str | Path = FONT_PATH,
    emoji_test: str | Path = EMOJI_TEST_PATH,
    cldr_dirs: Sequence[str | Path] = CLDR_DIRS,
    limit: int | None = None,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    max_references: int = MAX_REFERENCES,
    group_skin_tones: bool = False,
) -> Path:
    """Write ``out_dir/images/{index:05d}.png`` and ``out_dir/dataset_emoji.json``.

    The JSON follows Karpathy's split format (``{"dataset": "emoji", "images": [{"filename",
    "filepath": "images", "split", "imgid", "sentids", "sentences": [{"raw", "tokens",
    "imgid", "sentid"}]}]}``) plus ``"emoji"``, ``"group"`` and ``"subgroup"`` per image.
    A stamp (options, format version, Pillow version, and size and mtime of every input
    file) makes the call idempotent: a matching stamp with all files present returns at once.
    The JSON is written atomically and the stamp last; the stamp also records the counts
    that :func:`main` prints.

    Args:
        out_dir: directory to write into; created if missing.
        image_size: side of the square images in pixels.
        font: Noto Color Emoji (Debian: ``fonts-noto-color-emoji``).
        emoji_test: ``emoji-test.txt`` (Debian: ``unicode-data``).
        cldr_dirs: directories holding a CLDR ``en.xml``, in priority order; absent ones are
            ignored but at least one must exist (Debian: ``unicode-cldr-core``).
        limit: keep only the first ``limit`` emoji of ``emoji-test.txt`` (for quick tests).
        ratios: shares of train, val and test.
        seed: salt of the split hash.
        max_references: most reference captions per image.
        group_skin_tones: keep the skin-tone variants of an emoji in one split.

    Returns:
        Path of the JSON file.

    Raises:
        FileNotFoundError: an input file is missing (the message names it and the packages).
    """
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16, got {image_size}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be non-negative, got {limit}")
    if max_references < 1:
        raise ValueError(f"max_references must be at least 1, got {max_references}")
    _check_ratios(ratios)
    font_path, test_path = Path(font), Path(emoji_test)
    inputs = _inputs(font_path, test_path, [Path(d) for d in cldr_dirs])
    out = Path(out_dir)
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    json_path, stamp_path = out / JSON_NAME, out / STAMP_NAME
    config = {
        "format_version": FORMAT_VERSION, "image_size": image_size, "limit": limit,
        "ratios": list(ratios), "seed": seed, "max_references": max_references,
        "group_skin_tones": group_skin_tones,
        "pillow": PIL.__version__, "raqm": bool(features.check("raqm")),
        "inputs": {str(p.resolve()): [p.stat().st_size, p.stat().st_mtime_ns] for p in inputs},
    }  # fmt: skip
    try:
        old = json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if isinstance(old, dict) and old.get("config") == config and json_path.is_file():
        n = int(old.get("counts", {}).get("images", -1))
        if n >= 0 and all((image_dir / f"{i:05d}.png").is_file() for i in range(n)):
            return json_path
    # No stamp may vouch for a half-written mix of old and new files.
    stamp_path.unlink(missing_ok=True)

    start = time.perf_counter()
    entries = parse_emoji_test(test_path)[:limit]
    annotations = parse_cldr_annotations(inputs[2:])
    emoji_font = load_font(font_path)
    images: list[dict[str, Any]] = []
    skipped: list[str] = []
    several_glyphs = n_sentences = 0
    for entry in entries:
        image = render_emoji(emoji_font, entry.sequence, image_size)
        if image is None:
            skipped.append(entry.name)
            continue
        # One glyph is about as wide as tall (136 x 128); fallbacks put glyphs side by side.
        left, top, right, bottom = _layout_box(emoji_font, entry.sequence)
        several_glyphs += (right - left) > 1.5 * (bottom - top)
        imgid, first = len(images), n_sentences
        name = f"{imgid:05d}.png"
        image.save(image_dir / name)
        refs = references(entry, annotations.get(cldr_key(entry.sequence)), max_references)
        n_sentences += len(refs)
        sentences = [
            {"raw": raw, "tokens": tokens, "imgid": imgid, "sentid": first + k}
            for k, (raw, tokens) in enumerate(refs)
        ]
        images.append({
            "filename": name, "filepath": "images",
            "split": assign_split(entry.name, ratios, seed, group_skin_tones), "imgid": imgid,
            "sentids": list(range(first, n_sentences)), "sentences": sentences,
            "emoji": entry.sequence, "group": entry.group, "subgroup": entry.subgroup,
        })  # fmt: skip
    # Images of an earlier, larger build would otherwise linger next to the new ones.
    for path in image_dir.glob("[0-9][0-9][0-9][0-9][0-9].png"):
        if int(path.stem) >= len(images):
            path.unlink()
    atomic_write_text(json_path, json.dumps({"dataset": "emoji", "images": images}) + "\n")
    counts = {
        "images": len(images), "sentences": n_sentences, "skipped": len(skipped),
        "several_glyphs": several_glyphs, "seconds": round(time.perf_counter() - start, 1),
        **{s: sum(im["split"] == s for im in images) for s in SPLITS},
    }  # fmt: skip
    stamp = {"config": config, "counts": counts, "skipped": skipped}
    atomic_write_text(stamp_path, json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    return json_path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the emoji captioning data set and print counts per split."""
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.datasets.emoji", description=main.__doc__
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--image-size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--limit", type=int, default=None, help="only the first N emoji")
    parser.add_argument("--seed", type=int, default=0, help="salt of the split hash")
    parser.add_argument(
        "--group-skin-tones",
        action="store_true",
        help="keep every skin-tone variant of an emoji in one split (test emoji unseen)",
    )
    parser.add_argument("--font", type=Path, default=FONT_PATH)
    parser.add_argument("--emoji-test", type=Path, default=EMOJI_TEST_PATH)
    parser.add_argument("--cldr-dir", type=Path, action="append", help="repeatable")
    a = parser.parse_args(argv)
    stamp_path = a.out / STAMP_NAME
    before = stamp_path.stat().st_mtime_ns if stamp_path.is_file() else None
    json_path = write_emoji_dataset(
        a.out, image_size=a.image_size, font=a.font, emoji_test=a.emoji_test,
        cldr_dirs=a.cldr_dir or CLDR_DIRS, limit=a.limit, seed=a.seed,
        group_skin_tones=a.group_skin_tones,
    )  # fmt: skip
    stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
    counts = stamp["counts"]
    # The stamp is only rewritten by a build, so an unchanged one means nothing was redone.
    built = "already up to date" if stamp_path.stat().st_mtime_ns == before else "built"
    images = json.loads(json_path.read_text(encoding="utf-8"))["images"]
    print(f"{json_path} ({built})")
    for split in SPLITS:
        mine = [im for im in images if im["split"] == split]
        refs = Counter(len(im["sentences"]) for im in mine)
        per = ", ".join(f"{n} with {k}" for k, n in sorted(refs.items()))
        print(
            f"{split}: {len(mine)} images, {sum(k * n for k, n in refs.items())} captions ({per})"
        )
    print(
        f"skipped (no ink): {counts['skipped']}, drawn as several glyphs: "
        f"{counts['several_glyphs']}, build time {counts['seconds']} s"
    )
    for name in stamp["skipped"][:10]:
        print(f"  skipped: {name}")
    return 0
