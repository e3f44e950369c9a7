"""Attention correctness (Liu et al. 2017, "Attention Correctness in Neural Image Captioning"):
how much of the attention used to generate an object's noun falls inside that object's box.

Written for data whose records keep every object's attributes and box, and whose captions
name objects as noun phrases such as "a small red circle" (the synthetic scenes of
:mod:`seq2seq.datasets.scenes`); :class:`ObjectWords` says which words name an object and which
adjectives narrow it, so the metric knows nothing of any one data set. Attention is over the
encoder's feature grid, so each box is first turned into the share of every grid cell it
covers, assuming the CNN sees the whole image resized to its input (no crop) and the feature
grid tiles that image evenly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class ObjectWords:
    """The words of a caption that name an object, and the adjectives that narrow it.

    Attributes:
        noun_key: the object record's key that a noun names (``"shape"``).
        nouns: the words that are values of ``noun_key`` (``"circle"``, ``"square"``...).
        adjectives: for other record keys, the words that are their values
            (``{"colour": {"red", ...}, "size": {"small", "large"}}``).
    """

    noun_key: str
    nouns: frozenset[str]
    adjectives: Mapping[str, frozenset[str]]

    def attribute_of(self, word: str) -> str | None:
        """The record key ``word`` is a value of, among the adjectives; None if none."""
        for key, words in self.adjectives.items():
            if word in words:
                return key
        return None


def box_cell_coverage(
    box: Sequence[float], image_size: tuple[int, int], grid: tuple[int, int]
) -> Tensor:
    """Share of each grid cell's area that lies inside ``box``.

    Cell ``(r, c)`` of an ``H x W`` grid covers ``x`` in ``[c * width / W, (c + 1) * width / W)``
    and likewise ``y``; cells are listed row-major, like ``features.flatten(2)``.

    Args:
        box: half-open pixel box ``[x0, y0, x1, y1]`` (as in ``Image.crop``); parts outside
            the image are ignored.
        image_size: ``(width, height)`` of the image in pixels, as PIL gives it.
        grid: ``(H, W)`` feature grid, rows first, as the encoder reports it.

    Returns:
        ``(H*W,)`` float tensor of values in ``[0, 1]``.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    width, height = image_size
    rows, cols = grid
    if width <= 0 or height <= 0 or rows <= 0 or cols <= 0:
        raise ValueError(f"image size {image_size} and grid {grid} must be positive")
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box {list(box)} must have x0 <= x1 and y0 <= y1")

    def overlap(lo: float, hi: float, extent: int, cells: int) -> Tensor:
        """``(cells,)`` share of each cell's span along one axis inside ``[lo, hi)``."""
        edges = torch.arange(cells + 1, dtype=torch.float64) * (extent / cells)
        inside = torch.minimum(edges[1:], torch.tensor(hi)) - torch.maximum(
            edges[:-1], torch.tensor(lo)
        )
        return inside.clamp(min=0) / (extent / cells)

    # A box is a product of intervals, so its overlap with a cell is the product of the
    # per-axis overlaps.
    share = overlap(y0, y1, height, rows)[:, None] * overlap(x0, x1, width, cols)[None, :]
    return share.flatten().to(torch.get_default_dtype())


def attention_in_box(attention_row: Tensor, coverage: Tensor) -> float:
    """Attention mass inside a box: ``sum_cell alpha_cell * coverage_cell``.

    Exact when attention is spread evenly within each cell, which is all a grid of features
    can say about it.

    Args:
        attention_row: ``(H*W,)`` attention weights over the grid (summing to 1).
        coverage: ``(H*W,)`` from :func:`box_cell_coverage`.

    Returns:
        The mass, in ``[0, 1]`` for normalised attention.
    """
    if attention_row.dim() != 1 or attention_row.shape != coverage.shape:
        raise ValueError(
            f"attention {tuple(attention_row.shape)} and coverage {tuple(coverage.shape)} "
            "must both be (H*W,)"
        )
    row = attention_row.detach().to("cpu", torch.float64)
    return float((row * coverage.to(torch.float64)).sum())


