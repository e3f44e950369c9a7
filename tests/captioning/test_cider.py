"""CIDEr-D of :class:`CiderD` against pycocoevalcap's own scorer, and a hand-computed case."""

from __future__ import annotations

import math
import random
import time

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from seq2seq.captioning.cider import CiderD

WORDS = ["a", "b", "c", "d", "e", "f", "g", "h"]


def caption(rng: random.Random, low: int, high: int, words: list[str] = WORDS) -> str:
    return " ".join(rng.choice(words) for _ in range(rng.randint(low, high)))


@pytest.fixture(scope="module")
def corpus() -> list[list[str]]:
    """50 images with 5 references each over an 8-word vocabulary: many shared n-grams."""
    rng = random.Random(0)
    return [[caption(rng, 1, 12) for _ in range(5)] for _ in range(50)]


def pycocoevalcap_scores(references: list[list[str]], hypotheses: list[str]) -> np.ndarray:
    gts = {i: refs for i, refs in enumerate(references)}
    res = {i: [h] for i, h in enumerate(hypotheses)}
    return Cider().compute_score(gts, res)[1]


def test_equals_pycocoevalcap(corpus: list[list[str]]) -> None:
    rng = random.Random(1)
    # Words no reference has ("x", "y") and the edge lengths 0 and 1 (no bigram) included.
    hypotheses = [caption(rng, 0, 14, [*WORDS, "x", "y"]) for _ in range(50)]
    hypotheses[:4] = ["", "a", "x x x", corpus[3][0]]
    ours = CiderD(corpus).scores(hypotheses, range(50))
    np.testing.assert_allclose(ours, pycocoevalcap_scores(corpus, hypotheses), rtol=0, atol=1e-6)
    assert ours[0] == 0 and ours[3] > ours[4:].mean()


def test_many_hypotheses_per_image_in_any_order(corpus: list[list[str]]) -> None:
    """The document frequencies come from the references alone, so each of several captions
    of an image scores what pycocoevalcap gives it in a set of one caption per image."""
    rng = random.Random(2)
    sets = [[caption(rng, 1, 12) for _ in range(50)] for _ in range(3)]
    expected = np.concatenate([pycocoevalcap_scores(corpus, s) for s in sets])
    images = np.tile(np.arange(50), 3)
    order = np.random.default_rng(0).permutation(150)
    flat = [sets[i // 50][i % 50] for i in order]
    ours = CiderD(corpus).scores(flat, images[order])
    np.testing.assert_allclose(ours, expected[order], rtol=0, atol=1e-6)


def test_hand_computed_case() -> None:
    """Two images of one reference each: image 0 "a b", image 1 "c". The caption "a b" of
    image 0: "a", "b" and "a b" occur in one image of two, idf log 2 each; the vectors are
    equal, so the unigram and bigram cosines are 1, the trigram and 4-gram ones 0 (no such
    n-grams), the lengths agree: (1 + 1 + 0 + 0) / 4 * 10 = 5. The caption "c" of image 0
    shares nothing with "a b": 0."""
    scorer = CiderD([["a b"], ["c"]])
    scores = scorer.scores(["a b", "c", "a b a"], [0, 0, 0])
    assert scores[0] == pytest.approx(5.0)
    assert scores[1] == 0.0
    # "a b a": unigrams a:2, b:1 -> weights 2L, L (L = log 2) against the reference's L, L:
    # clipped dot min(2L, L) * L + min(L, L) * L = 2L^2, norms sqrt(5)L and sqrt(2)L;
    # bigrams "a b", "b a" -> L, L against L: dot L^2, norms sqrt(2)L and L. Lengths differ by
    # one bigram: penalty exp(-1 / 72).
    unigram, bigram = 2 / math.sqrt(10), 1 / math.sqrt(2)
    expected = (unigram + bigram) / 4 * 10 * math.exp(-1 / 72)
    assert scores[2] == pytest.approx(expected)


def test_image_without_references_scores_zero_and_bad_indices_fail() -> None:
    scorer = CiderD([["a b"], []])
    assert scorer.scores(["a b"], [1]).tolist() == [0.0]
    with pytest.raises(ValueError, match="image indices"):
        scorer.scores(["a"], [2])
    with pytest.raises(ValueError, match="1 hypotheses but 2 images"):
        scorer.scores(["a"], [0, 1])


def test_a_training_batch_is_scored_in_milliseconds() -> None:
    """A batch of 100 images with 5 samples and a greedy caption each, against a corpus of
    2,000 images: about 15 ms on one CPU core (the bound leaves room for a loaded machine)."""
    rng = random.Random(3)
    words = [f"w{i}" for i in range(1000)]
    scorer = CiderD([[caption(rng, 6, 15, words) for _ in range(5)] for _ in range(2000)])
    hypotheses = [caption(rng, 6, 15, words) for _ in range(600)]
    images = np.repeat(np.arange(0, 2000, 20), 6)
    scorer.scores(hypotheses, images)  # warm-up
    started = time.perf_counter()
    scorer.scores(hypotheses, images)
    assert time.perf_counter() - started < 0.5
