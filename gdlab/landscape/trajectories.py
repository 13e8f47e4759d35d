"""Training trajectories in the loss landscape: PCA of the path, and the path drawn on the
2-D slice spanned by its top two principal directions (Li et al. 2018, section 7).

Per path (the params at every evaluation, `Runs.trajectory`): the matrix of
`x_e - x_end` (the path minus its end point, E x P) is decomposed by SVD; its right
singular vectors are the principal directions, the squared singular values over their sum
the explained variance. The path is then projected onto the plane through `x_end`
spanned by the top two directions and the loss evaluated on a grid there.

A known trap of this picture: a projected point is not the trained point. The loss at
`x_end + c1 d1 + c2 d2` (what the contours show under the path) can differ a lot from the
loss the run actually had at `x_e`, all the more the less of the path the two directions
explain. `trajectory_slice` returns both losses and their difference (`mismatch`) and the
distance of every point from the plane, so a figure can show them rather than hide them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gdlab._checks import InputError, check_int, check_real
from gdlab.landscape.slices import (
    Slice,
    grid_losses,
    point_losses,
)
from gdlab.problem import Problem

PyTree = Any


@dataclasses.dataclass(frozen=True)
class TrajectoryPCA:
    """Principal directions of paths minus their end points (leading axis K when several).

    Attributes:
      components: (K, C, P) unit principal directions (rows, `ravel_pytree` order), signed
        so the path's start has a coordinate >= 0 on each.
      explained: (K, C) explained-variance ratios (squared singular values over their
        total: all C' = min(E, P) of them sum to 1).
      singular_values: (K, C).
      coords: (K, E, C) coordinates of `x_e - x_end` on the components.
      end: (K, P) the flat end points.
      off_plane: (K, E) distance of each point from its projection on the top two
        components (0 when two components explain the path).
    """

    components: np.ndarray
    explained: np.ndarray
    singular_values: np.ndarray
    coords: np.ndarray
    end: np.ndarray
    off_plane: np.ndarray


@dataclasses.dataclass(frozen=True)
class TrajectorySlice:
    """A path drawn on the slice of its top two principal directions, with the mismatch.

    Attributes:
      slice: the `Slice` through the end point (alphas, betas (K, num) per path; loss
        (K, num, num)); `slice.points` is `path`.
      pca: the `TrajectoryPCA`.
      path: (K, E, 2) coordinates of the projected path.
      true_loss: (K, E) the loss at each recorded params.
      plane_loss: (K, E) the loss at each point's projection on the plane (computed
        exactly there, not read off the grid).
      mismatch: (K, E) `true_loss - plane_loss`.
    """

    slice: Slice
    pca: TrajectoryPCA
    path: np.ndarray
    true_loss: np.ndarray
    plane_loss: np.ndarray
    mismatch: np.ndarray

    @property
    def max_abs_mismatch(self) -> np.ndarray:
        """(K,) the largest |true - plane| loss along each path."""
        return np.abs(self.mismatch).max(axis=-1)


def _paths(problem: Problem, trajectory: PyTree) -> tuple[np.ndarray, bool]:
    """(K, E, P) flat paths and whether the input had the leading axis K."""
    ref_leaves, ref_tree = jax.tree.flatten(problem.params_shape())
    leaves, tree = jax.tree.flatten(trajectory)
    if tree != ref_tree:
        raise InputError(f"trajectory does not have the structure of problem "
                         f"{problem.name!r}'s params: {tree} vs {ref_tree}")
    extra = {np.ndim(x) - len(r.shape) for r, x in zip(ref_leaves, leaves, strict=True)}
    if extra not in ({1}, {2}):
        raise InputError("trajectory leaves must be (E, ...) for one path or (K, E, ...) for "
                         "K paths (Runs.trajectory), with the problem's params shape after")
    many = extra == {2}
    arrays = [np.asarray(x, np.float64) for x in leaves]
    if not many:
        arrays = [x[None] for x in arrays]
    k, e = arrays[0].shape[:2]
    if any(x.shape[:2] != (k, e) for x in arrays):
        raise InputError("trajectory leaves disagree on their leading (K, E) axes")
    if e < 2:
        raise InputError(f"a trajectory needs at least 2 recorded points, got E={e}")
    return np.concatenate([x.reshape(k, e, -1) for x in arrays], axis=2), many


def trajectory_pca(problem: Problem, trajectory: PyTree, components: int = 2) -> TrajectoryPCA:
    """PCA of each path minus its end point (SVD, no further centring).

    Args:
      problem: gives the params' structure.
      trajectory: leaves (K, E, ...) (`Runs.trajectory`) or (E, ...) for one path.
      components: principal directions kept, C (1 <= C; capped at min(E, P)).

    Returns:
      A `TrajectoryPCA` (without the axis K for one path).

    Example:
      >>> pca = trajectory_pca(p, runs.trajectory); pca.explained[:, :2].sum(-1)
    """
    components = check_int("components", components, 1)
    paths_KEP, many = _paths(problem, trajectory)
    out = [_pca_one(path, components) for path in paths_KEP]
    fields = {f.name: np.stack([getattr(o, f.name) for o in out])
              for f in dataclasses.fields(TrajectoryPCA)}
    return TrajectoryPCA(**fields) if many else TrajectoryPCA(**{k: v[0] for k, v in
                                                                 fields.items()})


def _pca_one(path_EP: np.ndarray, components: int) -> TrajectoryPCA:
    end = path_EP[-1]
    diff = path_EP - end
    _, s, vt = np.linalg.svd(diff, full_matrices=False)
    total = float((s**2).sum())
    c = min(components, len(s))
    vt = vt[:c] * np.where(diff[0] @ vt[:c].T < 0, -1.0, 1.0)[:, None]
    coords = diff @ vt.T
    plane = coords[:, :2] @ vt[:2]
    explained = s[:c] ** 2 / total if total > 0 else np.zeros(c)
    return TrajectoryPCA(vt, explained, s[:c], coords, end,
                         np.linalg.norm(diff - plane, axis=1))


def trajectory_slice(problem: Problem, trajectory: PyTree, num: int = 51, margin: float = 0.3,
                     *, data: Any = None, chunk: int | None = None) -> TrajectorySlice:
    """Each path on the 2-D slice of its top two principal directions, through its end.

    Args:
      problem: its loss is evaluated.
      trajectory: leaves (K, E, ...) (`Runs.trajectory`) or (E, ...) for one path.
      num: grid points per axis (>= 2).
      margin: fraction of the path's extent added on every side of the grid (>= 0).
      data: the batch the loss is evaluated on (default: the problem's data).
      chunk: grid points per vectorised chunk.

    Returns:
      A `TrajectorySlice`: the grid, the projected path, the true and the plane losses of
      every point and their mismatch (without the axis K for one path).

    Example:
      >>> ts = trajectory_slice(p, runs.trajectory); ts.max_abs_mismatch
    """
    num = check_int("num", num, 2)
    margin = check_real("margin", margin, low=0.0)
    paths_KEP, many = _paths(problem, trajectory)
    pca = trajectory_pca(problem, trajectory, components=2)
    comps, coords, end = (np.asarray(x) if many else np.asarray(x)[None]
                          for x in (pca.components, pca.coords, pca.end))
    if comps.shape[1] < 2:
        raise InputError("a trajectory slice needs two principal directions (E >= 3 points "
                         "off one line, or P >= 2)")
    path = coords[..., :2]
    axes = _grid_axes(path, num, margin)  # (K, 2, num)
    grid = np.stack([np.stack(np.meshgrid(a[0], a[1], indexing="ij"), -1).reshape(-1, 2)
                     for a in axes])
    like = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), problem.params_shape())
    dtype = jax.tree.leaves(like)[0].dtype
    end_S = _unflatten(problem, end.astype(dtype))
    dirs = jnp.asarray(comps[:, :2], dtype)
    k, e = path.shape[:2]
    loss_grid = np.asarray(grid_losses(problem, end_S, dirs, grid.astype(dtype), data, chunk))
    plane = np.asarray(grid_losses(problem, end_S, dirs, path.astype(dtype), data, chunk))
    true = np.asarray(point_losses(problem, _unflatten(problem, paths_KEP.reshape(k * e, -1)
                                                      .astype(dtype)), data, chunk)).reshape(k, e)
    sl = Slice(axes[:, 0], axes[:, 1], loss_grid.reshape(k, num, num),
               tuple(_unflatten(problem, comps[:, i].astype(dtype)) for i in (0, 1)), end_S,
               path, "none")
    out = TrajectorySlice(sl, pca, path, true, plane, true - plane)
    return out if many else _first(out)


def _grid_axes(path_KE2: np.ndarray, num: int, margin: float) -> np.ndarray:
    """(K, 2, num) grid coordinates covering each projected path plus a margin."""
    lo, hi = path_KE2.min(axis=1), path_KE2.max(axis=1)  # (K, 2)
    extent = np.maximum((hi - lo).max(axis=1, keepdims=True), 1e-6)
    lo, hi = lo - margin * extent, hi + margin * extent
    t = np.linspace(0.0, 1.0, num)
    return lo[..., None] + (hi - lo)[..., None] * t


def _unflatten(problem: Problem, flat_SP: np.ndarray) -> PyTree:
    """Params pytree with a leading axis from (S, P) flat rows (`ravel_pytree` order)."""
    leaves, tree = jax.tree.flatten(problem.params_shape())
    sizes = np.cumsum([int(np.prod(x.shape)) for x in leaves])[:-1]
    parts = np.split(np.asarray(flat_SP), sizes, axis=1)
    return tree.unflatten([jnp.asarray(p.reshape(len(flat_SP), *x.shape))
                           for p, x in zip(parts, leaves, strict=True)])


def _first(ts: TrajectorySlice) -> TrajectorySlice:
    """A one-path TrajectorySlice without the leading axis K."""
    sl = ts.slice
    first = lambda x: jax.tree.map(lambda a: a[0], x)
    one = Slice(sl.alphas[0], sl.betas[0], sl.loss[0], tuple(first(d) for d in sl.directions),
                first(sl.origin), sl.points[0], sl.normalize)
    return TrajectorySlice(one, ts.pca, ts.path[0], ts.true_loss[0], ts.plane_loss[0],
                           ts.mismatch[0])
