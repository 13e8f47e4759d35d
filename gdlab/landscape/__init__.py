"""The loss landscape between and around minima: losses along paths, barriers, flat
connections (`paths`), and curvature from Hessians and Hessian-vector products (`curvature`).

Each analysis is a module-level jitted kernel keyed on the problem's loss function and
the shapes: params and data are inputs, so repeated calls (also on new data of the same
shape) compile nothing.
"""

from gdlab.landscape import curvature
from gdlab.landscape.paths import barrier_matrix, connected_groups, path_barrier, path_losses

__all__ = ["barrier_matrix", "connected_groups", "curvature", "path_barrier", "path_losses"]
