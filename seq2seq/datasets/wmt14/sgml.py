"""The SGML test sets: segments parsed, unescaped and aligned by doc and seg id."""

from __future__ import annotations

import html
import re

from seq2seq.datasets.wmt14.errors import Wmt14Error
from seq2seq.datasets.wmt14.sources import Source

_SGML_TAG = re.compile(
    r"<doc\b(?P<doc>[^>]*)>|<seg\b(?P<seg>[^>]*)>(?P<text>.*?)</seg\s*>",
    re.IGNORECASE | re.DOTALL,
)
_ATTR = r"\b{}\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))"
_DOCID = re.compile(_ATTR.format("docid"), re.IGNORECASE)
_SEGID = re.compile(_ATTR.format("id"), re.IGNORECASE)
_SPACES = re.compile(r"\s+")
# Entities end in ";" in XML. html.unescape alone would also expand HTML's legacy forms
# without one, turning a raw "&copy2014" in a sentence into "©2014".
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _unescape(text: str) -> str:
    """Expand the ``&...;`` entities of ``text`` (``&amp;``, ``&quot;``, ``&#39;``, ...)."""
    return _ENTITY.sub(lambda match: html.unescape(match.group(0)), text)


def _line_at(text: str, position: int) -> int:
    """The line number of ``position`` in ``text``, for error messages."""
    return text.count("\n", 0, position) + 1


def _attribute(pattern: re.Pattern[str], attrs: str) -> str | None:
    match = pattern.search(attrs)
    return None if match is None else next(g for g in match.groups() if g is not None)


def read_sgml(source: Source) -> dict[tuple[str, str], str]:
    """The segments of a WMT SGML file by ``(doc id, seg id)``, in file order.

    Segment text is XML-unescaped (``&amp;`` -> ``&``) and its whitespace collapsed, so that
    each segment stays one line.
    """
    with source.open() as handle:
        try:
            text = handle.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Wmt14Error(f"{source}: invalid UTF-8 ({exc.reason})") from None
    segments: dict[tuple[str, str], str] = {}
    doc: str | None = None
    for match in _SGML_TAG.finditer(text):
        if match.group("doc") is not None:
            doc = _attribute(_DOCID, match.group("doc"))
            if doc is None:
                line = _line_at(text, match.start())
                raise Wmt14Error(f"{source}:{line}: <doc> without a docid attribute")
            continue
        seg = _attribute(_SEGID, match.group("seg"))
        if doc is None or seg is None:
            what = "outside any <doc>" if doc is None else "without an id attribute"
            raise Wmt14Error(f"{source}:{_line_at(text, match.start())}: <seg> {what}")
        if (doc, seg) in segments:
            line = _line_at(text, match.start())
            raise Wmt14Error(f'{source}:{line}: second <seg id="{seg}"> in doc {doc!r}')
        segments[doc, seg] = _SPACES.sub(" ", _unescape(match.group("text"))).strip()
    if not segments:
        raise Wmt14Error(f'{source}: no <seg id="..."> found; expected a WMT SGML file')
    return segments


def _check_covered(
    have: dict[tuple[str, str], str],
    other: dict[tuple[str, str], str],
    *,
    have_source: Source,
    lacking: Source,
) -> None:
    """:class:`Wmt14Error` naming ``lacking`` if it lacks a segment of ``have_source``."""
    missing = [key for key in have if key not in other]
    if missing:
        doc, seg = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise Wmt14Error(
            f"{lacking}: no <seg id={seg!r}> in doc {doc!r}{more}, which {have_source.name} has; "
            "source and reference must have the same documents and segments"
        )


def align_sgml(src: Source, ref: Source) -> list[tuple[str, str]]:
    """Source and reference segments paired by doc and seg id, in the source's order.

    Raises:
        Wmt14Error: a segment of one file has no counterpart in the other (the message names
            the file lacking it and the first such segment).
    """
    src_segments, ref_segments = read_sgml(src), read_sgml(ref)
    _check_covered(src_segments, ref_segments, have_source=src, lacking=ref)
    _check_covered(ref_segments, src_segments, have_source=ref, lacking=src)
    return [(text, ref_segments[key]) for key, text in src_segments.items()]
