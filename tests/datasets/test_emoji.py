"""Tests for the emoji captioning data set (seq2seq.datasets.emoji)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops

from seq2seq.datasets.emoji import (
    CLDR_DIRS,
    EMOJI_TEST_PATH,
    FONT_PATH,
    JSON_NAME,
    SPLITS,
    STAMP_NAME,
    assign_split,
    load_font,
    main,
    render_emoji,
    write_emoji_dataset,
)
from seq2seq.datasets.emoji_names import (
    CldrAnnotation,
    EmojiEntry,
    caption_tokens,
    cldr_key,
    parse_cldr_annotations,
    parse_emoji_test,
    references,
    split_key,
)

HAVE_DEBIAN_FILES = (
    FONT_PATH.is_file() and EMOJI_TEST_PATH.is_file() and (CLDR_DIRS[0] / "en.xml").is_file()
)
needs_debian = pytest.mark.skipif(
    not HAVE_DEBIAN_FILES,
    reason="needs fonts-noto-color-emoji, unicode-data and unicode-cldr-core installed",
)

EMOJI_TEST = """\
# emoji-test.txt
# Format: code points; status # emoji name

# group: Smileys & Emotion

# subgroup: face-smiling
1F600                      ; fully-qualified     # 😀 E1.0 grinning face
263A FE0F                  ; fully-qualified     # ☺️ E0.6 smiling face
263A                       ; unqualified         # ☺ E0.6 smiling face

# group: People & Body

# subgroup: hand-fingers-closed
1F44D                      ; fully-qualified     # 👍 E0.6 thumbs up
1F44D 1F3FD                ; fully-qualified     # 👍🏽 E1.0 thumbs up: medium skin tone

# subgroup: person-role
1F478                      ; fully-qualified     # 👸 E0.6 princess
1F471 1F3FB 200D 2640 FE0F ; fully-qualified     # 👱🏻‍♀️ E4.0 woman: light skin tone, blond hair
1F471 1F3FB 200D 2640      ; minimally-qualified # 👱🏻‍♀ E4.0 woman: light skin tone, blond hair

# subgroup: skin-tone
1F3FB                      ; component           # 🏻 E1.0 light skin tone

# group: Symbols

# subgroup: keycap
0023 FE0F 20E3             ; fully-qualified     # #️⃣ E0.6 keycap: #
0023 20E3                  ; unqualified         # #⃣ E0.6 keycap: #

# group: Flags

# subgroup: country-flag
1F1EB 1F1F7                ; fully-qualified     # 🇫🇷 E0.6 flag: France
1F1E8 1F1EE                ; fully-qualified     # 🇨🇮 E2.0 flag: Côte d’Ivoire

# Status Counts
# fully-qualified : 8
#EOF
"""

# Hand-written annotations (cp without U+FE0F, as CLDR writes them), then derived ones.
CLDR_EN = """\
<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE ldml SYSTEM "../../common/dtd/ldml.dtd">
<ldml>
\t<annotations>
\t\t<annotation cp="😀">face | grin | grinning face</annotation>
\t\t<annotation cp="😀" type="tts">grinning face</annotation>
\t\t<annotation cp="☺">face | outlined | relaxed | smile | smiling face</annotation>
\t\t<annotation cp="☺" type="tts">smiling face</annotation>
\t\t<annotation cp="👍">+1 | hand | thumb | thumbs up | up</annotation>
\t\t<annotation cp="👍" type="tts">thumbs up</annotation>
\t\t<annotation cp="👸">fairy tale | fantasy | princess</annotation>
\t\t<annotation cp="👸" type="tts">princess</annotation>
\t\t<annotation cp="🦡">badger | honey badger | pester</annotation>
\t\t<annotation cp="🦡" type="tts">badger</annotation>
\t\t<annotation cp="&amp;">ampersand | and | et</annotation>
\t</annotations>
</ldml>
"""
CLDR_DERIVED = """\
<?xml version="1.0" encoding="UTF-8" ?>
<ldml>
\t<annotations>
\t\t<annotation cp="👍🏽">+1 | hand | medium skin tone | thumb | thumbs up | up</annotation>
\t\t<annotation cp="👍🏽" type="tts">thumbs up: medium skin tone</annotation>
\t\t<annotation cp="👱🏻‍♀">blond-haired woman | blonde | hair | light skin tone | woman | \
woman: blond hair</annotation>
\t\t<annotation cp="👱🏻‍♀" type="tts">woman: light skin tone, blond hair</annotation>
\t\t<annotation cp="#⃣">keycap</annotation>
\t\t<annotation cp="#⃣" type="tts">keycap: #</annotation>
\t\t<annotation cp="🇫🇷">flag</annotation>
\t\t<annotation cp="🇫🇷" type="tts">flag: France</annotation>
\t\t<annotation cp="😀">ignored | because annotations/en.xml comes first</annotation>
\t</annotations>
</ldml>
"""


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A small emoji-test.txt and two CLDR directories, as laid out by Debian."""
    emoji_test = tmp_path / "emoji-test.txt"
    emoji_test.write_text(EMOJI_TEST, encoding="utf-8")
    dirs = [tmp_path / "annotations", tmp_path / "annotationsDerived"]
    for d, text in zip(dirs, (CLDR_EN, CLDR_DERIVED), strict=True):
        d.mkdir()
        (d / "en.xml").write_text(text, encoding="utf-8")
    return emoji_test, dirs


