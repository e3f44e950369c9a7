"""Caption metrics (BLEU, CIDEr-D, METEOR), attention correctness and attention figures."""

from __future__ import annotations

import logging
import math
import shutil

import pytest
import torch

import seq2seq.captioning.metrics as cm
from seq2seq.captioning.attention_correctness import (
    attention_correctness,
    attention_in_box,
    box_cell_coverage,
    word_grounding,
)
from seq2seq.captioning.datamodule import SCENE_OBJECT_WORDS as WORDS
from seq2seq.captioning.metrics import CAPTION_METRICS, caption_scores
from seq2seq.captioning.plots import plot_caption_attention

# ---------------------------------------------------------------- BLEU and CIDEr-D


def test_identical_captions_score_full_bleu() -> None:
    refs = [["a small red circle above a blue square"], ["a large green star in the centre"]]
    scores = caption_scores([r[0] for r in refs], refs, meteor=False)
    for bleu in (scores.bleu1, scores.bleu2, scores.bleu3, scores.bleu4):
        assert bleu == pytest.approx(100.0)
    assert scores.n_images == 2 and scores.meteor is None


def test_bleu_by_hand() -> None:
    # Closest reference has 4 words for a 3-word hypothesis: every n-gram matches, and the
    # brevity penalty is exp(1 - 4/3).
    scores = caption_scores(
        ["a red circle"], [["a red circle above a blue square", "a big red circle"]], meteor=False
    )
    assert scores.bleu1 == pytest.approx(100 * math.exp(-1 / 3))
    assert scores.bleu2 == pytest.approx(100 * math.exp(-1 / 3))
    # Clipping: "red" counts once; bigrams "red red" x2 miss, "red circle" hits; no penalty.
    scores = caption_scores(["red red red circle"], [["a red circle"]], meteor=False)
    assert scores.bleu1 == pytest.approx(50.0)
    assert scores.bleu2 == pytest.approx(100 * math.sqrt(2 / 4 * 1 / 3))


def test_bleu_pools_counts_over_the_corpus() -> None:
    hyps = ["a red circle", "a blue star in the centre"]
    refs = [["a red circle"], ["a green star in the centre"]]
    # (3 + 5) matching unigrams of 3 + 6, not the mean of per-image precisions (1 + 5/6) / 2.
    assert caption_scores(hyps, refs, meteor=False).bleu1 == pytest.approx(100 * 8 / 9)


def test_cider_d_by_hand() -> None:
    # "a" occurs in both images' references: idf log(2/2) = 0. Every other n-gram has idf
    # log 2, so a hypothesis equal to its references has cosine 1 for each n = 1..4, and
    # CIDEr-D = 10 * mean_n 1 = 10, reported as 1000.
    refs = [["a small red circle"] * 2, ["a large blue square"] * 2]
    perfect = caption_scores([r[0] for r in refs], refs, meteor=False)
    assert perfect.cider == pytest.approx(1000.0)
    # Three-word captions have no 4-grams, so n = 4 contributes 0: 10 * 3/4.
    short = [["a red circle"] * 2, ["a blue square"] * 2]
    assert caption_scores([r[0] for r in short], short, meteor=False).cider == pytest.approx(750)
    # Swapped captions share only "a", whose idf is 0.
    swapped = caption_scores([refs[1][0], refs[0][0]], refs, meteor=False)
    assert swapped.cider == pytest.approx(0.0, abs=1e-9)
    # With one image every idf is log(1/1) = 0: CIDEr-D needs a corpus.
    assert caption_scores(["a red circle"], [["a red circle"]], meteor=False).cider == 0.0


def test_no_matching_words_score_zero() -> None:
    scores = caption_scores(["green star"], [["red circle"]], meteor=False)
    assert scores.bleu1 == pytest.approx(0.0, abs=1e-9)
    assert scores.bleu4 == pytest.approx(0.0, abs=1e-3)


def test_better_hypothesis_scores_higher() -> None:
    refs = [
        ["a small red circle above a large blue square", "a red circle above a blue square"],
        ["a green star in the centre", "there is a small green star in the centre"],
        ["a purple cross on the left", "a large purple cross on the left"],
    ]
    good = ["a small red circle above a blue square", "a green star in the centre", "a cross"]
    bad = ["a red square below a circle", "a star", "a green triangle"]
    better, worse = (caption_scores(h, refs, meteor=False) for h in (good, bad))
    for name in ("bleu1", "bleu2", "bleu3", "bleu4", "cider"):
        assert getattr(better, name) > getattr(worse, name), name


