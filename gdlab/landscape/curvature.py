"""Gradient norms and extreme Hessian eigenvalues of many endpoints at once.

Small models: the exact Hessian (`jax.hessian` on the raveled params) and `eigvalsh`.
Large models: Lanczos with full reorthogonalisation on Hessian-vector products, which
recovers the extreme eigenvalues in a few dozen products.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from gdlab.problem import Problem


def _flat_loss(problem: Problem, example_params: Any, data: Any):
    _, unravel = ravel_pytree(example_params)
    return lambda flat: problem.loss(unravel(flat), data)


def grad_norms(problem: Problem, params_S: Any, data: Any, chunk: int = 256) -> jax.Array:
    """(S,) full-data gradient norm of every seed."""
    grad = jax.grad(problem.loss)
    def one(p):
        return jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grad(p, data))))
    return jax.jit(lambda ps: jax.lax.map(one, ps, batch_size=chunk))(params_S)


def exact_extremes(problem: Problem, params_S: Any, data: Any, chunk: int = 64) -> jax.Array:
    """(S, 2) smallest and largest Hessian eigenvalue, from the full Hessian."""
    example = jax.tree.map(lambda x: x[0], params_S)
    flat_S = jax.vmap(lambda p: ravel_pytree(p)[0])(params_S)
    f = _flat_loss(problem, example, data)
    def one(flat):
        eig = jnp.linalg.eigvalsh(jax.hessian(f)(flat))
        return jnp.stack([eig[0], eig[-1]])
    return jax.jit(lambda xs: jax.lax.map(one, xs, batch_size=chunk))(flat_S)


def lanczos_extremes(problem: Problem, params_S: Any, data: Any, iters: int = 40,
                     chunk: int = 16, key: int = 0) -> jax.Array:
    """(S, 2) smallest and largest Hessian eigenvalue by Lanczos on Hessian-vector products."""
    example = jax.tree.map(lambda x: x[0], params_S)
    flat_S = jax.vmap(lambda p: ravel_pytree(p)[0])(params_S)
    f = _flat_loss(problem, example, data)
    size = flat_S.shape[1]
    k = min(iters, size)
    start = jax.random.normal(jax.random.key(key), (size,), flat_S.dtype)

    def one(flat):
        hvp = lambda v: jax.jvp(jax.grad(f), (flat,), (v,))[1]
        return _lanczos(hvp, start / jnp.linalg.norm(start), k)
    return jax.jit(lambda xs: jax.lax.map(one, xs, batch_size=chunk))(flat_S)


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
    """(S, 2) extreme Hessian eigenvalues: exact for small P, Lanczos beyond."""
    size = sum(x[0].size for x in jax.tree.leaves(params_S))
    if size <= max_exact_params:
        return exact_extremes(problem, params_S, data)
    return lanczos_extremes(problem, params_S, data, iters=lanczos_iters)
