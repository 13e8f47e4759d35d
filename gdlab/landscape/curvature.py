"""Gradient norms and extreme Hessian eigenvalues of many endpoints at once.

Small models: the exact Hessian (`jax.hessian` on the raveled params) and `eigvalsh`.
Large models: Lanczos with full reorthogonalisation on Hessian-vector products, which
recovers the extreme eigenvalues in a few dozen products.

Compile discipline: each analysis is one module-level jitted kernel whose static
arguments are the problem's loss function (hashed by identity) and small ints; params
and data are traced arguments, so repeated calls with the same shapes compile nothing,
also on new data.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from gdlab._checks import check_int
from gdlab.problem import Problem

LossFn = Callable[[Any, Any], jax.Array]


def grad_norms(problem: Problem, params_S: Any, data: Any, chunk: int = 256) -> jax.Array:
    """(S,) full-data gradient norm of every seed.

    Args:
      problem: its `loss` is differentiated.
      params_S: params with a leading seed axis S.
      data: the batch the loss is evaluated on (None for data-free problems).
      chunk: seeds per vectorised chunk.

    Returns:
      (S,) Euclidean norms of the gradients.

    Example:
      >>> grad_norms(p, runs.params, p.data)
    """
    chunk = check_int("chunk", chunk, 1)
    return _grad_norms(problem.loss, params_S, data, chunk=chunk)


@functools.partial(jax.jit, static_argnames=("loss", "chunk"))
def _grad_norms(loss: LossFn, params_S: Any, data: Any, chunk: int) -> jax.Array:
    """Kernel of `grad_norms`: one compile per (loss, shapes, chunk)."""
    grad = jax.grad(loss)
    def one(p):
        return jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grad(p, data))))
    return jax.lax.map(one, params_S, batch_size=chunk)


def _ravel_seeds(params_S: Any) -> tuple[jax.Array, Callable[[jax.Array], Any]]:
    """(S, P) raveled params and the unravel of one seed (traced inside the kernels)."""
    _, unravel = ravel_pytree(jax.tree.map(lambda x: x[0], params_S))
    return jax.vmap(lambda p: ravel_pytree(p)[0])(params_S), unravel


def exact_extremes(problem: Problem, params_S: Any, data: Any, chunk: int = 64) -> jax.Array:
    """(S, 2) smallest and largest Hessian eigenvalue, from the full Hessian.

    Args:
      problem: its `loss` is differentiated twice.
      params_S: params with a leading seed axis S (P small: the Hessian is P x P).
      data: the batch the loss is evaluated on.
      chunk: seeds per vectorised chunk.

    Returns:
      (S, 2): column 0 the smallest eigenvalue, column 1 the largest.

    Example:
      >>> exact_extremes(p, runs.params, p.data)[:, 1]   # sharpness of every seed
    """
    chunk = check_int("chunk", chunk, 1)
    return _exact_extremes(problem.loss, params_S, data, chunk=chunk)


@functools.partial(jax.jit, static_argnames=("loss", "chunk"))
def _exact_extremes(loss: LossFn, params_S: Any, data: Any, chunk: int) -> jax.Array:
    """Kernel of `exact_extremes`."""
    flat_S, unravel = _ravel_seeds(params_S)
    f = lambda flat: loss(unravel(flat), data)
    def one(flat):
        eig = jnp.linalg.eigvalsh(jax.hessian(f)(flat))
        return jnp.stack([eig[0], eig[-1]])
    return jax.lax.map(one, flat_S, batch_size=chunk)


def lanczos_extremes(problem: Problem, params_S: Any, data: Any, iters: int = 40,
                     chunk: int = 16, key: int = 0) -> jax.Array:
    """(S, 2) smallest and largest Hessian eigenvalue by Lanczos on Hessian-vector products.

    Args:
      problem: its `loss` gives the Hessian-vector products.
      params_S: params with a leading seed axis S.
      data: the batch the loss is evaluated on.
      iters: Lanczos steps (Hessian-vector products) per seed, at most P.
      chunk: seeds per vectorised chunk.
      key: integer seed of the (shared) random start vector.

    Returns:
      (S, 2): column 0 the smallest eigenvalue, column 1 the largest.

    Example:
      >>> lanczos_extremes(p, runs.params, p.data, iters=40)
    """
    iters, chunk = check_int("iters", iters, 1), check_int("chunk", chunk, 1)
    return _lanczos_extremes(problem.loss, params_S, data, _start_vector(params_S, key),
                             iters=iters, chunk=chunk)


def _start_vector(params_S: Any, key: int) -> jax.Array:
    """(P,) unit random start vector shared by every seed (computed eagerly: a kernel input)."""
    leaves = jax.tree.leaves(params_S)
    size, dtype = num_params_per_seed(params_S), jnp.result_type(*leaves)
    start = jax.random.normal(jax.random.key(check_int("key", key)), (size,), dtype)
    return start / jnp.linalg.norm(start)


@functools.partial(jax.jit, static_argnames=("loss", "iters", "chunk"))
def _lanczos_extremes(loss: LossFn, params_S: Any, data: Any, v0_P: jax.Array, iters: int,
                      chunk: int) -> jax.Array:
    """Kernel of `lanczos_extremes`, from the unit start vector `v0_P`."""
    flat_S, unravel = _ravel_seeds(params_S)
    f = lambda flat: loss(unravel(flat), data)

    def one(flat):
        hvp = lambda v: jax.jvp(jax.grad(f), (flat,), (v,))[1]
        return _lanczos(hvp, v0_P, min(iters, flat_S.shape[1]))
    return jax.lax.map(one, flat_S, batch_size=chunk)


def _lanczos(hvp, v0: jax.Array, k: int) -> jax.Array:
    """Extreme eigenvalues of the Lanczos tridiagonal matrix after k steps.

    After a breakdown (an invariant subspace is found) the remaining steps are filled
    with decoupled copies of the first Rayleigh quotient, which lies inside the spectrum
    and so cannot become a spurious extreme.
    """
    basis = jnp.zeros((k, v0.shape[0]), v0.dtype).at[0].set(v0)
    alpha, beta = jnp.zeros(k, v0.dtype), jnp.zeros(k, v0.dtype)

    def body(i, carry):
        basis, alpha, beta, alive = carry
        w = hvp(basis[i])
        a = jnp.dot(w, basis[i])
        w = w - basis.T @ (basis @ w)  # full reorthogonalisation, twice for stability
        w = w - basis.T @ (basis @ w)
        b = jnp.linalg.norm(w)
        a = jnp.where(alive, a, alpha[0])
        still = alive & (b > 1e-6 * (jnp.abs(a) + 1e-12))
        nxt = jnp.where(still, w / jnp.where(still, b, 1.0), jnp.zeros_like(w))
        basis = basis.at[jnp.minimum(i + 1, k - 1)].set(
            jnp.where(i + 1 < k, nxt, basis[k - 1]))
        return basis, alpha.at[i].set(a), beta.at[i].set(jnp.where(still, b, 0.0)), still

    _, alpha, beta, _ = jax.lax.fori_loop(0, k, body, (basis, alpha, beta, jnp.bool_(True)))
    tri = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    eig = jnp.linalg.eigvalsh(tri)
    return jnp.stack([eig[0], eig[-1]])


def hessian_extremes(problem: Problem, params_S: Any, data: Any,
                     max_exact_params: int = 100, lanczos_iters: int = 40) -> jax.Array:
    """(S, 2) extreme Hessian eigenvalues: exact for small P, Lanczos beyond.

    Args:
      problem: its `loss` is differentiated twice.
      params_S: params with a leading seed axis S.
      data: the batch the loss is evaluated on.
      max_exact_params: the exact Hessian up to this many parameters P; Lanczos beyond.
      lanczos_iters: Lanczos steps per seed.

    Returns:
      (S, 2): column 0 the smallest eigenvalue, column 1 the largest.

    Example:
      >>> hessian_extremes(p, runs.params, p.data)
    """
    max_exact_params = check_int("max_exact_params", max_exact_params, 0)
    if num_params_per_seed(params_S) <= max_exact_params:
        return exact_extremes(problem, params_S, data)
    return lanczos_extremes(problem, params_S, data, iters=lanczos_iters)


def num_params_per_seed(params_S: Any) -> int:
    """P of params with a leading seed axis (from shapes alone: nothing is computed)."""
    return sum(math.prod(jnp.shape(x)[1:]) for x in jax.tree.leaves(params_S))
