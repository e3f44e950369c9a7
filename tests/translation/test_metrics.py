"""Corpus scores and BLEU by source length agree with sacrebleu."""

from __future__ import annotations

import pytest
import sacrebleu

from seq2seq.translation.metrics import bleu_by_source_length, corpus_scores, format_buckets


def test_corpus_scores_match_sacrebleu() -> None:
    hyps = ["the cat sat on the mat", "a dog runs"]
    refs = ["the cat sat on a mat", "the dog runs"]
    scores = corpus_scores(hyps, refs)
    assert scores.bleu == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert scores.chrf == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert scores.bleu_signature.startswith("nrefs:1|")
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_scores(hyps, refs[:1])


def test_bleu_by_source_length_buckets() -> None:
    sources = ["w " * 3, "w " * 12, "w " * 15, "w " * 70]
    hyps = ["a b c d", "e f g h i", "x y z", "p q r s t"]
    refs = ["a b c d", "e f g h i", "x y w", "p q r s u"]
    buckets = bleu_by_source_length(sources, hyps, refs, edges=(0, 10, 20, 60))
    assert [b.label for b in buckets] == ["0-10", "10-20", "20-60", "60+"]
    assert [b.sentences for b in buckets] == [1, 2, 0, 1]
    assert buckets[2].bleu is None
    expected = sacrebleu.corpus_bleu(hyps[1:3], [refs[1:3]]).score
    assert buckets[1].bleu == pytest.approx(expected)
    assert buckets[0].bleu == pytest.approx(100.0)
    assert buckets[1].chrf == pytest.approx(sacrebleu.corpus_chrf(hyps[1:3], [refs[1:3]]).score)
    assert buckets[2].chrf is None
    assert "| 20-60 | 0 | – | – |" in format_buckets(buckets)
    with pytest.raises(ValueError, match="strictly increasing"):
        bleu_by_source_length(sources, hyps, refs, edges=(0, 20, 10))
