"""Figures. Every function takes arrays (or results) and returns a `matplotlib.figure.Figure`
built with the Figure API: no pyplot state, no backend switch, so importing gdlab never
changes a notebook's backend. Functions that draw one panel accept `ax=`.

`figures`: minima, surfaces, barriers; `batch`: the batch-size lab; `costs`: step costs
and loss-evaluation schedules.
"""

from gdlab.plots import batch, costs, figures
from gdlab.plots._base import panel, subplots
from gdlab.plots.figures import *  # noqa: F403  (the common figures, as gdlab.plots.NAME)
from gdlab.plots.figures import __all__ as _figures

__all__ = ["batch", "costs", "figures", "panel", "subplots", *_figures]
