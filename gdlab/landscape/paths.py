"""Loss along straight paths between minima, the barriers on them, flat connections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from gdlab._checks import InputError
from gdlab.atlas.cluster import first_seen
from gdlab.problem import Problem


def path_losses(problem: Problem, a_MP: jax.Array, b_MP: jax.Array, unravel: Callable,
                num_points: int = 25, data: Any = None) -> jax.Array:
    """(M, num_points) loss at evenly spaced points from a_m to b_m (flat params)."""
    if num_points < 2:
        raise InputError(f"num_points must be >= 2, got {num_points}")
    data = problem.data if data is None else data
    ts = jnp.linspace(0.0, 1.0, num_points)

    def along(a, b):
        return jax.vmap(lambda t: problem.loss(unravel((1 - t) * a + t * b), data))(ts)
    return jax.jit(lambda a, b: jax.lax.map(lambda ab: along(*ab), (a, b), batch_size=64))(
        a_MP, b_MP)


def path_barrier(losses_MT: np.ndarray) -> np.ndarray:
    """Max loss on the path minus the mean of the two endpoint losses."""
    losses_MT = np.asarray(losses_MT)
    return losses_MT.max(axis=-1) - 0.5 * (losses_MT[..., 0] + losses_MT[..., -1])


def barrier_matrix(problem: Problem, minima_params: list[Any], num_points: int = 25,
                   align: Callable[[Any, Any], Any] | None = None) -> np.ndarray:
    """(M, M) barriers between every pair of minima (0 on the diagonal).

    With `align(reference, other)`, each `other` is first moved to the member of its
    symmetry orbit closest to `reference` (e.g. `symmetry.align_tanh_mlp`).
    """
    m = len(minima_params)
    out = np.zeros((m, m))
    if m < 2:
        return out
    _, unravel = ravel_pytree(minima_params[0])
    flat = lambda p: ravel_pytree(jax.tree.map(jnp.asarray, p))[0]
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    a = jnp.stack([flat(minima_params[i]) for i, _ in pairs])
    b = jnp.stack([flat(minima_params[j] if align is None
                        else align(minima_params[i], minima_params[j])) for i, j in pairs])
    values = path_barrier(np.asarray(path_losses(problem, a, b, unravel, num_points)))
    for (i, j), v in zip(pairs, values, strict=True):
        out[i, j] = out[j, i] = v
    return out


def connected_groups(problem: Problem, points_MP: np.ndarray, unravel: Callable, tol: float,
                     neighbours: int = 8, num_points: int = 25) -> np.ndarray:
    """(M,) group id per point: points joined by a flat straight path share a group.

    Each point is tested against its `neighbours` nearest points (KD-tree); a pair is
    joined when both ends have the same loss within `tol` and no point of the straight
    path between them rises more than `tol` above the higher end. Groups are the
    connected components of the joined pairs (ids in order of first appearance).
    """
    m = len(points_MP)
    if m < 2:
        return np.zeros(m, np.int64)
    k = min(neighbours, m - 1)
    _, nearest_MK = cKDTree(points_MP).query(points_MP, k=k + 1)
    pairs = np.unique(np.sort(np.stack([np.repeat(np.arange(m), k + 1), nearest_MK.ravel()],
                                       axis=1), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    a, b = (jnp.asarray(points_MP[pairs[:, i]], jnp.float32) for i in (0, 1))
    losses = np.asarray(path_losses(problem, a, b, unravel, num_points), np.float64)
    ends = losses[:, [0, -1]]
    flat = (np.abs(ends[:, 0] - ends[:, 1]) <= tol) & (losses.max(axis=1) <= ends.max(1) + tol)
    graph = coo_matrix((np.ones(int(flat.sum())), tuple(pairs[flat].T)), shape=(m, m))
    return first_seen(connected_components(graph, directed=False)[1])