def test_empty_hypotheses_and_normalisation() -> None:
    refs = [["a red circle"], ["a blue square"]]
    scores = caption_scores(["", "a blue square"], refs, meteor=False)
    assert 0 < scores.bleu1 < 100 and 0 < scores.cider < 1000
    nothing = caption_scores(["", ""], refs, meteor=False)
    assert nothing.bleu1 == 0.0 and nothing.cider == 0.0
    # Case, spacing and empty references do not matter.
    shouted = caption_scores(
        ["A  Red\ncircle", "a blue square"], [["a red circle", ""], refs[1]], meteor=False
    )
    plain = caption_scores(["a red circle", "a blue square"], refs, meteor=False)
    assert (shouted.bleu4, shouted.cider) == (plain.bleu4, plain.cider)


def test_input_validation_and_reporting() -> None:
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference lists"):
        caption_scores(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="image 1 has no"):
        caption_scores(["a", "b"], [["a"], [""]])
    with pytest.raises(ValueError, match="is a string"):
        caption_scores(["a red circle"], ["a red circle"])
    with pytest.raises(ValueError, match="no captions"):
        caption_scores([], [])
    scores = caption_scores(["a red circle"], [["a red circle"]], meteor=False)
    logged = scores.as_dict("val/")
    assert list(logged) == [f"val/{m}" for m in CAPTION_METRICS if m != "meteor"]
    assert "CIDEr-D" in scores.format() and "METEOR" not in scores.format()
    scores.meteor = 25.0
    assert scores.as_dict()["meteor"] == 25.0 and "METEOR 25.0" in scores.format()


# ---------------------------------------------------------------- METEOR


