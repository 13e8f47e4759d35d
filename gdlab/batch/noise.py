"""Gradient noise scale (McCandlish et al. 2018): B_simple = tr(Sigma) / |G|^2.

G is the full-data mean gradient and Sigma the covariance of one example's gradient
over the training set (population form, 1/N), so a mini-batch of B examples drawn with
replacement has gradient covariance Sigma / B. B_simple is the batch size at which the
mini-batch noise is as large as the gradient itself.

Two estimators: "exact" from every per-example gradient (`vmap(grad)`, in chunks, so
memory stays at chunk x P), and "two_batch", the unbiased estimator from the mean squared
norms of mini-batch gradients at two batch sizes (McCandlish et al., appendix A.1).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from gdlab._checks import InputError, check_choice, check_flag, check_int, is_int
from gdlab.batch import lanes
from gdlab.config import TrainConfig
from gdlab.core.sampling import gather
from gdlab.core.seeds import as_key, seed_ids_of
from gdlab.problem import Problem, check_finite, num_data_points

METHODS = ("exact", "two_batch")
PyTree = Any


class NoiseScale(float):
    """B_simple = tr(Sigma) / |G|^2 as a float, with its parts.

    Attributes:
      trace_sigma: tr(Sigma), the summed per-example gradient variance.
      grad_norm_sq: |G|^2, the squared norm of the full-data gradient.
      method: "exact" or "two_batch".
      trace_h_sigma, g_h_g: tr(H Sigma) and G^T H G with H the full-data Hessian (nan
        unless measured with `hessian=True`); `b_noise` = their ratio, the
        curvature-weighted noise scale B_noise that B_simple equals when H is a multiple
        of the identity.
      hessian_max: the largest Hessian eigenvalue (nan unless `hessian=True`); plain
        gradient descent is stable for learning rates below 2 / hessian_max.
    The value is +inf when |G|^2 <= 0 (a stationary point, or a negative two-batch
    estimate of |G|^2, which happens when the gradient is small against the noise).
    """

    def __new__(cls, trace_sigma: float, grad_norm_sq: float, method: str,
                trace_h_sigma: float = math.nan, g_h_g: float = math.nan,
                hessian_max: float = math.nan):
        obj = super().__new__(cls, _ratio(trace_sigma, grad_norm_sq))
        obj.__dict__.update(trace_sigma=float(trace_sigma), grad_norm_sq=float(grad_norm_sq),
                            method=method, trace_h_sigma=float(trace_h_sigma),
                            g_h_g=float(g_h_g), hessian_max=float(hessian_max))
        return obj

    def __setattr__(self, name, value):
        raise AttributeError("NoiseScale is immutable")

    def __getnewargs__(self):
        return (self.trace_sigma, self.grad_norm_sq, self.method, self.trace_h_sigma,
                self.g_h_g, self.hessian_max)

    @property
    def b_simple(self) -> float:
        return float(self)

    @property
    def b_noise(self) -> float:
        """tr(H Sigma) / G^T H G (nan unless measured with `hessian=True`)."""
        return _ratio(self.trace_h_sigma, self.g_h_g)

    def __repr__(self) -> str:
        extra = "" if math.isnan(self.g_h_g) else f", b_noise={self.b_noise:.6g}"
        return (f"NoiseScale({float(self):.6g}, trace_sigma={self.trace_sigma:.6g}, "
                f"grad_norm_sq={self.grad_norm_sq:.6g}, method={self.method!r}{extra})")


def _ratio(num: float, den: float) -> float:
    if math.isnan(num) or math.isnan(den):
        return math.nan
    return num / den if den > 0 else math.inf


def exact_parts(loss, params: PyTree, data: PyTree, chunk: int) -> dict[str, jax.Array]:
    """tr(Sigma) and |G|^2 from every per-example gradient, `chunk` examples at a time."""
    grad = jax.grad(loss)
    g_P = ravel_pytree(grad(params, data))[0]

    def sq_deviation(example):
        one = jax.tree.map(lambda x: x[None], example)
        return jnp.sum((ravel_pytree(grad(params, one))[0] - g_P) ** 2)

    return {"trace_sigma": jnp.mean(jax.lax.map(sq_deviation, data, batch_size=chunk)),
            "grad_norm_sq": jnp.sum(g_P**2)}


def hessian_parts(loss, params: PyTree, data: PyTree, chunk: int) -> dict[str, jax.Array]:
    """`exact_parts` plus tr(H Sigma), G^T H G and the top eigenvalue of the explicit
    full-data Hessian H (P x P; for small models). Per-example deviations are kept (N x P)."""
    theta_P, unravel = ravel_pytree(params)
    flat_loss = lambda th, batch: loss(unravel(th), batch)
    grad = jax.grad(flat_loss)
    g_P = grad(theta_P, data)
    h_PP = jax.hessian(flat_loss)(theta_P, data)
    deviation = lambda ex: grad(theta_P, jax.tree.map(lambda x: x[None], ex)) - g_P
    d_NP = jax.lax.map(deviation, data, batch_size=chunk)
    return {"trace_sigma": jnp.mean(jnp.sum(d_NP**2, axis=1)),
            "grad_norm_sq": jnp.sum(g_P**2),
            "trace_h_sigma": jnp.mean(jnp.sum((d_NP @ h_PP) * d_NP, axis=1)),
            "g_h_g": g_P @ (h_PP @ g_P), "hessian_max": jnp.linalg.eigvalsh(h_PP)[-1]}


def two_batch_parts(loss, params: PyTree, data: PyTree, key: jax.Array, small: int, big: int,
                    num_batches: int, n: int) -> dict[str, jax.Array]:
    """tr(Sigma) and |G|^2 unbiased from squared gradient norms at batch sizes small < big.

    Each of `num_batches` big batches (drawn with replacement) is the union of big/small
    small batches; E|G_B|^2 = |G|^2 + tr(Sigma) / B at both sizes, solved for the two.
    """
    grad = jax.grad(loss)

    def one(i):
        idx = jax.random.randint(jax.random.fold_in(key, i), (big // small, small), 0, n)
        g_kP = jax.vmap(lambda idx_b: ravel_pytree(grad(params, gather(data, idx_b)))[0])(idx)
        return jnp.mean(jnp.sum(g_kP**2, axis=1)), jnp.sum(jnp.mean(g_kP, axis=0) ** 2)

    small_sq, big_sq = (jnp.mean(x) for x in jax.lax.map(one, jnp.arange(num_batches)))
    return {"trace_sigma": (small_sq - big_sq) / (1.0 / small - 1.0 / big),
            "grad_norm_sq": (big * big_sq - small * small_sq) / (big - small)}


MAX_HESSIAN_PARAMS = 4096


@dataclasses.dataclass(frozen=True)
class Estimator:
    """Checked, hashable estimator settings: a static argument of the jitted kernels."""

    method: str
    chunk: int
    hessian: bool = False
    batch_sizes: tuple[int, int] | None = None
    num_batches: int = 64


def _settings(problem: Problem, method: str, data: PyTree = None, chunk: int | None = None,
              batch_sizes: tuple[int, int] | None = None, num_batches: int = 64,
              hessian: bool = False) -> tuple[Estimator, PyTree]:
    """Checked estimator settings and the data to measure on (before anything compiles)."""
    check_choice("noise-scale method", method, METHODS)
    hessian = check_flag("hessian", hessian)
    data = problem.data if data is None else data
    if data is None:
        raise InputError(f"problem {problem.name!r} has no data; the gradient noise scale "
                         "needs per-example gradients")
    n = num_data_points(data, "noise_scale data")
    if problem.data is not None and \
            jax.tree.structure(data) != jax.tree.structure(problem.data):
        raise InputError(f"noise_scale data must have the structure of the problem's data "
                         f"{jax.tree.structure(problem.data)}, got {jax.tree.structure(data)}")
    check_finite(data, "noise_scale data")
    p = max(problem.num_params(), 1)
    chunk = max(1, min(n, (1 << 22) // p)) if chunk is None else check_int("chunk", chunk, 1)
    if hessian and (method != "exact" or p > MAX_HESSIAN_PARAMS):
        raise InputError(f"hessian=True needs method='exact' and at most {MAX_HESSIAN_PARAMS} "
                         f"parameters (it forms the P x P Hessian); got method={method!r}, "
                         f"P={p}")
    if method == "two_batch":
        batch_sizes = _two_batch_sizes(batch_sizes, n)
    return Estimator(method, chunk, bool(hessian), batch_sizes,
                     check_int("num_batches", num_batches, 1)), data


def _two_batch_sizes(batch_sizes: Any, n: int) -> tuple[int, int]:
    if batch_sizes is None:
        if n < 2:
            raise InputError("the two-batch estimator needs N >= 2 data points, got N=1")
        small = max(1, min(8, n // 4))
        return small, small * max(2, min(32, n // small))
    try:
        small, big = batch_sizes
    except (TypeError, ValueError):
        raise InputError(f"batch_sizes must be a pair (small, big), got {batch_sizes!r}") \
            from None
    small = check_int("small batch size", small, 1, n)
    big = check_int("big batch size", big, 1, n)
    if big <= small or big % small:
        raise InputError(f"batch_sizes (small, big) need small < big with big a multiple of "
                         f"small (N={n}), got {batch_sizes!r}")
    return small, big


def _parts(loss, est: Estimator, params: PyTree, data: PyTree,
           key: jax.Array) -> dict[str, jax.Array]:
    """`{"trace_sigma": .., "grad_norm_sq": .., ...}` of one parameter setting (traced)."""
    if est.method == "exact":
        parts = hessian_parts if est.hessian else exact_parts
        return parts(loss, params, data, est.chunk)
    small, big = est.batch_sizes
    n = jax.tree.leaves(data)[0].shape[0]
    return two_batch_parts(loss, params, data, key, small, big, est.num_batches, n)


_parts_one = jax.jit(_parts, static_argnames=("loss", "est"))
"""`_parts`, compiled once per (loss, estimator, shapes): params, data and key are inputs."""


@functools.partial(jax.jit, static_argnames=("loss", "est"))
def _parts_CS(loss, est: Estimator, params_CS: PyTree, data: PyTree,
              key: jax.Array) -> dict[str, jax.Array]:
    """(C, S) parts of every checkpoint and seed; "two_batch" keys folded from `key`."""
    c, s = jax.tree.leaves(params_CS)[0].shape[:2]
    flat = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), params_CS)
    keys = jax.random.split(jax.random.fold_in(key, 2**31 - 1), c * s)
    out = jax.lax.map(lambda pk: _parts(loss, est, pk[0], data, pk[1]), (flat, keys))
    return jax.tree.map(lambda v: v.reshape(c, s), out)


def noise_scale(problem: Problem, params: PyTree, method: str = "exact", *,
                data: PyTree = None, chunk: int | None = None,
                batch_sizes: tuple[int, int] | None = None, num_batches: int = 64,
                hessian: bool = False, key: int | jax.Array = 0) -> NoiseScale:
    """The gradient noise scale B_simple = tr(Sigma) / |G|^2 at one parameter setting.

    Args:
      problem: a `gdlab.Problem` with data (its loss must be a mean over the batch).
      params: one parameter setting (no seed axis).
      method: "exact" (every per-example gradient, `chunk` at a time) or "two_batch"
        (unbiased estimate from mini-batch gradients at two batch sizes; cheaper for
        large N).
      data: the data set (default: the problem's training data).
      chunk: examples per vectorised chunk for "exact" (default: from P).
      batch_sizes: (small, big) for "two_batch", big a multiple of small (default
        about (8, 256), limited by N).
      num_batches: big batches averaged by "two_batch".
      hessian: also measure B_noise = tr(H Sigma) / G^T H G with the explicit Hessian
        ("exact" only, P <= 4096).
      key: integer or JAX key for "two_batch".

    Returns:
      A `NoiseScale`: a float (B_simple) with `.trace_sigma`, `.grad_norm_sq`, `.method`
      (and `.b_noise` with `hessian=True`).

    Example:
      >>> p = gdlab.problems.least_squares()
      >>> b = gdlab.noise_scale(p, p.init(jax.random.key(0)))
      >>> float(b), b.trace_sigma, b.grad_norm_sq
    """
    if not isinstance(problem, Problem):
        raise InputError(f"problem must be a gdlab.Problem, got {type(problem).__name__}")
    est, data = _settings(problem, method, data, chunk, batch_sizes, num_batches, hessian)
    parts = _parts_one(problem.loss, est, params, data, as_key(key))
    return NoiseScale(method=method, **{k: float(v) for k, v in parts.items()})


@dataclasses.dataclass(frozen=True, eq=False)
class NoiseTrace:
    """The noise scale measured along training (`track_noise_scale`).

    Attributes:
      steps: (C,) the checkpoints; seed_ids: (S,).
      loss: (C, S) full-data loss at each checkpoint.
      b_simple, trace_sigma, grad_norm_sq: (C, S).
      b_noise: (C, S) tr(H Sigma) / G^T H G, or None unless `hessian=True`.
      hessian_max: (C, S) largest Hessian eigenvalue, or None unless `hessian=True`.
      method: the estimator.
    """

    steps: np.ndarray
    seed_ids: np.ndarray
    loss: np.ndarray
    b_simple: np.ndarray
    trace_sigma: np.ndarray
    grad_norm_sq: np.ndarray
    method: str
    b_noise: np.ndarray | None = None
    hessian_max: np.ndarray | None = None

    def at_loss(self, target_loss: float, what: str = "b_simple") -> np.ndarray:
        """(S,) `what` ("b_simple", "b_noise", "hessian_max", ...) where each seed's loss
        first reaches `target_loss` (log-log interpolation between checkpoints; nan where it
        never does)."""
        values = getattr(self, what)
        if values is None:
            raise InputError(f"{what} was not measured (track_noise_scale(..., hessian=True))")
        return np.array([_interp_at(self.loss[:, s], values[:, s], target_loss)
                         for s in range(self.loss.shape[1])])


def _interp_at(loss_C: np.ndarray, value_C: np.ndarray, target: float) -> float:
    below = np.nonzero(loss_C <= target)[0]
    if not below.size:
        return math.nan
    k = int(below[0])
    if k == 0 or not (loss_C[k - 1] > 0 and loss_C[k] > 0 and value_C[k - 1] > 0
                      and value_C[k] > 0 and np.isfinite(value_C[k - 1:k + 1]).all()):
        return float(value_C[k])
    frac = np.log(loss_C[k - 1] / target) / np.log(loss_C[k - 1] / loss_C[k])
    return float(np.exp(np.log(value_C[k - 1]) + frac * np.log(value_C[k] / value_C[k - 1])))


def make_checkpoints(fns: lanes.LaneFns):
    """`run(seed_ids, lrs, key, data, eval_data, steps_C)`: params and loss at each step."""
    v_init = jax.vmap(fns.init, (0, 0, None))
    v_step = jax.vmap(fns.step, (0, 0, None, None))
    v_loss = jax.vmap(fns.loss, (0, None))

    def run(seed_ids, lrs, key, data, eval_data, steps_C):
        def body(carry, t1):
            state, t0 = carry
            state = jax.lax.fori_loop(t0, t1, lambda t, s: v_step(s, lrs, t, data), state)
            return (state, t1), (state.params, v_loss(state, eval_data))
        state = v_init(seed_ids, lrs, key)
        return jax.lax.scan(body, (state, jnp.int32(0)), steps_C)[1]
    return run


def track_noise_scale(problem: Problem, config: TrainConfig, at_steps: Sequence[int],
                      seeds: int | Sequence[int] = 4, key: int | jax.Array = 0,
                      method: str = "exact", **estimator: Any) -> NoiseTrace:
    """Train with `config` and measure the noise scale of every seed at `at_steps`.

    Seed i follows the same trajectory as in `gdlab.train(problem, config, seeds, key)`
    (config's batch size and sampling; its evaluation schedule is not used).

    Args:
      problem: a `gdlab.Problem` with data.
      config: how to train.
      at_steps: checkpoints, integers >= 0 (config.steps is not used).
      seeds: number of seeds or seed ids.
      key: integer or JAX key (training; "two_batch" uses keys folded from it).
      method: "exact" or "two_batch"; `estimator` takes `noise_scale`'s other options
        (data, chunk, batch_sizes, num_batches, hessian).

    Returns:
      A `NoiseTrace` with (C, S) arrays: loss, b_simple, trace_sigma, grad_norm_sq (and
      b_noise with hessian=True).

    Example:
      >>> trace = track_noise_scale(p, cfg, at_steps=[0, 10, 100, 1000])
      >>> np.median(trace.at_loss(0.01))
    """
    if not isinstance(problem, Problem) or not isinstance(config, TrainConfig):
        raise InputError("track_noise_scale needs a gdlab.Problem and a gdlab.TrainConfig")
    steps = _check_steps(at_steps)
    valid = {"data", "chunk", "batch_sizes", "num_batches", "hessian"}
    if set(estimator) - valid:
        raise InputError(f"unknown estimator options {sorted(set(estimator) - valid)}; "
                         f"valid: {', '.join(sorted(valid))}")
    est, data = _settings(problem, method, **estimator)
    ids, key = seed_ids_of(seeds), as_key(key)
    rate = config.learning_rate if lanes.rate_is_tunable(config) else 1.0
    params_CS, loss_CS = _checkpoints(
        problem.init, problem.loss, config, np.asarray(ids, np.int32),
        np.full(len(ids), rate, np.float32), key, problem.data, data, steps)
    out = _parts_CS(problem.loss, est, params_CS, data, key)
    out = {k: np.asarray(v, np.float64) for k, v in out.items()}
    ratio = np.vectorize(_ratio)
    return NoiseTrace(steps=steps, seed_ids=ids, loss=np.asarray(loss_CS, np.float64),
                      b_simple=ratio(out["trace_sigma"], out["grad_norm_sq"]),
                      trace_sigma=out["trace_sigma"], grad_norm_sq=out["grad_norm_sq"],
                      method=method, b_noise=ratio(out["trace_h_sigma"], out["g_h_g"])
                      if est.hessian else None, hessian_max=out.get("hessian_max"))


@functools.partial(jax.jit, static_argnames=("init", "loss", "config"))
def _checkpoints(init, loss, config: TrainConfig, seed_ids, lrs, key, data, eval_data,
                 steps_C) -> tuple[PyTree, jax.Array]:
    """`make_checkpoints` of the problem's functions: one compile per (init, loss, config,
    shapes); the training and evaluation data are inputs, not constants."""
    # Lanes read only the functions and the data's shape from the problem.
    shell = Problem(name="track_noise_scale", init=init, loss=loss, data=data)
    fns = lanes.lane_fns(shell, config, config.batch_size)
    return make_checkpoints(fns)(seed_ids, lrs, key, data, eval_data, steps_C)


def _check_steps(at_steps: Any) -> np.ndarray:
    try:
        values = sorted(set(at_steps))
    except TypeError:
        raise InputError(f"at_steps must be a non-empty sequence of integers >= 0, got "
                         f"{at_steps!r}") from None
    if not values or any(not is_int(t) or t < 0 for t in values):
        raise InputError(f"at_steps must be a non-empty sequence of integers >= 0, got "
                         f"{at_steps!r}")
    return np.asarray(values, np.int32)
