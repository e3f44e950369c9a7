"""The figure factory shared by the translation and captioning plots.

matplotlib is imported inside the function, so the rest of the package neither needs it
installed nor pays for importing it. Figures are drawn with the object-oriented API on an Agg
canvas rather than through ``pyplot``: no global backend is switched, no window can open, and
nothing leaks between calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` × ``height`` inches attached to an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig
