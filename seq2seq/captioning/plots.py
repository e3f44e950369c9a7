"""Where a captioner looked for each word, drawn as in Xu et al. (2015, Show, Attend and Tell):
the image, then one panel per generated word with its attention map laid over the image.

Like :mod:`seq2seq.translation.plots`, this draws on an Agg canvas without ``pyplot``: no backend is
switched, no window can open, and the figure is freed with its last reference.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from seq2seq.figures import new_figure

#: Panels per row before wrapping.
PANELS_PER_ROW = 5


def _upsampled_maps(attention: Tensor, grid: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """``(N, H*W)`` attention rows to ``(N, height, width)`` maps in ``[0, 1]``.

    Bilinear upsampling gives the smooth blobs of the paper rather than blocky cells. Each map
    is divided by its own maximum: attention over a 14x14 grid is mostly around 1/196, which
    would draw every map nearly black on an absolute scale.
    """
    width, height = size
    maps = attention.detach().to("cpu", torch.float32).reshape(-1, 1, *grid)
    maps = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    peak = maps.flatten(1).amax(dim=1).clamp(min=1e-12)
    return (maps / peak[:, None, None]).clamp(0, 1)


def plot_caption_attention(
    image: Image.Image,
    words: Sequence[str],
    attention: Tensor,
    grid: tuple[int, int],
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Draw a caption's attention maps, one panel per word, wrapped into rows.

    Args:
        image: the captioned image (any PIL mode; drawn as RGB).
        words: the ``T`` generated words (without BOS/EOS).
        attention: ``(L, H*W)`` with ``L >= T``: row ``t`` is the attention that generated
            word ``t``. An extra row (the EOS step) is drawn as a ``</s>`` panel; rows beyond
            that are ignored.
        grid: ``(H, W)`` feature grid of the attention.
        path: where to write the PNG; missing parent directories are created.
        title: optional figure title (e.g. the model and image name).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: when ``attention`` is not ``(L, H*W)`` with ``L >= len(words)``.
    """
    rows_h, cols_w = grid
    if rows_h <= 0 or cols_w <= 0:
        raise ValueError(f"grid {grid} must be positive")
    if (
        attention.dim() != 2
        or attention.size(0) < len(words)
        or attention.size(1) != rows_h * cols_w
    ):
        raise ValueError(
            f"attention has shape {tuple(attention.shape)}, expected at least "
            f"({len(words)}, {rows_h * cols_w}) for {len(words)} words on a {grid} grid"
        )
    labels = [*words, "</s>"] if attention.size(0) > len(words) else list(words)
    picture = np.asarray(image.convert("RGB"))
    maps = _upsampled_maps(attention[: len(labels)], grid, image.size).numpy()

    n_panels = 1 + len(labels)
    n_cols = min(PANELS_PER_ROW, n_panels)
    n_rows = math.ceil(n_panels / n_cols)
    fig = new_figure(2.4 * n_cols, 2.5 * n_rows + (0.4 if title else 0.0))
    axes = fig.subplots(n_rows, n_cols, squeeze=False).flatten()
    for ax in axes:
        ax.set_axis_off()  # also blanks the unused panels of the last row
    axes[0].imshow(picture)
    axes[0].set_title("\n".join(textwrap.wrap(" ".join(words), 28)) or "(empty)", fontsize=9)
    for ax, label, heat in zip(axes[1:], labels, maps, strict=False):
        ax.imshow(picture)
        # Grey overlay: attended regions show through light, the rest is darkened.
        ax.imshow(heat, cmap="gray", vmin=0.0, vmax=1.0, alpha=0.7)
        ax.set_title(label, fontsize=11)
    if title:
        fig.suptitle(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, format="png")
    return out
