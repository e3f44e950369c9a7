"""A verse-aligned parallel corpus from two SWORD Bible modules (English–Spanish by default).

Bible translations are numbered by verse, so two of them give a sentence-aligned (verse-aligned)
corpus for free. The defaults are Debian's public-domain modules ``engWEB2015eb`` (World English
Bible, package ``sword-text-web``) and ``spaRV1909eb`` (Reina-Valera 1909, package
``sword-text-sparv``), read with the optional dependency ``pysword``::

    python -m seq2seq.datasets.bible data/bible_en_es

Verses are identified as ``Book.chapter.verse`` with OSIS book abbreviations (``Gen.1.1``). The
OSIS markup of each verse is cleaned to plain text by :func:`clean_osis`, the two modules are
joined on verse ids by :func:`align`, and every verse goes to the split chosen by a hash of its
id (:func:`split_of`), so the split of a verse never depends on which other verses exist.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seq2seq.data.files import atomic_write_lines

#: Where SWORD data folders (each holding ``mods.d/*.conf``) are looked for when none is given.
DEFAULT_SWORD_PATHS = ("~/.sword", "/usr/share/sword", "/usr/local/share/sword")

#: Debian packages that provide the modules this recipe knows about, for error messages.
APT_PACKAGES = {"engWEB2015eb": "sword-text-web", "spaRV1909eb": "sword-text-sparv"}

SPLITS = ("train", "dev", "test")

#: Word-count ratio (target / source) outside which a verse pair is considered misaligned.
MAX_RATIO = 2.0
MIN_RATIO = 0.5


class SwordModuleError(RuntimeError):
    """A SWORD module or the ``pysword`` reader is missing; the message says how to install it."""


# --- cleaning ---------------------------------------------------------------------------------

# The closing chapter milestone ends the verse text. WEB hangs its whole glossary after it in
# Rev 22:21, and other modules put book-closing divs and introductions there.
_CHAPTER_END = re.compile(r"<chapter\b[^>]*\beID=", re.IGNORECASE)
# Footnotes and cross references are commentary, not translation. OSIS notes do not nest, so a
# non-greedy match up to the first </note> also removes the markup inside (reference, rdg, ...).
_NOTE = re.compile(r"<note\b[^>]*/>|<note\b[^>]*>.*?</note>", re.DOTALL | re.IGNORECASE)
# Speaker labels in the Song of Songs ("Beloved", "Friends") are headings, not verse text.
_SPEAKER = re.compile(r"<speaker\b[^>]*>.*?</speaker>", re.DOTALL | re.IGNORECASE)
# Section headings added by editors are dropped; canonical titles (psalm superscriptions) are
# part of the text, and Reina-Valera has them untagged inside verse 1, so WEB must keep them too.
_EDITORIAL_TITLE = re.compile(
    r"<title\b(?![^>]*\bcanonical=\"true\")[^>]*>.*?</title>", re.DOTALL | re.IGNORECASE
)
# Elements that wrap words or parts of words; removing their tags must not insert a space,
# e.g. ``¡<w lemma="...">Oh</w>`` or ``<q who="Jesus">“<w>Allow</w>``.
_INLINE_TAGS = (
    "w",
    "transChange",
    "q",
    "divineName",
    "seg",
    "name",
    "hi",
    "foreign",
    "rdg",
    "catchWord",
    "reference",
    "abbr",
    "added",
    "a",
    "span",
    "font",
)
# Reina-Valera writes some added words (italics in print) between two Strong's tags with no space:
# ``hay allí</w><transChange type="added">también</transChange><w ...>bdelio``. Where the addition
# touches a word tag the tags are a word break; where it touches plain text it is a clitic
# (``repartiéron<transChange type="added">lo</transChange>``) and must stay glued.
_GLUED_ADDITION = re.compile(r"</w>(?=<transChange\b)|</transChange>(?=<w\b)", re.IGNORECASE)
_INLINE_TAG = re.compile(r"</?(?:" + "|".join(_INLINE_TAGS) + r")\b[^>]*>", re.IGNORECASE)
# Everything else (div, l, lg, lb, p, milestone, list, item, title, verse, br, ...) separates
# words, so it becomes a space.
_ANY_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")
# Characters that attach to the word before them: a note right before one leaves no gap.
_CLOSING = frozenset(",.;:!?’”»)]")


def _note_gap(match: re.Match[str]) -> str:
    """What replaces a dropped note: a space, unless punctuation or a space follows it.

    The space keeps "God<note>...</note>created" two words; leaving it out before punctuation
    keeps "incomprehensible<note>...</note>?" from becoming "incomprehensible ?".
    """
    after = match.string[match.end() : match.end() + 1]
    return "" if not after or after.isspace() or after in _CLOSING else " "


def clean_osis(raw: str) -> str:
    """Turn the OSIS markup of one verse into plain text.

    Strong's ``<w>`` tags and other inline markup are removed but their words kept; footnotes,
    cross references, speaker labels and editorial headings are dropped with their content;
    canonical titles (psalm superscriptions) are kept as text; everything after a closing
    ``<chapter eID=...>`` milestone is cut; HTML entities are unescaped and whitespace is
    collapsed.

    Args:
        raw: the verse as stored in the module.

    Returns:
        The verse text, stripped; ``""`` for a verse the module leaves empty.
    """
    end = _CHAPTER_END.search(raw)
    if end:
        raw = raw[: end.start()]
    text = _NOTE.sub(_note_gap, raw)
    text = _SPEAKER.sub(" ", text)
    text = _EDITORIAL_TITLE.sub(" ", text)
    text = _GLUED_ADDITION.sub(lambda m: m.group(0) + " ", text)
    text = _INLINE_TAG.sub("", text)
    text = _ANY_TAG.sub(" ", text)
    # Unescape after removing tags, so that an escaped "&lt;" in the text is not taken for one.
    text = html.unescape(text)
    return _SPACES.sub(" ", text).strip()


# --- reading modules --------------------------------------------------------------------------


def _import_pysword() -> Any:
    """Import ``pysword.modules``, or fail with the command that installs it."""
    try:
        from pysword import modules
    except ImportError:
        raise SwordModuleError(
            "reading SWORD modules needs the optional dependency pysword: pip install pysword"
        ) from None
    return modules


def _search_paths(sword_path: str | Path | None) -> list[Path]:
    """The SWORD data folders to look in: the given one only, else $SWORD_PATH and defaults."""
    if sword_path is not None:
        return [Path(sword_path).expanduser()]
    paths = [p for p in os.environ.get("SWORD_PATH", "").split(os.pathsep) if p]
    return [Path(p).expanduser() for p in (*paths, *DEFAULT_SWORD_PATHS)]


def _not_installed(module: str, searched: Sequence[Path]) -> SwordModuleError:
    """The error for a module found in none of the searched folders, with how to install it."""
    package = APT_PACKAGES.get(module)
    how = (
        f"install it with `apt-get install {package}` (Debian/Ubuntu)"
        if package
        else "install the module's sword-text-* package or use the SWORD installmgr"
    )
    where = ", ".join(str(p) for p in searched)
    return SwordModuleError(
        f"SWORD module {module!r} not found in {where} (looked for mods.d/*.conf declaring "
        f"[{module}]); {how}, or pass the folder holding mods.d/ as sword_path / --sword-path"
    )


def _block_cached(base: type) -> type:
    """A subclass of a pysword zText reader that keeps the last decompressed block.

    pysword decompresses a module's whole block (a book, for BlockType=BOOK) again for every
    verse it returns, which makes a pass over a Bible take minutes; reading verses in order
    hits the same block until the book changes, so caching one block is enough.
    """

    class BlockCached(base):  # type: ignore[misc, valid-type]
        _block_key: tuple[str, int] | None = None
        _block: bytes = b""

        def _decompressed_text(self, testament: str, buf_num: int) -> bytes:
            if self._block_key != (testament, buf_num):
                self._block = super()._decompressed_text(testament, buf_num)
                self._block_key = (testament, buf_num)
            return self._block

    BlockCached.__name__ = BlockCached.__qualname__ = f"BlockCached{base.__name__}"
    return BlockCached


def _open_bible(module: str, sword_path: str | Path | None) -> Any:
    """Find ``module`` and open it with a block-caching pysword reader."""
    modules = _import_pysword()
    from pysword import bible as pysword_bible

    searched = _search_paths(sword_path)
    for root in searched:
        if not (root / "mods.d").is_dir():
            continue
        confs = modules.SwordModules(str(root)).parse_modules()
        if module not in confs:
            continue
        conf = confs[module]
        kind = conf.get("moddrv", "zText").lower()
        base = pysword_bible.SwordBible._MODULE_CLASSES.get(kind)
        if base is None:
            raise SwordModuleError(f"SWORD module {module!r}: driver {kind!r} is not a Bible text")
        if hasattr(base, "_decompressed_text"):
            base = _block_cached(base)
        # Built from the conf by hand rather than with get_bible_from_module, which also reads
        # the conf but looks up the compression under a key ("compress_type") no conf uses.
        return base(
            str(root / conf["datapath"]),
            kind,
            conf.get("versification", "KJV").lower(),
            conf["encoding"].lower() if "encoding" in conf else None,
            conf.get("sourcetype", "OSIS"),
            conf.get("blocktype", "BOOK").upper(),
            conf.get("compresstype", "ZIP").upper(),
            conf.get("cipherkey") or None,
        )
    raise _not_installed(module, searched)


def read_module(module: str, sword_path: str | Path | None = None) -> dict[str, str]:
    """Read every verse of a SWORD Bible module as cleaned text.

    Args:
        module: the module name, as in its ``mods.d/*.conf`` section (``engWEB2015eb``).
        sword_path: the SWORD data folder holding ``mods.d/``; by default ``$SWORD_PATH``
            (``os.pathsep``-separated), ``~/.sword``, ``/usr/share/sword`` and
            ``/usr/local/share/sword`` are searched in that order.

    Returns:
        ``{"Gen.1.1": "In the beginning, ...", ...}`` for every verse of the module's
        versification, in canonical order; verses the module leaves out map to ``""``.

    Raises:
        SwordModuleError: pysword is not installed or the module is not found.
    """
    bible = _open_bible(module, sword_path)
    verses: dict[str, str] = {}
    for books in bible.get_structure().get_books().values():
        for book in books:
            ids = (
                f"{book.osis_name}.{chapter}.{verse}"
                for chapter, count in enumerate(book.chapter_lengths, start=1)
                for verse in range(1, count + 1)
            )
            # get_iter yields one raw text per verse of the book, in the same order as ids.
            raws = bible.get_iter(books=book.osis_name, clean=False)
            for verse_id, raw in zip(ids, raws, strict=True):
                verses[verse_id] = clean_osis(raw)
    return verses


# --- aligning and splitting -------------------------------------------------------------------


def align(
    src: dict[str, str], tgt: dict[str, str], *, drops: Counter[str] | None = None
) -> list[tuple[str, str, str]]:
    """Pair the verses of two translations by verse id.

    Args:
        src: source verses by id, in canonical order (the order of the result).
        tgt: target verses by id.
        drops: if given, incremented per dropped verse under its reason: ``"only_src"`` /
            ``"only_tgt"`` (the id is in one versification only), ``"empty"`` (a side is
            empty), ``"ratio_high"`` / ``"ratio_low"`` (target/source word-count ratio above
            :data:`MAX_RATIO` or below :data:`MIN_RATIO`, a sign that verses were merged or
            split differently).

    Returns:
        ``(verse_id, src_text, tgt_text)`` for every kept pair.
    """
    drops = Counter() if drops is None else drops
    pairs: list[tuple[str, str, str]] = []
    for verse_id, src_text in src.items():
        if verse_id not in tgt:
            drops["only_src"] += 1
            continue
        tgt_text = tgt[verse_id]
        if not src_text.strip() or not tgt_text.strip():
            drops["empty"] += 1
            continue
        ratio = len(tgt_text.split()) / len(src_text.split())
        if ratio > MAX_RATIO:
            drops["ratio_high"] += 1
        elif ratio < MIN_RATIO:
            drops["ratio_low"] += 1
        else:
            pairs.append((verse_id, src_text.strip(), tgt_text.strip()))
    drops["only_tgt"] += sum(1 for verse_id in tgt if verse_id not in src)
    return pairs


def split_of(verse_id: str) -> str:
    """The split of a verse: 5% test, 5% dev, 90% train, by the CRC-32 of its id.

    Hashing the id (rather than sampling) keeps every verse in the same split across runs,
    modules and versions of this code.
    """
    bucket = zlib.crc32(verse_id.encode()) % 20
    if bucket == 0:
        return "test"
    if bucket == 1:
        return "dev"
    return "train"


def prepare(
    out_dir: str | Path,
    src_module: str = "engWEB2015eb",
    tgt_module: str = "spaRV1909eb",
    src_lang: str = "en",
    tgt_lang: str = "es",
    sword_path: str | Path | None = None,
) -> dict[str, Any]:
    """Read two modules, align their verses and write ``{split}.{src_lang,tgt_lang,ids}``.

    Args:
        out_dir: the folder to write to (created if missing).
        src_module: the source-language SWORD module.
        tgt_module: the target-language SWORD module.
        src_lang: file suffix of the source side.
        tgt_lang: file suffix of the target side.
        sword_path: see :func:`read_module`.

    Returns:
        ``{"pairs": {"train": n, "dev": n, "test": n}, "drops": {reason: n}}``.

    Raises:
        SwordModuleError: pysword or a module is missing.
    """
    src = read_module(src_module, sword_path)
    tgt = read_module(tgt_module, sword_path)
    drops: Counter[str] = Counter()
    pairs = align(src, tgt, drops=drops)
    by_split: dict[str, list[tuple[str, str, str]]] = {split: [] for split in SPLITS}
    for pair in pairs:
        by_split[split_of(pair[0])].append(pair)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in by_split.items():
        # Newlines cannot occur (clean_osis collapses whitespace), so files stay line-aligned.
        atomic_write_lines(out / f"{split}.ids", (verse_id for verse_id, _, _ in rows))
        atomic_write_lines(out / f"{split}.{src_lang}", (s for _, s, _ in rows))
        atomic_write_lines(out / f"{split}.{tgt_lang}", (t for _, _, t in rows))
    return {
        "pairs": {split: len(rows) for split, rows in by_split.items()},
        "drops": dict(sorted(drops.items())),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m seq2seq.datasets.bible OUT_DIR [--src-module M] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.datasets.bible",
        description="Write a verse-aligned parallel corpus from two SWORD Bible modules.",
    )
    parser.add_argument("out_dir", type=Path, help="folder for {train,dev,test}.{src,tgt,ids}")
    parser.add_argument("--src-module", default="engWEB2015eb")
    parser.add_argument("--tgt-module", default="spaRV1909eb")
    parser.add_argument("--src-lang", default="en")
    parser.add_argument("--tgt-lang", default="es")
    parser.add_argument("--sword-path", default=None, help="SWORD data folder holding mods.d/")
    args = parser.parse_args(argv)
    try:
        result = prepare(
            args.out_dir,
            src_module=args.src_module,
            tgt_module=args.tgt_module,
            src_lang=args.src_lang,
            tgt_lang=args.tgt_lang,
            sword_path=args.sword_path,
        )
    except SwordModuleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for split, count in result["pairs"].items():
        print(
            f"{split:5s} {count:6d} pairs -> {args.out_dir / split}.{{{args.src_lang},"
            f"{args.tgt_lang},ids}}"
        )
    dropped = ", ".join(f"{reason}={n}" for reason, n in result["drops"].items())
    print(f"dropped: {dropped or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
