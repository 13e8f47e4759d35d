"""Loss along straight paths between minima, the barriers on them, flat connections.

One jitted kernel (`path_losses`) evaluates every path: its static arguments are the
problem's loss (hashed by identity) and the number of points; endpoints, a params
example (for the unravel) and the data are traced, so repeated calls with the same
shapes compile nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from gdlab._checks import check_int, check_positive
from gdlab._tree import flatten_one
from gdlab.problem import Problem
from gdlab.stats import first_seen

LossFn = Callable[[Any, Any], jax.Array]


def path_losses(problem: Problem, a_MP: jax.Array, b_MP: jax.Array, num_points: int = 25,
                data: Any = None, *, like: Any = None) -> jax.Array:
    """(M, num_points) loss at evenly spaced points from a_m to b_m (flat params).

    Args:
      problem: the problem whose loss is evaluated.
      a_MP, b_MP: (M, P) raveled params (`jax.flatten_util.ravel_pytree` order) of the
        paths' start and end points.
      num_points: points per path, ends included (>= 2).
      data: the batch the loss is evaluated on (default: the problem's data).
      like: one params pytree (no seed axis) giving the structure to unravel into
        (default: the problem's params).

    Returns:
      (M, num_points) losses; column 0 at a_m, the last column at b_m.

    Example:
      >>> path_losses(p, a_MP, b_MP, num_points=25)
    """
    num_points = check_int("num_points", num_points, 2)
    data = problem.data if data is None else data
    like = _zeros_like_params(problem) if like is None else like
    return path_kernel(problem.loss, a_MP, b_MP, like, data, num_points=num_points)


@functools.partial(jax.jit, static_argnames=("loss", "num_points"))
def path_kernel(loss: LossFn, a_MP: jax.Array, b_MP: jax.Array, like: Any, data: Any,
                num_points: int) -> jax.Array:
    """(M, num_points) values of `loss(params, data)` (any scalar function: the loss, an
    error) along the straight paths a_m -> b_m: the kernel of `path_losses` and of
    `barriers.path_values`, one compile per (function, shapes, num_points)."""
    _, unravel = ravel_pytree(like)
    ts = jnp.linspace(0.0, 1.0, num_points)

    def along(ab):
        a, b = ab
        return jax.vmap(lambda t: loss(unravel((1 - t) * a + t * b), data))(ts)
    return jax.lax.map(along, (a_MP, b_MP), batch_size=64)


def _zeros_like_params(problem: Problem) -> Any:
    """A params example of the problem, zeros, from its shapes alone."""
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), problem.params_shape())


def path_barrier(losses_MT: np.ndarray) -> np.ndarray:
    """Max loss on the path minus the mean of the two endpoint losses."""
    losses_MT = np.asarray(losses_MT)
    return losses_MT.max(axis=-1) - 0.5 * (losses_MT[..., 0] + losses_MT[..., -1])


def barrier_matrix(problem: Problem, minima_params: list[Any], num_points: int = 25,
                   align: Callable[[Any, Any], Any] | None = None) -> np.ndarray:
    """(M, M) barriers between every pair of minima (0 on the diagonal).

    Args:
      problem: the problem whose loss is evaluated.
      minima_params: M params pytrees (no seed axis).
      num_points: points per straight path.
      align: optional `align(reference, other)` moving each `other` to the member of its
        symmetry orbit closest to `reference` first (e.g. `symmetry.align_tanh_mlp`).

    Returns:
      (M, M) symmetric barriers (`path_barrier`), 0 on the diagonal.

    Example:
      >>> barrier_matrix(p, [m.params for m in atlas.minima], align=align_tanh_mlp)
    """
    m = len(minima_params)
    out = np.zeros((m, m))
    if m < 2:
        return out
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    a = np.stack([flatten_one(minima_params[i]) for i, _ in pairs])
    b = np.stack([flatten_one(minima_params[j] if align is None
                              else align(minima_params[i], minima_params[j]))
                  for i, j in pairs])
    losses = path_losses(problem, a, b, num_points, like=minima_params[0])
    for (i, j), v in zip(pairs, path_barrier(np.asarray(losses)), strict=True):
        out[i, j] = out[j, i] = v
    return out


def connected_groups(problem: Problem, points_MP: np.ndarray, tol: float,
                     neighbours: int = 8, num_points: int = 25, *,
                     like: Any = None) -> np.ndarray:
    """(M,) group id per point: points joined by a flat straight path share a group.

    Each point is tested against its `neighbours` nearest points (KD-tree); a pair is
    joined when both ends have the same loss within `tol` and no point of the straight
    path between them rises more than `tol` above the higher end. Groups are the
    connected components of the joined pairs (ids in order of first appearance).

    Args:
      problem: the problem whose loss is evaluated.
      points_MP: (M, P) raveled params.
      tol: loss tolerance of a flat connection (> 0).
      neighbours: nearest points tested per point.
      num_points: points per straight path.
      like: one params pytree to unravel into (default: the problem's params).

    Returns:
      (M,) int group ids, numbered in order of first appearance.

    Example:
      >>> connected_groups(p, flatten_seeds(runs.params), tol=1e-6)
    """
    tol = check_positive("tol", tol)
    neighbours = check_int("neighbours", neighbours, 1)
    m = len(points_MP)
    if m < 2:
        return np.zeros(m, np.int64)
    pairs = _neighbour_pairs(np.asarray(points_MP), min(neighbours, m - 1))
    a, b = (np.asarray(points_MP[pairs[:, i]], np.float32) for i in (0, 1))
    losses = np.asarray(path_losses(problem, a, b, num_points, like=like), np.float64)
    ends = losses[:, [0, -1]]
    flat = (np.abs(ends[:, 0] - ends[:, 1]) <= tol) & (losses.max(axis=1) <= ends.max(1) + tol)
    graph = coo_matrix((np.ones(int(flat.sum())), tuple(pairs[flat].T)), shape=(m, m))
    return first_seen(connected_components(graph, directed=False)[1])


def _neighbour_pairs(points_MP: np.ndarray, k: int) -> np.ndarray:
    """(K, 2) unique index pairs i < j of every point and its k nearest (KD-tree)."""
    m = len(points_MP)
    _, nearest_MK = cKDTree(points_MP).query(points_MP, k=k + 1)
    pairs = np.unique(np.sort(np.stack([np.repeat(np.arange(m), k + 1), nearest_MK.ravel()],
                                       axis=1), axis=1), axis=0)
    return pairs[pairs[:, 0] != pairs[:, 1]]

