"""The names and references of the emoji captioning set, from ``emoji-test.txt`` and CLDR.

See :mod:`seq2seq.datasets.emoji` for how captions are tokenised and which references are kept.
"""

from __future__ import annotations

import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_REFERENCES = 4


SKIN_TONES = frozenset(
    f"{tone} skin tone" for tone in ("light", "medium-light", "medium", "medium-dark", "dark")
)


_STATUSES = frozenset(("component", "fully-qualified", "minimally-qualified", "unqualified"))


# "1F44D 1F3FD ; fully-qualified # 👍🏽 E1.0 thumbs up: medium skin tone"
_LINE = re.compile(
    r"(?P<cps>[0-9A-F]{4,6}(?: [0-9A-F]{4,6})*)\s*;\s*(?P<status>[a-z-]+)\s*"
    r"#\s*(?P<emoji>\S+)\s+E\d+\.\d+\s+(?P<name>\S.*?)\s*"
)


_TOKEN = re.compile(r"[#*]|\w+(?:['-]\w+)*")


_VS16 = "\ufe0f"


#: Words too common to show that a keyword and a name speak of the same thing.
_FUNCTION_WORDS = frozenset(("a", "an", "and", "at", "for", "in", "of", "on", "the", "to", "with"))


@dataclass(frozen=True)
class EmojiEntry:
    """One fully-qualified emoji of ``emoji-test.txt``.

    Attributes:
        sequence: the emoji as a string of code points (U+FE0F included where required).
        name: its CLDR short name as written there, e.g. "thumbs up: medium skin tone".
        group: the enclosing ``# group:`` header, e.g. "People & Body".
        subgroup: the enclosing ``# subgroup:`` header, e.g. "hand-fingers-closed".
    """

    sequence: str
    name: str
    group: str
    subgroup: str


@dataclass(frozen=True)
class CldrAnnotation:
    """The CLDR English annotation of one emoji.

    Attributes:
        tts: the text-to-speech name ("" when the files give none).
        keywords: the ``|``-separated keywords, in file order.
    """

    tts: str = ""
    keywords: tuple[str, ...] = ()


def parse_emoji_test(path: str | Path) -> list[EmojiEntry]:
    """Read the fully-qualified emoji of ``emoji-test.txt`` in file (CLDR) order.

    Args:
        path: an ``emoji-test.txt`` from Unicode (Debian: ``unicode-data``).

    Returns:
        One entry per fully-qualified line; component, minimally-qualified and unqualified
        lines are skipped, since they duplicate a fully-qualified emoji or are no emoji alone.

    Raises:
        ValueError: naming ``path:line`` for a data line that does not parse, has an unknown
            status, or whose code points disagree with the emoji in its comment.
    """
    entries: list[EmojiEntry] = []
    group = subgroup = ""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if line.startswith("# group:"):
                group, subgroup = line.split(":", 1)[1].strip(), ""
            elif line.startswith("# subgroup:"):
                subgroup = line.split(":", 1)[1].strip()
            if not line or line.startswith("#"):
                continue
            m = _LINE.fullmatch(line)
            if m is None:
                raise ValueError(
                    f"{path}:{lineno}: expected 'CODEPOINTS ; STATUS # EMOJI E<version> NAME', "
                    f"got {line!r}"
                )
            if m["status"] not in _STATUSES:
                raise ValueError(
                    f"{path}:{lineno}: status {m['status']!r} is none of {sorted(_STATUSES)}"
                )
            sequence = "".join(chr(int(cp, 16)) for cp in m["cps"].split())
            if sequence != m["emoji"]:
                raise ValueError(
                    f"{path}:{lineno}: code points {m['cps']} do not spell the emoji "
                    f"{m['emoji']!r} of the comment"
                )
            if m["status"] == "fully-qualified":
                entries.append(EmojiEntry(sequence, m["name"], group, subgroup))
    return entries


def cldr_key(sequence: str) -> str:
    """Lookup key of an emoji in CLDR annotations: the sequence without U+FE0F."""
    return sequence.replace(_VS16, "")