def entry(name: str, sequence: str = "?") -> EmojiEntry:
    return EmojiEntry(sequence, name, "group", "subgroup")


def test_parse_emoji_test_keeps_fully_qualified_in_order(inputs: tuple[Path, list[Path]]):
    entries = parse_emoji_test(inputs[0])
    assert [(e.sequence, e.name, e.group, e.subgroup) for e in entries] == [
        ("😀", "grinning face", "Smileys & Emotion", "face-smiling"),
        ("☺️", "smiling face", "Smileys & Emotion", "face-smiling"),
        ("👍", "thumbs up", "People & Body", "hand-fingers-closed"),
        ("👍🏽", "thumbs up: medium skin tone", "People & Body", "hand-fingers-closed"),
        ("👸", "princess", "People & Body", "person-role"),
        ("👱🏻‍♀️", "woman: light skin tone, blond hair", "People & Body", "person-role"),
        ("#️⃣", "keycap: #", "Symbols", "keycap"),
        ("🇫🇷", "flag: France", "Flags", "country-flag"),
        ("🇨🇮", "flag: Côte d’Ivoire", "Flags", "country-flag"),
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("1F600 ; fully-qualified 😀 E1.0 grinning face", "expected 'CODEPOINTS ; STATUS #"),
        ("1F600 ; fully-qualified # 😀 grinning face", "expected 'CODEPOINTS ; STATUS #"),
        ("1F600 ; fully-qualified # 😀 E1.0", "expected 'CODEPOINTS ; STATUS #"),
        ("1F600 ; fully-qualifed # 😀 E1.0 grinning face", "status 'fully-qualifed'"),
        ("1F601 ; fully-qualified # 😀 E1.0 grinning face", "do not spell the emoji"),
    ],
)
def test_parse_emoji_test_names_file_and_line_of_bad_lines(
    tmp_path: Path, line: str, expected: str
):
    path = tmp_path / "emoji-test.txt"
    path.write_text(f"# group: Smileys\n\n{line}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{path}:3: .*") as info:
        parse_emoji_test(path)
    assert expected in str(info.value)


def test_parse_cldr_matches_both_spellings_and_prefers_first_file(
    inputs: tuple[Path, list[Path]],
):
    notes = parse_cldr_annotations([d / "en.xml" for d in inputs[1]])
    assert (
        notes[cldr_key("☺️")]
        == notes[cldr_key("☺")]
        == CldrAnnotation("smiling face", ("face", "outlined", "relaxed", "smile", "smiling face"))
    )
    assert notes[cldr_key("#️⃣")] == CldrAnnotation("keycap: #", ("keycap",))
    assert notes[cldr_key("😀")].keywords == ("face", "grin", "grinning face")
    assert notes["&"] == CldrAnnotation("", ("ampersand", "and", "et"))  # entity decoded


def test_parse_cldr_names_file_of_bad_xml(tmp_path: Path):
    path = tmp_path / "en.xml"
    path.write_text("<ldml><annotations>", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{path}: not a CLDR annotation XML file"):
        parse_cldr_annotations([path])


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("thumbs up: medium skin tone", "thumbs up medium skin tone"),
        ("woman: light skin tone, blond hair", "woman light skin tone blond hair"),
        ("flag: France", "flag france"),
        ("flag: Côte d’Ivoire", "flag côte d'ivoire"),
        ("flag: Antigua & Barbuda", "flag antigua and barbuda"),
        ("flag: U.S. Virgin Islands", "flag us virgin islands"),
        ("flag: Cocos (Keeling) Islands", "flag cocos keeling islands"),
        ("keycap: #", "keycap #"),
        ("keycap: *", "keycap *"),
        ("keycap: 10", "keycap 10"),
        ("Japanese “no vacancy” button", "japanese no vacancy button"),
        ("eleven o’clock", "eleven o'clock"),
        ("Mrs. Claus", "mrs claus"),
        ("UP! button", "up button"),
        ("upside-down face", "upside-down face"),
        ("piñata", "piñata"),
    ],
)
def test_caption_tokens(text: str, tokens: str):
    assert caption_tokens(text) == tokens.split()


