"""Building: the plan of every input, the written splits, :func:`prepare` and the command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from seq2seq.data.files import atomic_open
from seq2seq.datasets.wmt14.errors import Wmt14Error
from seq2seq.datasets.wmt14.moses import _moses_tokenizers, tokenized
from seq2seq.datasets.wmt14.sgml import align_sgml
from seq2seq.datasets.wmt14.sources import Finder, Pair, Source, check_pair, read_pair

#: The training corpora by name: alternatives of ``(English file, French file)``, the first
#: found wins. Names are those inside the statmt.org archives; each may also end in ``.gz``.
CORPORA: dict[str, tuple[tuple[str, str], ...]] = {
    "europarl-v7": (("europarl-v7.fr-en.en", "europarl-v7.fr-en.fr"),),
    "commoncrawl": (("commoncrawl.fr-en.en", "commoncrawl.fr-en.fr"),),
    "un": (("undoc.2000.fr-en.en", "undoc.2000.fr-en.fr"),),
    "news-commentary-v9": (("news-commentary-v9.fr-en.en", "news-commentary-v9.fr-en.fr"),),
    # WMT'14 ships the "fixed" release of the 10^9 corpus; older copies lack the suffix.
    "giga-fren": (
        ("giga-fren.release2.fixed.en", "giga-fren.release2.fixed.fr"),
        ("giga-fren.release2.en", "giga-fren.release2.fr"),
    ),
}

#: The development set: news-test-2012 and news-test-2013 as plain text (from ``dev.tgz``).
DEV = (("newstest2012.en", "newstest2012.fr"), ("newstest2013.en", "newstest2013.fr"))

#: The test set: news-test-2014 (3003 sentences) as SGML, source and reference (``test-full``).
TEST = ("newstest2014-fren-src.en.sgm", "newstest2014-fren-ref.fr.sgm")


@dataclass(frozen=True)
class Plan:
    """Every input, found and checked: what :func:`prepare` will write."""

    train: list[Pair]
    dev: list[Pair]
    test: tuple[Source, Source]
    test_pairs: list[tuple[str, str]]


def _find_pair(finder: Finder, label: str, alternatives: Sequence[tuple[str, str]]) -> Pair:
    """The first alternative whose two files are both found, line-counted and checked."""
    partial = ""
    for en_name, fr_name in alternatives:
        en, fr = finder.find(en_name), finder.find(fr_name)
        if en is not None and fr is not None:
            return check_pair(label, en, fr)
        if en is not None or fr is not None:
            partial = f" (found only {en or fr})"
    looked_for = " or ".join(f"{en} and {fr}" for en, fr in alternatives)
    raise Wmt14Error(f"{label} not found: looked for {finder.where([looked_for])}{partial}")


def plan(
    source_dir: str | Path,
    corpora: Sequence[str] | None = None,
    selection: tuple[str | Path, str | Path] | None = None,
) -> Plan:
    """Find and check every input file without writing anything.

    Args:
        source_dir: the folder holding the downloaded WMT'14 files (searched recursively).
        corpora: names from :data:`CORPORA` to train on (default: all of them).
        selection: an ``(English, French)`` pair of files to train on instead of the corpora.

    Raises:
        Wmt14Error: a file is missing, a pair is misaligned or an SGML file is malformed.
    """
    finder = Finder(Path(source_dir))
    if selection is not None:
        if corpora is not None:
            raise Wmt14Error("give either corpora or a selection, not both")
        sources = []
        for path in map(Path, selection):
            if not path.is_file():
                raise Wmt14Error(f"{path}: selection file not found")
            sources.append(Source(path))
        train = [check_pair("selection", sources[0], sources[1])]
    else:
        names = list(CORPORA) if corpora is None else list(corpora)
        unknown = [name for name in names if name not in CORPORA]
        if unknown or not names:
            what = f"unknown corpus {', '.join(unknown)}" if unknown else "no corpus given"
            raise Wmt14Error(f"{what}; expected some of {', '.join(CORPORA)}")
        train = [_find_pair(finder, name, CORPORA[name]) for name in names]
    dev = [_find_pair(finder, en.split(".")[0], [(en, fr)]) for en, fr in DEV]
    src, ref = finder.find(TEST[0]), finder.find(TEST[1])
    if src is None or ref is None:
        missing = [name for name, found in zip(TEST, (src, ref), strict=True) if found is None]
        raise Wmt14Error(f"newstest2014 not found: looked for {finder.where(missing)}")
    return Plan(train=train, dev=dev, test=(src, ref), test_pairs=align_sgml(src, ref))


def write_split(
    out_dir: Path, split: str, pairs: Iterable[tuple[str, str]], moses: bool, workers: int
) -> int:
    """Write ``{split}.en`` and ``{split}.fr`` atomically (both or neither); the line count."""
    if moses:
        pairs = tokenized(pairs, workers)
    count = 0
    with (
        atomic_open(out_dir / f"{split}.en") as en_out,
        atomic_open(out_dir / f"{split}.fr") as fr_out,
    ):
        for en, fr in pairs:
            en_out.write(en + "\n")
            fr_out.write(fr + "\n")
            count += 1
    return count


def _chained(pairs: Sequence[Pair], errors: str) -> Iterator[tuple[str, str]]:
    for pair in pairs:
        yield from read_pair(pair, errors)


def prepare(
    source_dir: str | Path,
    out_dir: str | Path,
    corpora: Sequence[str] | None = None,
    selection: tuple[str | Path, str | Path] | None = None,
    moses: bool = False,
    workers: int | None = None,
    encoding_errors: str = "strict",
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Write ``{train,dev,test}.{en,fr}`` in ``out_dir`` from the WMT'14 files in ``source_dir``.

    Args:
        source_dir, corpora, selection: see :func:`plan`.
        out_dir: the folder to write to (created if missing).
        moses: tokenise every side with the Moses tokenizer (needs ``sacremoses``).
        workers: tokenising processes (default: one per CPU).
        encoding_errors: ``"strict"`` (invalid UTF-8 is an error naming the file and line) or
            ``"replace"`` (it becomes U+FFFD).
        log: where to report what was found and written.

    Returns:
        ``{"train": n, "dev": n, "test": n}``: the lines written per split.

    Raises:
        Wmt14Error: see :func:`plan`; also invalid UTF-8 or a missing ``sacremoses``.
    """
    if encoding_errors not in ("strict", "replace"):
        raise Wmt14Error(f"encoding_errors must be 'strict' or 'replace', got {encoding_errors!r}")
    if workers is not None and workers < 1:
        raise Wmt14Error(f"workers must be at least 1, got {workers}")
    if moses:
        _moses_tokenizers()
    found = plan(source_dir, corpora, selection)
    src, ref = found.test
    for label, lines, en, fr in (
        *((pair.label, pair.lines, pair.en, pair.fr) for pair in (*found.train, *found.dev)),
        ("newstest2014", len(found.test_pairs), src, ref),
    ):
        log(f"{label:<19} {lines:>10} lines  {en} + {fr}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    counts = {
        "dev": write_split(out, "dev", _chained(found.dev, encoding_errors), moses, workers),
        "test": write_split(out, "test", found.test_pairs, moses, workers),
        "train": write_split(out, "train", _chained(found.train, encoding_errors), moses, workers),
    }
    for split in ("train", "dev", "test"):
        log(f"{split:<5} {counts[split]:>10} lines -> {out / split}.{{en,fr}}")
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m seq2seq.datasets.wmt14 SOURCE_DIR OUT_DIR [options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.datasets.wmt14",
        description="Write {train,dev,test}.{en,fr} from downloaded WMT'14 English-French files.",
    )
    parser.add_argument("source_dir", type=Path, help="folder of the downloaded WMT'14 files")
    parser.add_argument("out_dir", type=Path, help="folder for {train,dev,test}.{en,fr}")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--corpora",
        default=None,
        help=f"comma-separated training corpora (default: all of {','.join(CORPORA)})",
    )
    group.add_argument(
        "--selection",
        nargs=2,
        metavar=("FILE.en", "FILE.fr"),
        default=None,
        help="train on this data-selected pair of files instead of the corpora",
    )
    parser.add_argument("--moses", action="store_true", help="tokenise with sacremoses")
    parser.add_argument("--workers", type=int, default=None, help="tokenising processes")
    parser.add_argument("--encoding-errors", choices=("strict", "replace"), default="strict")
    args = parser.parse_args(argv)
    corpora = None if args.corpora is None else [c for c in args.corpora.split(",") if c]
    try:
        prepare(
            args.source_dir,
            args.out_dir,
            corpora=corpora,
            selection=None if args.selection is None else tuple(args.selection),
            moses=args.moses,
            workers=args.workers,
            encoding_errors=args.encoding_errors,
        )
    except Wmt14Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
