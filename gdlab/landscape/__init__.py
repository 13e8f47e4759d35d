"""The loss landscape between and around minima: losses along paths, barriers, flat
connections (`paths`), and curvature from Hessians and Hessian-vector products (`curvature`).
"""

from gdlab.landscape import curvature
from gdlab.landscape.paths import barrier_matrix, connected_groups, path_barrier, path_losses

__all__ = ["barrier_matrix", "connected_groups", "curvature", "path_barrier", "path_losses"]