def test_meteor_skipped_without_java(monkeypatch, caplog) -> None:
    monkeypatch.setattr(shutil, "which", lambda *_: None)
    monkeypatch.setattr(cm, "_java_notice_shown", False)
    caplog.set_level(logging.INFO, logger=cm.__name__)
    for _ in range(2):
        assert caption_scores(["a red circle"], [["a red circle"]]).meteor is None
    notices = [r.getMessage() for r in caplog.records if "METEOR skipped" in r.getMessage()]
    assert len(notices) == 1 and "default-jre-headless" in notices[0]
    with pytest.raises(RuntimeError, match="java"):
        caption_scores(["a red circle"], [["a red circle"]], meteor=True)


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")
def test_meteor_failure_is_a_warning(monkeypatch, caplog) -> None:
    import pycocoevalcap.meteor.meteor as pycoco_meteor

    monkeypatch.setattr(pycoco_meteor, "METEOR_JAR", "no-such-meteor.jar")
    caplog.set_level(logging.WARNING, logger=cm.__name__)
    scores = caption_scores(["a red circle"], [["a red circle"]], meteor=True)
    assert scores.meteor is None and scores.bleu1 == pytest.approx(100.0)
    assert any("scorer failed" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")
def test_meteor_scores_and_closes_its_jvm(monkeypatch) -> None:
    started: list[cm._ClosingMeteor] = []

    class Recording(cm._ClosingMeteor):
        def __init__(self) -> None:
            super().__init__()
            started.append(self)

    monkeypatch.setattr(cm, "_ClosingMeteor", Recording)
    refs = [["a small red circle above a blue square"], ["a green star in the centre"]]
    same = caption_scores([r[0] for r in refs], refs, meteor=True)
    other = caption_scores(["a purple cross", "two yellow triangles"], refs, meteor=True)
    assert same.meteor is not None and other.meteor is not None
    assert same.meteor > other.meteor
    assert len(started) == 2 and all(m.meteor_p.returncode is not None for m in started)


# ---------------------------------------------------------------- attention correctness


def test_box_cell_coverage() -> None:
    cover = box_cell_coverage([0, 0, 2, 2], (4, 4), (2, 2))
    assert cover.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert box_cell_coverage([0, 0, 1, 2], (4, 4), (2, 2)).tolist() == [0.5, 0.0, 0.0, 0.0]
    assert box_cell_coverage([1, 1, 3, 3], (4, 4), (2, 2)).tolist() == [0.25] * 4
    # Row-major: the top-right cell is index 1, the bottom-left index 2.
    assert box_cell_coverage([2, 0, 4, 2], (4, 4), (2, 2)).tolist() == [0.0, 1.0, 0.0, 0.0]
    assert box_cell_coverage([0, 2, 2, 4], (4, 4), (2, 2)).tolist() == [0.0, 0.0, 1.0, 0.0]
    # image_size is (width, height), grid is (rows, cols).
    assert box_cell_coverage([0, 0, 4, 4], (8, 4), (1, 2)).tolist() == [1.0, 0.0]
    assert attention_in_box(torch.tensor([0.5, 0.5, 0.0, 0.0]), cover) == 0.5
    with pytest.raises(ValueError):
        box_cell_coverage([2, 0, 1, 2], (4, 4), (2, 2))


OBJECTS = [
    {"shape": "circle", "colour": "red", "size": "small", "box": [0, 0, 2, 2]},
    {"shape": "circle", "colour": "blue", "size": "large", "box": [2, 2, 4, 4]},
    {"shape": "square", "colour": "blue", "size": "small", "box": [0, 2, 2, 4]},
]


def _words(caption: str) -> list[str]:
    return caption.split()


def test_word_grounding() -> None:
    words = "a small red circle above a blue circle , a green star , a circle and a large square"
    assert word_grounding(words.split(), OBJECTS, WORDS) == [
        (3, [0]),  # adjectives narrow the two circles to one
        (7, [1]),
        (11, []),  # no star: hallucinated
        (14, [0, 1]),  # a bare noun may be either circle
        (18, []),  # the square is small
    ]
    assert word_grounding(_words("a red blue circle"), OBJECTS, WORDS) == [(3, [])]


def test_attention_correctness() -> None:
    words = _words("a small red circle")
    attention = torch.full((5, 4), 0.25)  # one extra row for EOS
    attention[3] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    result = attention_correctness([words], [attention], [OBJECTS], [(4, 4)], (2, 2), WORDS)
    assert result.score == pytest.approx(1.0)
    assert result.uniform == pytest.approx(4 / 16)  # box area / image area
    assert (result.n_words, result.n_hallucinated) == (1, 0)

    # Right object, wrong object, hallucination, and a bare noun scored on the union.
    words = _words("a red circle near a blue circle , a star and a circle")
    attention = torch.zeros(len(words), 4)
    attention[2, 0] = attention[6, 0] = 1.0
    attention[12] = torch.tensor([0.5, 0.0, 0.0, 0.5])
    result = attention_correctness([words], [attention], [OBJECTS], [(4, 4)], (2, 2), WORDS)
    assert result.score == pytest.approx(2 / 3)
    assert result.uniform == pytest.approx((0.25 + 0.25 + 0.5) / 3)
    assert (result.n_words, result.n_hallucinated) == (3, 1)

    empty = attention_correctness(
        [["a"]], [torch.ones(1, 4) / 4], [OBJECTS], [(4, 4)], (2, 2), WORDS
    )
    assert math.isnan(empty.score) and empty.n_words == 0
    with pytest.raises(ValueError, match="expected at least"):
        attention_correctness([words], [torch.zeros(2, 4)], [OBJECTS], [(4, 4)], (2, 2), WORDS)
    with pytest.raises(ValueError, match="must align"):
        attention_correctness([words], [], [OBJECTS], [(4, 4)], (2, 2), WORDS)


# ---------------------------------------------------------------- attention figure


def test_plot_caption_attention(tmp_path) -> None:
    from PIL import Image

    image = Image.new("RGB", (32, 32), (200, 200, 200))
    words = ["a", "red", "circle"]
    attention = torch.softmax(torch.randn(4, 4, generator=torch.Generator().manual_seed(0)), -1)
    out = plot_caption_attention(image, words, attention, (2, 2), tmp_path / "figs" / "a.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 1000
    with pytest.raises(ValueError, match="expected at least"):
        plot_caption_attention(image, words, attention[:2], (2, 2), tmp_path / "b.png")
    with pytest.raises(ValueError, match="expected at least"):
        plot_caption_attention(image, words, torch.ones(3, 5), (2, 2), tmp_path / "c.png")
    assert not (tmp_path / "b.png").exists()