def parse_cldr_annotations(paths: Iterable[str | Path]) -> dict[str, CldrAnnotation]:
    """Merge CLDR annotation files (``annotations/en.xml``, ``annotationsDerived/en.xml``).

    Args:
        paths: the XML files, in priority order: for each emoji, the first file that gives a
            tts name or keywords wins that field (hand-written annotations before derived).

    Returns:
        Annotations keyed by :func:`cldr_key`, so both spellings (with or without U+FE0F)
        of an emoji find the same entry.

    Raises:
        ValueError: naming the file for XML that does not parse.
    """
    tts: dict[str, str] = {}
    keywords: dict[str, tuple[str, ...]] = {}
    for path in paths:
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            raise ValueError(f"{path}: not a CLDR annotation XML file ({e})") from e
        for node in root.iter("annotation"):
            cp, text = node.get("cp"), (node.text or "").strip()
            # "↑↑↑" means "inherit from the parent locale"; English is the root, but be safe.
            if not cp or not text or text == "↑↑↑":
                continue
            key = cldr_key(cp)
            if node.get("type") == "tts":
                tts.setdefault(key, text)
            else:
                words = tuple(w.strip() for w in text.split("|") if w.strip())
                keywords.setdefault(key, words)
    return {k: CldrAnnotation(tts.get(k, ""), keywords.get(k, ())) for k in tts.keys() | keywords}


def caption_tokens(text: str) -> list[str]:
    """Lowercase word tokens of an emoji name or keyword (rules in the module docstring)."""
    text = unicodedata.normalize("NFC", text).lower()
    text = text.replace("’", "'").replace("&", " and ").replace(".", "")
    return _TOKEN.findall(text)


def _contains(tokens: Sequence[str], part: Sequence[str]) -> bool:
    """Whether ``part`` occurs as a contiguous run in ``tokens``."""
    n = len(part)
    return any(list(tokens[i : i + n]) == list(part) for i in range(len(tokens) - n + 1))


def references(
    entry: EmojiEntry,
    annotation: CldrAnnotation | None = None,
    max_references: int = MAX_REFERENCES,
) -> list[tuple[str, list[str]]]:
    """The reference captions of an emoji as ``(raw, tokens)`` pairs, name first.

    Args:
        entry: the emoji.
        annotation: its CLDR annotation, if any.
        max_references: most references returned (at least 1).

    Returns:
        Up to ``max_references`` distinct references, chosen as the module docstring says.
    """
    refs = [(entry.name, caption_tokens(entry.name))]
    if annotation is None:
        return refs
    base, tones = _split_tones(entry.name)
    base_words = caption_tokens(base)
    content = set(base_words) - _FUNCTION_WORDS
    candidates = [annotation.tts]
    for keyword in annotation.keywords:
        words = caption_tokens(keyword)
        # "," marks a keyword that is really a list ("Claus, christmas"), not a phrase.
        if len(words) < 2 or "," in keyword or keyword in SKIN_TONES:
            continue
        if not content & set(words):
            continue  # an association ("fairy tale" for "princess"), not another name
        if _redundant(words, [base_words]):
            continue  # judged before the tones are added, which would hide a fragment
        # Keywords describe the base emoji, so a variant's keyword gets the variant's tones.
        candidates.append(f"{keyword}: {', '.join(tones)}" if tones else keyword)
    for raw in candidates:
        tokens = caption_tokens(raw)
        if tokens and not _redundant(tokens, [old for _, old in refs]):
            refs.append((raw, tokens))
            if len(refs) >= max_references:
                break
    return refs


def _redundant(tokens: Sequence[str], taken: Iterable[Sequence[str]]) -> bool:
    """Whether ``tokens`` are a contiguous part of, or a reordering of, a taken reference."""
    return any(_contains(old, tokens) or sorted(old) == sorted(tokens) for old in taken)


def _split_tones(name: str) -> tuple[str, list[str]]:
    """``name`` without its skin tones, and the skin tones, in order."""
    base, sep, rest = name.partition(": ")
    if not sep:
        return name, []
    parts = rest.split(", ")
    kept = [part for part in parts if part not in SKIN_TONES]
    tones = [part for part in parts if part in SKIN_TONES]
    return (f"{base}: {', '.join(kept)}" if kept else base), tones


def split_key(name: str) -> str:
    """The name with its skin tones removed, shared by all skin-tone variants of an emoji."""
    return _split_tones(name)[0]
