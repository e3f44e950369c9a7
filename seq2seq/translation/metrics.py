"""Corpus BLEU and chrF with sacrebleu, on detokenised text, with their signatures."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sacrebleu.metrics import BLEU, CHRF


class _Once(logging.Filter):
    """Let each distinct message through once: sacrebleu repeats its tokenisation warning on
    every call, that is, at every validation."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


logging.getLogger("sacrebleu").addFilter(_Once())


@dataclass
class CorpusScores:
    """Corpus-level scores of a set of hypotheses."""

    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    sentences: int

    def to_dict(self) -> dict[str, float | str | int]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"BLEU = {self.bleu:.2f}  ({self.bleu_signature})\n"
            f"chrF = {self.chrf:.2f}  ({self.chrf_signature})"
        )


#: sacrebleu's BLEU tokenizers that a data config may name (``data.bleu_tokenize``).
BLEU_TOKENIZERS = ("13a", "none", "intl", "char", "zh", "ja-mecab", "ko-mecab", "flores200")


def corpus_scores(
    hypotheses: Sequence[str], references: Sequence[str], bleu_tokenize: str = "13a"
) -> CorpusScores:
    """Score detokenised ``hypotheses`` against one reference each.

    ``bleu_tokenize`` is sacrebleu's tokenizer for BLEU: ``13a`` (its default, for detokenised
    text), or ``none`` for text that is tokenised already (the synthetic task's), which
    sacrebleu would otherwise warn about.
    """
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} references: they must align"
        )
    # sacrebleu warns about hypotheses ending in " ." whatever its tokenizer; with tokenize=none
    # the text is tokenised on purpose, and `force` is its way to say so.
    bleu, chrf = BLEU(tokenize=bleu_tokenize, force=bleu_tokenize == "none"), CHRF()
    refs = [list(references)]
    bleu_score = bleu.corpus_score(list(hypotheses), refs)
    chrf_score = chrf.corpus_score(list(hypotheses), refs)
    return CorpusScores(
        bleu=bleu_score.score,
        chrf=chrf_score.score,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        sentences=len(hypotheses),
    )


#: Source-length bucket edges of Bahdanau et al.'s Figure 2 (the last bucket is open).
DEFAULT_EDGES = (0, 10, 20, 30, 40, 50, 60)


@dataclass
class BucketScore:
    """BLEU and chrF of the sentences whose source has ``low <= words < high`` (``high``
    None: open); both None for an empty bucket."""

    low: int
    high: int | None
    sentences: int
    bleu: float | None
    chrf: float | None = None

    @property
    def label(self) -> str:
        return f"{self.low}-{self.high}" if self.high is not None else f"{self.low}+"


def bleu_by_source_length(
    sources: Sequence[str],
    hypotheses: Sequence[str],
    references: Sequence[str],
    edges: Sequence[int] = DEFAULT_EDGES,
) -> list[BucketScore]:
    """Corpus BLEU and chrF within each source-length bucket (length in whitespace words).

    ``edges`` ``(e_0, ..., e_k)`` gives buckets ``[e_0, e_1), ..., [e_{k-1}, e_k), [e_k, ∞)``;
    an empty bucket has BLEU and chrF None.
    """
    if not len(sources) == len(hypotheses) == len(references):
        raise ValueError("sources, hypotheses and references must have the same length")
    if list(edges) != sorted(set(edges)):
        raise ValueError(f"bucket edges must be strictly increasing, got {list(edges)}")
    bounds = [*zip(edges[:-1], edges[1:], strict=True), (edges[-1], None)]
    lengths = [len(s.split()) for s in sources]
    buckets = []
    for low, high in bounds:
        picked = [i for i, n in enumerate(lengths) if n >= low and (high is None or n < high)]
        bleu = chrf = None
        if picked:
            hyps, refs = [hypotheses[i] for i in picked], [[references[i] for i in picked]]
            bleu = BLEU().corpus_score(hyps, refs).score
            chrf = CHRF().corpus_score(hyps, refs).score
        buckets.append(BucketScore(low, high, len(picked), bleu, chrf))
    return buckets


def format_buckets(buckets: Sequence[BucketScore]) -> str:
    """A Markdown table: source length, sentences, BLEU, chrF."""
    rows = ["| source length | sentences | BLEU | chrF |", "| --- | ---: | ---: | ---: |"]
    for b in buckets:
        bleu, chrf = ("–" if x is None else f"{x:.2f}" for x in (b.bleu, b.chrf))
        rows.append(f"| {b.label} | {b.sentences} | {bleu} | {chrf} |")
    return "\n".join(rows)