def word_grounding(
    words: Sequence[str], objects: Sequence[Mapping[str, Any]], vocabulary: ObjectWords
) -> list[tuple[int, list[int]]]:
    """The objects each noun of a caption can refer to.

    A noun's candidates are the objects it names (a shape), narrowed by the adjectives right
    before it ("small red circle"): the scenes' grammar puts a noun phrase's adjectives there
    and nowhere else.

    Args:
        words: the caption's tokens.
        objects: the image's object records (``shape``, ``colour``, ``size``, ``box``).
        vocabulary: which words are nouns and adjectives of the records' keys.

    Returns:
        ``(position, object indices)`` for every word that is a shape noun, in caption order;
        an empty list marks a hallucinated object, one the image does not contain.
    """
    grounding = []
    for t, word in enumerate(words):
        if word not in vocabulary.nouns:
            continue
        wanted: dict[str, str] = {vocabulary.noun_key: word}
        k = t - 1
        while k >= 0 and (attribute := vocabulary.attribute_of(words[k])) is not None:
            # Two different colours on one noun ("red blue circle") fit no object: keep a
            # sentinel instead of silently letting the nearer adjective win.
            if wanted.get(attribute, words[k]) != words[k]:
                wanted[attribute] = ""
            else:
                wanted[attribute] = words[k]
            k -= 1
        matches = [
            i for i, obj in enumerate(objects) if all(obj[a] == v for a, v in wanted.items())
        ]
        grounding.append((t, matches))
    return grounding


@dataclass
class AttentionCorrectness:
    """Attention correctness of a set of captions.

    Attributes:
        score: mean attention mass inside the referred object(s) over the grounded nouns;
            NaN when no noun was grounded.
        uniform: the same mean for uniform attention, i.e. the mean share of the image the
            objects cover: the chance baseline ``score`` should beat.
        n_words: grounded nouns scored.
        n_hallucinated: nouns naming an object the image does not contain (not scored).
    """

    score: float
    uniform: float
    n_words: int
    n_hallucinated: int


def attention_correctness(
    captions: Sequence[Sequence[str]],
    attentions: Sequence[Tensor],
    objects: Sequence[Sequence[Mapping[str, Any]]],
    image_sizes: Sequence[tuple[int, int]],
    grid: tuple[int, int],
    vocabulary: ObjectWords,
) -> AttentionCorrectness:
    """Score the attention of generated captions against the scenes' object boxes.

    When a noun could refer to several objects (a bare "circle" in a scene with two), the
    attention mass inside the union of their boxes counts, each cell covered by the most any
    candidate box covers it.

    Args:
        captions: ``N`` generated captions as tokens (without BOS/EOS).
        attentions: ``N`` tensors ``(L, H*W)``: row ``t`` is the attention used to generate
            word ``t``; rows beyond the caption (the EOS step, padding) are ignored.
        objects: ``N`` lists of object records (``shape``, ``colour``, ``size``, ``box``).
        image_sizes: ``N`` ``(width, height)`` of the images the boxes refer to.
        grid: ``(H, W)`` feature grid.
        vocabulary: which words name objects and their attributes (see :func:`word_grounding`).

    Returns:
        The scores; ``score`` and ``uniform`` are NaN when there is nothing to score.

    Raises:
        ValueError: when the sequences differ in length or an attention has the wrong shape.
    """
    n = len(captions)
    if not len(attentions) == len(objects) == len(image_sizes) == n:
        raise ValueError(
            f"{n} captions, {len(attentions)} attentions, {len(objects)} object lists and "
            f"{len(image_sizes)} image sizes: they must align"
        )
    cells = grid[0] * grid[1]
    total = baseline = 0.0
    n_words = n_hallucinated = 0
    for i, (words, attention) in enumerate(zip(captions, attentions, strict=True)):
        if attention.dim() != 2 or attention.size(0) < len(words) or attention.size(1) != cells:
            raise ValueError(
                f"attention {i} has shape {tuple(attention.shape)}, expected at least "
                f"({len(words)}, {cells}) for {len(words)} words on a {grid} grid"
            )
        for t, candidates in word_grounding(words, objects[i], vocabulary):
            if not candidates:
                n_hallucinated += 1
                continue
            coverage = torch.stack(
                [box_cell_coverage(objects[i][j]["box"], image_sizes[i], grid) for j in candidates]
            ).amax(dim=0)
            total += attention_in_box(attention[t], coverage)
            baseline += float(coverage.mean())
            n_words += 1
    if n_words == 0:
        return AttentionCorrectness(math.nan, math.nan, 0, n_hallucinated)
    return AttentionCorrectness(total / n_words, baseline / n_words, n_words, n_hallucinated)
