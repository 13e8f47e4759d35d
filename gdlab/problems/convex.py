"""Convex controls: one minimum, known in closed form or to float64 precision."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gdlab._checks import InputError
from gdlab.problem import KnownMinimum, Problem, builtin


def _check_positive(**sizes) -> None:
    for name, value in sizes.items():
        if int(value) != value or value <= 0:
            raise InputError(f"{name} must be a positive integer, got {value!r}")


def _gaussian_design(n: int, d: int, seed: int) -> tuple[np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng


def _linear(params, batch):
    return batch["x"] @ params["w"] + params["b"]


@builtin
def least_squares(n: int = 256, d: int = 8, noise: float = 0.1, key: int = 0) -> Problem:
    """Linear regression `y = X w + b + noise`, loss 1/2 mean squared error.

    The closed-form solution (float64 normal equations) is `known_minima[0]`.

    Args:
      n: data points N.
      d: input dimension D (inputs are isotropic standard normal).
      noise: standard deviation of the label noise.
      key: integer seed of the synthetic data.
    """
    _check_positive(n=n, d=d)
    if noise < 0:
        raise InputError(f"noise must be >= 0, got {noise!r}")
    x, rng = _gaussian_design(n, d, key)
    w_true = rng.standard_normal(d)
    y = x @ w_true + 0.5 + noise * rng.standard_normal(n)
    x1 = np.concatenate([x, np.ones((n, 1))], axis=1)
    sol = np.linalg.lstsq(x1, y, rcond=None)[0]
    resid = x1 @ sol - y
    solution = {"w": jnp.asarray(sol[:d], jnp.float32), "b": jnp.asarray(sol[d], jnp.float32)}

    def init(k):
        kw, kb = jax.random.split(k)
        return {"w": jax.random.normal(kw, (d,)), "b": jax.random.normal(kb, ())}

    def loss(params, batch):
        return 0.5 * jnp.mean((_linear(params, batch) - batch["y"]) ** 2)

    data = {"x": jnp.asarray(x, jnp.float32), "y": jnp.asarray(y, jnp.float32)}
    return Problem(name="least_squares", init=init, loss=loss, data=data, predict=_linear,
                   known_minima=(KnownMinimum(solution, 0.5 * float(np.mean(resid**2)),
                                              "global"),),
                   description=f"linear least squares, N={n}, D={d}: convex, 1 minimum")


def _logistic_newton(x1: np.ndarray, t: np.ndarray, l2: float, d: int) -> np.ndarray:
    """Float64 Newton's method on the regularised logistic loss (bias unregularised)."""
    w = np.zeros(x1.shape[1])
    reg = np.full(x1.shape[1], l2)
    reg[d] = 0.0
    for _ in range(100):
        z = x1 @ w
        p = 1 / (1 + np.exp(-z))
        grad = x1.T @ (p - t) / len(t) + reg * w
        hess = (x1.T * (p * (1 - p))) @ x1 / len(t) + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-14:
            break
    return w


@builtin
def logistic_regression(n: int = 512, d: int = 4, l2: float = 1e-2, key: int = 0) -> Problem:
    """L2-regularised logistic regression on labels drawn from a logistic teacher.

    Loss: mean log-loss + l2/2 |w|^2 (bias not regularised). Strictly convex for l2 > 0;
    the float64 Newton solution is `known_minima[0]`.
    """
    _check_positive(n=n, d=d)
    if not l2 > 0:
        raise InputError(f"l2 must be > 0 (it makes the problem strictly convex), got {l2!r}")
    x, rng = _gaussian_design(n, d, key)
    w_true = 2.0 * rng.standard_normal(d) / np.sqrt(d)
    t = (rng.random(n) < 1 / (1 + np.exp(-(x @ w_true)))).astype(np.float64)
    x1 = np.concatenate([x, np.ones((n, 1))], axis=1)
    sol = _logistic_newton(x1, t, l2, d)

    def init(k):
        kw, kb = jax.random.split(k)
        return {"w": jax.random.normal(kw, (d,)), "b": jax.random.normal(kb, ())}

    def loss(params, batch):
        z = _linear(params, batch)
        nll = jnp.mean(jax.nn.softplus(z) - batch["y"] * z)
        return nll + 0.5 * l2 * jnp.sum(params["w"] ** 2)

    data = {"x": jnp.asarray(x, jnp.float32), "y": jnp.asarray(t, jnp.float32)}
    solution = {"w": jnp.asarray(sol[:d], jnp.float32), "b": jnp.asarray(sol[d], jnp.float32)}
    z = x1 @ sol
    value = float(np.mean(np.logaddexp(0, z) - t * z) + 0.5 * l2 * np.sum(sol[:d] ** 2))
    return Problem(name="logistic", init=init, loss=loss, data=data, predict=_linear,
                   known_minima=(KnownMinimum(solution, value, "global"),),
                   description=f"L2 logistic regression, N={n}, D={d}: convex, 1 minimum")


@builtin
def quadratic(dim: int = 2, condition_number: float = 10.0, key: int = 0) -> Problem:
    """Quadratic bowl `1/2 (x - c)^T A (x - c)` with eigenvalues log-spaced in [1, kappa].

    A is rotated by a random orthogonal matrix; c is a random centre in [-1, 1]^dim.
    `init` samples uniformly in [-5, 5]^dim, which is also the `domain` when dim == 2.
    """
    _check_positive(dim=dim)
    if not condition_number >= 1:
        raise InputError(f"condition_number must be >= 1, got {condition_number!r}")
    rng = np.random.default_rng(key)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    eig = np.geomspace(1.0, condition_number, dim)
    a = jnp.asarray((q * eig) @ q.T, jnp.float32)
    centre = jnp.asarray(rng.uniform(-1, 1, dim), jnp.float32)

    def loss(x, batch):
        r = x - centre
        return 0.5 * r @ (a @ r)

    init = lambda k: jax.random.uniform(k, (dim,), jnp.float32, -5.0, 5.0)
    return Problem(name="quadratic", init=init, loss=loss,
                   domain=((-5.0, 5.0), (-5.0, 5.0)) if dim == 2 else None,
                   known_minima=(KnownMinimum(centre, 0.0, "global"),),
                   description=f"quadratic bowl, dim={dim}, condition number "
                               f"{condition_number:g}: convex, 1 minimum")