def test_references(inputs: tuple[Path, list[Path]]):
    entries = {e.name: e for e in parse_emoji_test(inputs[0])}
    notes = parse_cldr_annotations([d / "en.xml" for d in inputs[1]])

    def refs(name: str, sequence: str | None = None) -> list[str]:
        e = entries.get(name) or entry(name, sequence or "?")
        return [" ".join(tokens) for _, tokens in references(e, notes.get(cldr_key(e.sequence)))]

    # Single keywords and fragments of the name add nothing; associations are not names.
    assert refs("grinning face") == ["grinning face"]
    assert refs("thumbs up: medium skin tone") == ["thumbs up medium skin tone"]
    assert refs("princess") == ["princess"]
    assert refs("keycap: #") == ["keycap #"]
    assert refs("flag: France") == ["flag france"]
    assert refs("badger", "🦡") == ["badger", "honey badger"]
    # A variant's keyword gets the variant's skin tone; "woman: blond hair" is a reordering.
    assert refs("woman: light skin tone, blond hair") == [
        "woman light skin tone blond hair",
        "blond-haired woman light skin tone",
    ]
    # raw keeps the original text; the tts name counts when it differs.
    e = entry("ice", "🧊")
    note = CldrAnnotation("ice block", ("cold", "ice", "ice cube", "iceberg", "cube of ice"))
    assert references(e, note) == [
        ("ice", ["ice"]),
        ("ice block", ["ice", "block"]),
        ("ice cube", ["ice", "cube"]),
        ("cube of ice", ["cube", "of", "ice"]),
    ]
    assert len(references(e, note, max_references=2)) == 2
    assert references(e, None) == [("ice", ["ice"])]


def test_split_is_stable_and_can_keep_skin_tones_together():
    assert split_key("thumbs up: medium skin tone") == "thumbs up"
    assert split_key("handshake: light skin tone, dark skin tone") == "handshake"
    assert split_key("person: light skin tone, blond hair") == "person: blond hair"
    assert split_key("flag: France") == "flag: France"
    # Pinned: a change here would silently move emoji between the splits of old experiments.
    assert {n: assign_split(n) for n in PINNED} == PINNED
    assert {n: assign_split(n, group_skin_tones=True) for n in PINNED} == PINNED
    assert {n: assign_split(n) for n in PINNED_VARIANTS} == PINNED_VARIANTS
    tones = ("light", "medium-light", "medium", "medium-dark", "dark")
    spread = set()
    for base in ("thumbs up", "man lifting weights", "woman: red hair", "kiss: woman, man"):
        grouped = {assign_split(base, group_skin_tones=True)}
        for tone in tones:
            head, sep, rest = base.partition(": ")
            name = f"{head}: {tone} skin tone" + (f", {rest}" if sep else "")
            grouped.add(assign_split(name, group_skin_tones=True))
            spread.add(assign_split(name))
        assert len(grouped) == 1, base
    # By default each variant is drawn on its own, so they spread over the splits.
    assert len(spread) > 1


PINNED = {"grinning face": "train", "thumbs up": "test", "flag: Japan": "val"}
#: Skin-tone variants: grouped, they follow "thumbs up"; alone, each has its own split.
PINNED_VARIANTS = {"thumbs up: light skin tone": "train", "thumbs up: dark skin tone": "train"}


def test_split_ratios_seed_and_validation():
    names = [f"emoji number {i}" for i in range(600)]
    counts = Counter(assign_split(n) for n in names)
    assert set(counts) == set(SPLITS)
    assert abs(counts["train"] / 600 - 0.8) < 0.05
    assert abs(counts["val"] / 600 - 0.1) < 0.04
    assert abs(counts["test"] / 600 - 0.1) < 0.04
    half = Counter(assign_split(n, (0.5, 0.5, 0.0)) for n in names)
    assert half["test"] == 0 and abs(half["train"] - 300) < 45
    other_seed = [assign_split(n, seed=1) for n in names]
    assert other_seed != [assign_split(n) for n in names]
    for bad in ((0.8, 0.1), (0.8, 0.3, -0.1), (0.5, 0.2, 0.2)):
        with pytest.raises(ValueError, match="ratios must be 3 non-negative shares"):
            assign_split("x", bad)


