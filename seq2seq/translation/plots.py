"""Figures of the fixed-vector vs attention study (Bahdanau et al. 2015, Figures 2 and 3).

matplotlib is imported only when a figure is drawn (:mod:`seq2seq.figures`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seq2seq.figures import new_figure
from seq2seq.translation.metrics import BucketScore

if TYPE_CHECKING:
    pass


def plot_bleu_by_length(
    results: Mapping[str, Sequence[BucketScore]],
    path: str | Path,
    title: str = "BLEU by source sentence length",
) -> Path:
    """Draw BLEU against source-length bucket, one line per model (Bahdanau's Figure 2).

    Args:
        results: model name to its buckets, as
            :func:`seq2seq.translation.metrics.bleu_by_source_length` returns them;
            every model must use the same buckets.
        path: where to write the image (the format follows the suffix, e.g. ``.png``).
        title: the figure's title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: when ``results`` is empty or the models' buckets differ.
    """
    if not results:
        raise ValueError("no models to plot")
    labels = [b.label for b in next(iter(results.values()))]
    for name, buckets in results.items():
        if [b.label for b in buckets] != labels:
            raise ValueError(
                f"model {name!r} has buckets {[b.label for b in buckets]}, not {labels}"
            )
    counts = [b.sentences for b in next(iter(results.values()))]
    fig = new_figure(max(6.0, 0.9 * len(labels) + 2), 4.5)
    ax = fig.add_subplot()
    xs = list(range(len(labels)))
    for name, buckets in results.items():
        # NaN leaves a gap for an empty bucket instead of drawing a misleading zero.
        ys = [math.nan if b.bleu is None else b.bleu for b in buckets]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xticks(xs, [f"{label}\n(n={n})" for label, n in zip(labels, counts, strict=True)])
    ax.set_xlabel("source sentence length (words)")
    ax.set_ylabel("BLEU")
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title)
    out = Path(path)
    fig.savefig(out, dpi=100)
    return out


def plot_alignment(
    weights: Any,
    src_tokens: Sequence[str],
    tgt_tokens: Sequence[str],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Draw an attention matrix as Bahdanau's Figure 3: source tokens along the top, target
    tokens down the side, weight 0 black and 1 white.

    Args:
        weights: ``(T, S)`` array-like (numpy array, CPU tensor, nested lists): row ``i`` is the
            attention of target token ``i`` over the ``S`` source tokens.
        src_tokens: the ``S`` source token labels.
        tgt_tokens: the ``T`` target token labels.
        path: where to write the image.
        title: optional title (e.g. the model and line number).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: when ``weights`` is not ``(len(tgt_tokens), len(src_tokens))``.
    """
    import numpy as np

    matrix = np.asarray(weights, dtype=float)
    expected = (len(tgt_tokens), len(src_tokens))
    if matrix.ndim != 2 or matrix.shape != expected:
        raise ValueError(f"weights have shape {matrix.shape}, expected (target, source) {expected}")
    # About a third of an inch per token keeps the labels readable; the cap keeps a 250-token
    # input from asking for a poster.
    fig = new_figure(min(40.0, 0.32 * expected[1] + 2.5), min(40.0, 0.32 * expected[0] + 2.0))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="gray", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(expected[1]), list(src_tokens), rotation=90)
    ax.set_yticks(range(expected[0]), list(tgt_tokens))
    ax.xaxis.tick_top()
    ax.set_xlabel("source")
    ax.xaxis.set_label_position("top")
    ax.set_ylabel("target")
    fig.colorbar(image, ax=ax, fraction=0.03)
    if title:
        fig.suptitle(title)
    out = Path(path)
    fig.savefig(out, dpi=100)
    return out
