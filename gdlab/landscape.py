"""Loss along straight paths between minima, and the barriers on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gdlab.problem import Problem


def path_losses(problem: Problem, a_MP: jax.Array, b_MP: jax.Array, unravel: Callable,
                num_points: int = 25, data: Any = None) -> jax.Array:
    """(M, num_points) loss at evenly spaced points from a_m to b_m (flat params)."""
    if num_points < 2:
        raise ValueError(f"num_points must be >= 2, got {num_points}")
    data = problem.data if data is None else data
    ts = jnp.linspace(0.0, 1.0, num_points)

    def along(a, b):
        return jax.vmap(lambda t: problem.loss(unravel((1 - t) * a + t * b), data))(ts)
    return jax.jit(lambda a, b: jax.lax.map(lambda ab: along(*ab), (a, b), batch_size=64))(
        a_MP, b_MP)


def barrier(losses_MT: np.ndarray) -> np.ndarray:
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
    values = barrier(np.asarray(path_losses(problem, a, b, unravel, num_points)))
    for (i, j), v in zip(pairs, values, strict=True):
        out[i, j] = out[j, i] = v
    return out