def test_missing_input_names_file_and_packages(tmp_path: Path, inputs: tuple[Path, list[Path]]):
    emoji_test, dirs = inputs
    missing_font = tmp_path / "NoSuchFont.ttf"
    with pytest.raises(
        FileNotFoundError, match=r"NoSuchFont\.ttf \(Debian package fonts-noto-color-emoji\)"
    ) as info:
        write_emoji_dataset(
            tmp_path / "out", font=missing_font, emoji_test=emoji_test, cldr_dirs=dirs
        )
    msg = str(info.value)
    assert "apt-get install fonts-noto-color-emoji unicode-data unicode-cldr-core" in msg
    with pytest.raises(
        FileNotFoundError, match=r"nowhere[/\\]en\.xml \(Debian package unicode-cldr-core"
    ):
        write_emoji_dataset(
            tmp_path / "out",
            font=emoji_test,
            emoji_test=emoji_test,
            cldr_dirs=[tmp_path / "nowhere"],
        )


# --- On the real Debian files ----------------------------------------------------------------


def load(out: Path) -> dict[str, Any]:
    return json.loads((out / JSON_NAME).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("emoji")
    write_emoji_dataset(out, limit=20)
    return out


@needs_debian
def test_render_emoji():
    font = load_font()
    image = render_emoji(font, "😀", size=64)
    assert image is not None and image.size == (64, 64) and image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255)  # a round face leaves white corners
    assert len(set(image.getdata())) > 20  # colour, not a blank square
    # Cropped to its ink: a round face reaches all four sides of the square.
    white = Image.new("RGB", image.size, (255, 255, 255))
    assert ImageChops.difference(image, white).getbbox() == (0, 0, 64, 64)
    assert render_emoji(font, "\u0378") is None  # unassigned: no glyph, no ink


@needs_debian
def test_real_dataset_structure(real_dir: Path):
    data = load(real_dir)
    images = data["images"]
    assert data["dataset"] == "emoji" and len(images) == 20
    sentid = 0
    for imgid, im in enumerate(images):
        assert im["filename"] == f"{imgid:05d}.png" and im["filepath"] == "images"
        assert im["imgid"] == imgid and im["split"] in SPLITS
        assert im["group"] == "Smileys & Emotion" and im["subgroup"].startswith("face-")
        assert im["emoji"] and im["sentences"]
        assert im["sentids"] == list(range(sentid, sentid + len(im["sentences"])))
        for k, sent in enumerate(im["sentences"]):
            assert sent["imgid"] == imgid and sent["sentid"] == sentid + k
            assert sent["tokens"] == caption_tokens(sent["raw"])
        sentid += len(im["sentences"])
        with Image.open(real_dir / im["filepath"] / im["filename"]) as image:
            assert image.size == (128, 128) and image.mode == "RGB"
    assert images[0]["emoji"] == "😀" and images[0]["sentences"][0]["raw"] == "grinning face"
    stamp = json.loads((real_dir / STAMP_NAME).read_text(encoding="utf-8"))
    assert stamp["counts"]["images"] == 20 and stamp["counts"]["skipped"] == 0


@needs_debian
def test_real_dataset_is_idempotent_and_rebuilt_on_change(real_dir: Path):
    json_path, first_image = real_dir / JSON_NAME, real_dir / "images" / "00000.png"
    before = (json_path.stat().st_mtime_ns, first_image.stat().st_mtime_ns)
    os.utime(json_path, ns=(1, 1))  # make any rewrite visible, however fast the file system
    os.utime(first_image, ns=(1, 1))
    assert write_emoji_dataset(real_dir, limit=20) == json_path
    assert json_path.stat().st_mtime_ns == first_image.stat().st_mtime_ns == 1
    assert before[0] != 1
    # Other options rebuild, and images of the larger build do not linger.
    write_emoji_dataset(real_dir, limit=5, image_size=32)
    assert json_path.stat().st_mtime_ns != 1 and len(load(real_dir)["images"]) == 5
    assert sorted(p.name for p in (real_dir / "images").iterdir()) == [
        f"{i:05d}.png" for i in range(5)
    ]
    with Image.open(first_image) as image:
        assert image.size == (32, 32)
    write_emoji_dataset(real_dir, limit=20)  # leave the module fixture as it was


@needs_debian
def test_main_prints_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["--out", str(tmp_path), "--limit", "3", "--image-size", "48"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / JSON_NAME} (built)" in out
    assert "skipped (no ink): 0" in out
    per_split = {
        line.split(":")[0]: int(line.split()[1])
        for line in out.splitlines()
        if line.split(":")[0] in SPLITS
    }
    assert set(per_split) == set(SPLITS) and sum(per_split.values()) == 3
    main(["--out", str(tmp_path), "--limit", "3", "--image-size", "48"])
    assert "(already up to date)" in capsys.readouterr().out
