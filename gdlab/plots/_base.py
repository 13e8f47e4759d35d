"""Figure construction without pyplot: no global state, no backend switch."""

from __future__ import annotations

import os

from matplotlib.axes import Axes
from matplotlib.figure import Figure


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float],
             sharex: bool = False, sharey: bool = False) -> tuple[Figure, object]:
    """A new constrained-layout Figure and its axes (as `pyplot.subplots`, without pyplot)."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols, sharex=sharex, sharey=sharey)


def panel(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """Draw into the caller's `ax` (and its figure), or into a new one-panel Figure."""
    if ax is not None:
        return ax.get_figure(), ax
    return subplots(figsize=figsize)


def save(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> None:
    """Write a figure as PNG (or the format its suffix names)."""
    fig.savefig(path, dpi=dpi)
