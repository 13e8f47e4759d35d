"""Gradient norms, extreme Hessian eigenvalues, and the Hessian's spectrum (top-k
eigenvalues, trace, eigenvalue density) of many endpoints at once.

Small models: the exact Hessian (`jax.hessian` on the raveled params) and `eigvalsh`.
Large models: Lanczos with full reorthogonalisation on Hessian-vector products, which
recovers the extreme eigenvalues in a few dozen products. The spectrum: `top_eigenvalues`
(Lanczos, optionally with deflation), `hessian_trace` (Hutchinson, Rademacher probes, with
its standard error) and `spectral_density` (stochastic Lanczos quadrature with Gaussian
smoothing, as PyHessian), each over a leading seed axis, on the full data or a batch.

Compile discipline: each analysis is one module-level jitted kernel whose static
arguments are the problem's loss function (hashed by identity) and small ints; params
and data are traced arguments, so repeated calls with the same shapes compile nothing,
also on new data.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from gdlab._checks import InputError, check_int, check_positive
from gdlab.landscape.slices import (
    data_or_default,
    drop_seed_axis,
    hash_rademacher,
    key_words,
    with_seed_axis,
)
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


# --- the Hessian's spectrum: top-k eigenvalues, trace, density ---------------------------
# Params may carry a leading seed axis S (then results do too); `data=None` is the
# problem's full training data, a batch of it works the same. Each public function is one
# kernel call: seeds vmapped in chunks (`lax.map(batch_size=chunk)`), keys traced.


class TraceEstimate(NamedTuple):
    """Hutchinson's estimate of tr(H): the mean of `v^T H v` over Rademacher probes.

    Attributes:
      trace: the estimate (a float, or (S,) with a seed axis).
      stderr: its standard error, std(v^T H v) / sqrt(probes).
      probes: the number of probes.
    """

    trace: Any
    stderr: Any
    probes: int


def top_eigenvalues(problem: Problem, params: Any, k: int = 5, *, data: Any = None,
                    iters: int | None = None, key: int | jax.Array = 0, deflate: bool = False,
                    chunk: int = 8) -> np.ndarray:
    """The k largest Hessian eigenvalues, largest first (Lanczos on Hessian-vector products).

    Lanczos with full reorthogonalisation (restarted with a fresh orthogonal vector when
    it finds an invariant subspace) from a random Rademacher start; the top Ritz values of `iters`
    steps. `deflate=True` instead finds them one at a time, each by its own Lanczos run
    on the Hessian projected off the eigenvectors already found (k x iters products, more
    robust when eigenvalues cluster).

    Args:
      problem: its loss gives the Hessian-vector products (forward over reverse).
      params: the point (a leading seed axis S: every seed at once).
      k: how many eigenvalues (1 <= k <= P).
      data: the batch the loss is evaluated on (default: the problem's full data).
      iters: Lanczos steps (default min(P, max(4 k, 40))); P gives the exact spectrum.
      key: int or JAX key of the random starts (each seed its own; `slices.hash_bits`).
      deflate: one Lanczos run per eigenvalue, on the deflated Hessian.
      chunk: seeds per vectorised chunk.

    Returns:
      (k,) eigenvalues, largest (most positive) first; (S, k) with a seed axis.

    Example:
      >>> top_eigenvalues(p, params, k=5)
    """
    params_S, had = with_seed_axis(problem, params)
    size = num_params_per_seed(params_S)
    k = check_int("k", k, 1, size, hint="the number of parameters P")
    iters = min(size, max(4 * k, 40)) if iters is None else check_int("iters", iters, k, size)
    data = data_or_default(problem, data)
    # Without deflation the kernel returns every Ritz value (k is cut here, on the host):
    # one compile serves every k.
    out = _top_eigenvalues(problem.loss, params_S, data, key_words(key),
                           k=k if deflate else 0, iters=iters, deflate=bool(deflate),
                           chunk=check_int("chunk", chunk, 1))
    return drop_seed_axis(np.asarray(out)[:, :k], had)


@functools.partial(jax.jit, static_argnames=("loss", "k", "iters", "deflate", "chunk"))
def _top_eigenvalues(loss: LossFn, params_S: Any, data: Any, words: jax.Array, k: int,
                     iters: int, deflate: bool, chunk: int) -> jax.Array:
    """Kernel of `top_eigenvalues`: (S, k) deflated, else (S, iters) Ritz values, largest
    first."""
    flat_S, unravel = _ravel_seeds(params_S)

    def one(args):
        i, flat = args
        hvp = _hvp(loss, unravel, flat, data)
        start = lambda *c: _unit(hash_rademacher(words, (i, *c), flat.shape[0], flat.dtype))
        if deflate:
            return _deflated_top(hvp, start, flat.shape[0], flat.dtype, k, iters)
        alpha, beta, _ = _lanczos_tridiag(hvp, start(0), iters)
        return jnp.linalg.eigvalsh(_tridiag(alpha, beta))[::-1]
    return jax.lax.map(one, (jnp.arange(flat_S.shape[0]), flat_S), batch_size=chunk)


def _hvp(loss: LossFn, unravel, flat: jax.Array, data: Any):
    """v -> H v at `flat` (forward-over-reverse)."""
    f = lambda x: loss(unravel(x), data)
    return lambda v: jax.jvp(jax.grad(f), (flat,), (v,))[1]


def _unit(v: jax.Array) -> jax.Array:
    return v / jnp.linalg.norm(v)


def _tridiag(alpha: jax.Array, beta: jax.Array) -> jax.Array:
    """The symmetric tridiagonal matrix with diagonal alpha (m,) and off-diagonal beta (m-1,)."""
    return jnp.diag(alpha) + jnp.diag(beta, 1) + jnp.diag(beta, -1)


def _orthogonalize(w: jax.Array, basis: jax.Array) -> jax.Array:
    """w minus its projection on the rows of `basis` (zero rows are harmless), twice."""
    w = w - basis.T @ (basis @ w)
    return w - basis.T @ (basis @ w)


def _lanczos_tridiag(hvp, v0: jax.Array, m: int, project=None):
    """m Lanczos steps with full reorthogonalisation: (alpha (m,), beta (m-1,), basis (m, P)).

    When a step finds an invariant subspace (the new residual vanishes), the next basis
    vector is a fresh vector (`_restart_vector`) orthogonal to the basis, coupled by 0: T is
    then block diagonal, each block exact on its own Krylov space, and the blocks after
    the first carry no weight of v0 (so SLQ weights stay those of v0's spectral measure).
    `project` (deflation) maps every fresh vector into the operator's subspace; once the
    whole space is spanned, the remaining vectors are 0 (their Ritz values 0).
    """
    # m + 1 rows: step i writes row i + 1 unconditionally; the last row is never used.
    basis = jnp.zeros((m + 1, v0.shape[0]), v0.dtype).at[0].set(v0)

    def body(i, carry):
        basis, alpha, beta = carry
        hv = hvp(basis[i])
        a = jnp.dot(hv, basis[i])
        w = _orthogonalize(hv, basis)
        b = jnp.linalg.norm(w)
        broke = b <= 1e-5 * jnp.linalg.norm(hv) + 1e-30
        fresh = _restart_vector(i, w.shape[0], w.dtype)
        fresh = _orthogonalize(fresh if project is None else project(fresh), basis)
        size = jnp.linalg.norm(fresh)
        fresh = jnp.where(size > 1e-6, fresh / jnp.where(size > 0, size, 1.0), 0.0)
        nxt = jnp.where(broke, fresh, w / jnp.where(broke, 1.0, b))
        basis = jax.lax.dynamic_update_index_in_dim(basis, nxt, i + 1, axis=0)
        return basis, alpha.at[i].set(a), beta.at[i].set(jnp.where(broke, 0.0, b))

    zeros = jnp.zeros(m, v0.dtype)
    basis, alpha, beta = jax.lax.fori_loop(0, m, body, (basis, zeros, zeros))
    return alpha, beta[:-1], basis[:m]


def _restart_vector(i: jax.Array, size: int, dtype) -> jax.Array:
    """A deterministic pseudo-random vector, a new one for every step i (trigonometric:
    cheaper to compile inside the loop than a random-bits program, and as good a restart:
    it only has to leave the Krylov space found so far)."""
    t = (i + 1).astype(dtype)
    return jnp.cos(jnp.arange(size, dtype=dtype) * (0.7548776662 * t) + 0.5698402910 * t * t)


def _deflated_top(hvp, start, size: int, dtype, k: int, iters: int) -> jax.Array:
    """k top eigenvalues one at a time: Lanczos on (I - V V^T) H (I - V V^T);
    `start(1, j)` is the j-th run's random start."""
    def body(j, carry):
        vecs, vals = carry
        project = lambda v: _orthogonalize(v, vecs)
        v0 = project(start(1, j))
        alpha, beta, basis = _lanczos_tridiag(lambda v: project(hvp(project(v))),
                                              v0 / jnp.linalg.norm(v0), iters, project)
        theta, y = jnp.linalg.eigh(_tridiag(alpha, beta))
        vec = basis.T @ y[:, -1]
        return vecs.at[j].set(vec / jnp.linalg.norm(vec)), vals.at[j].set(theta[-1])
    init = (jnp.zeros((k, size), dtype), jnp.zeros(k, dtype))
    return jax.lax.fori_loop(0, k, body, init)[1]


def hessian_trace(problem: Problem, params: Any, key: int | jax.Array, probes: int = 100, *,
                  data: Any = None, chunk: int = 8, probe_chunk: int = 25) -> TraceEstimate:
    """Hutchinson's estimate of the Hessian's trace, with its standard error.

    tr(H) = E[v^T H v] for Rademacher v (entries +-1); the estimate is the mean over
    `probes` probes, its standard error their standard deviation / sqrt(probes).

    Args:
      problem: its loss gives the Hessian-vector products.
      params: the point (a leading seed axis S: every seed at once).
      key: int or JAX key of the probes (each seed its own; `slices.hash_bits`).
      probes: number of Rademacher probes (>= 2).
      data: the batch the loss is evaluated on (default: the problem's full data).
      chunk: seeds per vectorised chunk.
      probe_chunk: probes per vectorised chunk.

    Returns:
      `TraceEstimate(trace, stderr, probes)`; trace and stderr are (S,) with a seed axis.

    Example:
      >>> est = hessian_trace(p, params, key=0, probes=100); est.trace, est.stderr
    """
    params_S, had = with_seed_axis(problem, params)
    probes = check_int("probes", probes, 2)
    data = data_or_default(problem, data)
    out = _hessian_trace(problem.loss, params_S, data, key_words(key), probes=probes,
                         chunk=check_int("chunk", chunk, 1),
                         probe_chunk=check_int("probe_chunk", probe_chunk, 1))
    trace, stderr = (drop_seed_axis(np.asarray(x), had) for x in out)
    return TraceEstimate(trace if had else float(trace), stderr if had else float(stderr),
                         probes)


@functools.partial(jax.jit, static_argnames=("loss", "probes", "chunk", "probe_chunk"))
def _hessian_trace(loss: LossFn, params_S: Any, data: Any, words: jax.Array, probes: int,
                   chunk: int, probe_chunk: int) -> tuple[jax.Array, jax.Array]:
    """Kernel of `hessian_trace`: (S,) mean and standard error of v^T H v."""
    flat_S, unravel = _ravel_seeds(params_S)

    def one(args):
        i, flat = args
        hvp = _hvp(loss, unravel, flat, data)
        def probe(j):
            v = hash_rademacher(words, (i, j), flat.shape[0], flat.dtype)
            return jnp.dot(v, hvp(v))
        q = jax.lax.map(probe, jnp.arange(probes), batch_size=probe_chunk)
        return jnp.mean(q), jnp.std(q, ddof=1) / jnp.sqrt(probes)
    return jax.lax.map(one, (jnp.arange(flat_S.shape[0]), flat_S), batch_size=chunk)


def spectral_measure(problem: Problem, params: Any, key: int | jax.Array, *, runs: int = 10,
                     iters: int | None = None, data: Any = None,
                     chunk: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Stochastic Lanczos quadrature: nodes and weights of the Hessian's spectral measure.

    Each of `runs` random unit starts v (Rademacher / sqrt(P), as PyHessian and Ubaru et
    al. 2017) gives a Lanczos tridiagonal T (`iters` steps);
    T's eigenvalues are the nodes and the squared first components of its eigenvectors
    the weights (they sum to 1 per run): `sum_j w_j g(theta_j)` approximates
    `v^T g(H) v`, whose mean over v is `tr(g(H)) / P`.

    Args:
      problem: its loss gives the Hessian-vector products.
      params: the point (a leading seed axis S: every seed at once).
      key: int or JAX key of the starts (each seed its own; `slices.hash_bits`).
      runs: random starts (>= 1).
      iters: Lanczos steps per start (default min(P, 80)).
      data: the batch the loss is evaluated on (default: the problem's full data).
      chunk: seeds per vectorised chunk.

    Returns:
      `(nodes, weights)`, each (runs, iters) ((S, runs, iters) with a seed axis).

    Example:
      >>> nodes, weights = spectral_measure(p, params, key=0)
    """
    params_S, had = with_seed_axis(problem, params)
    size = num_params_per_seed(params_S)
    runs = check_int("runs", runs, 1)
    iters = min(size, 80) if iters is None else check_int("iters", iters, 1, size)
    data = data_or_default(problem, data)
    out = _spectral_measure(problem.loss, params_S, data, key_words(key), runs=runs, iters=iters,
                            chunk=check_int("chunk", chunk, 1))
    return tuple(drop_seed_axis(np.asarray(x), had) for x in out)


@functools.partial(jax.jit, static_argnames=("loss", "runs", "iters", "chunk"))
def _spectral_measure(loss: LossFn, params_S: Any, data: Any, words: jax.Array, runs: int,
                      iters: int, chunk: int) -> tuple[jax.Array, jax.Array]:
    """Kernel of `spectral_measure`: (S, runs, iters) nodes and weights."""
    flat_S, unravel = _ravel_seeds(params_S)

    def one(args):
        i, flat = args
        hvp = _hvp(loss, unravel, flat, data)
        def run(r):
            v0 = _unit(hash_rademacher(words, (i, r), flat.shape[0], flat.dtype))
            alpha, beta, _ = _lanczos_tridiag(hvp, v0, iters)
            theta, y = jnp.linalg.eigh(_tridiag(alpha, beta))
            return theta, y[0] ** 2
        return jax.vmap(run)(jnp.arange(runs))
    return jax.lax.map(one, (jnp.arange(flat_S.shape[0]), flat_S), batch_size=chunk)


def spectral_density(problem: Problem, params: Any, key: int | jax.Array,
                     grid: ArrayLike | None = None, *, runs: int = 10, iters: int | None = None,
                     sigma: float | None = None, num_grid: int = 1000, data: Any = None,
                     chunk: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The Hessian's eigenvalue density by stochastic Lanczos quadrature (as PyHessian).

    Every SLQ node (`spectral_measure`) is smoothed by a Gaussian of width `sigma`,
    weighted by its weight, and averaged over the random starts: the density of the
    normalised spectral measure `(1/P) sum_i delta(lambda_i)`, so it integrates to 1
    (multiply by P for eigenvalues per unit).

    Args:
      problem: its loss gives the Hessian-vector products.
      params: the point (a leading seed axis S: every seed at once, on one shared grid).
      key: int or JAX key of the random starts.
      grid: (G,) eigenvalues to evaluate the density at (default: `num_grid` points over
        the nodes' range plus 5 sigma on each side).
      runs: random starts (>= 1).
      iters: Lanczos steps per start (default min(P, 80)).
      sigma: Gaussian width (default 1% of the nodes' range, at least 1e-3 of their
        largest magnitude).
      num_grid: grid points when `grid` is None.
      data: the batch the loss is evaluated on (default: the problem's full data).
      chunk: seeds per vectorised chunk.

    Returns:
      `(grid (G,), density (G,))`; density (S, G) with a seed axis.

    Example:
      >>> grid, density = spectral_density(p, params, key=0)
    """
    nodes, weights = spectral_measure(problem, params, key, runs=runs, iters=iters, data=data,
                                      chunk=chunk)
    return density_from_measure(nodes, weights, grid, sigma=sigma, num_grid=num_grid)


def density_from_measure(nodes: np.ndarray, weights: np.ndarray, grid: ArrayLike | None = None,
                         sigma: float | None = None,
                         num_grid: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-smoothed density of SLQ nodes and weights (`(..., runs, iters)` each).

    Returns `(grid (G,), density (..., G))`, the mean over runs (see `spectral_density`).
    """
    nodes, weights = np.asarray(nodes, np.float64), np.asarray(weights, np.float64)
    lo, hi = float(nodes.min()), float(nodes.max())
    if sigma is None:
        sigma = max(0.01 * (hi - lo), 1e-3 * max(abs(lo), abs(hi)), 1e-12)
    sigma = check_positive("sigma", sigma)
    if grid is None:
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, check_int("num_grid", num_grid, 2))
    grid = np.asarray(grid, np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
        raise InputError(f"grid must be a non-empty 1-D array of finite eigenvalues, got shape "
                         f"{grid.shape}")
    runs = nodes.shape[-2]
    flat_n = nodes.reshape(-1, nodes.shape[-2] * nodes.shape[-1])
    flat_w = weights.reshape(flat_n.shape)
    density = np.empty((len(flat_n), grid.size))
    for s, (n, w) in enumerate(zip(flat_n, flat_w, strict=True)):  # bounds memory: G x R m
        kernel = np.exp(-0.5 * ((grid[:, None] - n[None]) / sigma) ** 2)
        density[s] = kernel @ w / (runs * sigma * np.sqrt(2 * np.pi))
    density = density.reshape(*nodes.shape[:-2], grid.size)
    return grid, density
