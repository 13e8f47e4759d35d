"""The loss landscape between and around minima: losses along paths, barriers, flat
connections (`paths`), and curvature from Hessians and Hessian-vector products (`curvature`).

Each analysis is a module-level jitted kernel keyed on the problem's loss function and
the shapes: params and data are inputs, so repeated calls (also on new data of the same
shape) compile nothing.
"""

from gdlab.landscape import barriers, curvature, curves, sharpness, slices, trajectories
from gdlab.landscape.barriers import barrier, barrier_matrix, path_values
from gdlab.landscape.curves import Curve, CurveComparison, compare_curve, curve_losses, fit_curve
from gdlab.landscape.paths import connected_groups, path_barrier, path_losses
from gdlab.landscape.sharpness import epsilon_sharpness
from gdlab.landscape.sharpness import sharpness as measure_sharpness
from gdlab.landscape.slices import Slice, interpolate, slice_1d, slice_2d, slice_plane
from gdlab.landscape.trajectories import (
    TrajectoryPCA,
    TrajectorySlice,
    trajectory_pca,
    trajectory_slice,
)

__all__ = ["barrier_matrix", "connected_groups", "curvature", "path_barrier", "path_losses"]
__all__ += ["barrier", "barriers", "path_values"]
__all__ += ["Curve", "CurveComparison", "Slice", "TrajectoryPCA", "TrajectorySlice",
            "compare_curve", "curve_losses", "curves", "epsilon_sharpness", "fit_curve",
            "interpolate", "measure_sharpness", "sharpness", "slice_1d", "slice_2d",
            "slice_plane", "slices", "trajectories", "trajectory_pca", "trajectory_slice"]
