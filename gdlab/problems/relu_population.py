"""Two-layer ReLU teacher-student on the closed-form Gaussian population loss (no data).

The setting of Safran & Shamir (ICML 2018): a student x -> sum_i relu(w_i . x) with n
units fits a teacher x -> sum_j relu(v_j . x) with k units, x ~ N(0, I_d), on

    F(W) = E_x[(sum_i relu(w_i . x) - sum_j relu(v_j . x))^2] / 2,

written with the arc-cosine kernel of Cho & Saul (degree 1):

    E[relu(u . x) relu(v . x)] = |u| |v| h(c) / (2 pi),  h(c) = sqrt(1 - c^2) + (pi - arccos c) c,

c = cos(angle(u, v)). h'(c) = pi - arccos(c) is bounded, so the kernel is differentiated
through a custom JVP of h that clips c into [-1, 1] for the value but never cuts the
tangent. A unit's kernel with itself is |w|^2 / 2 in closed form, and h'' is taken as 0
where c = +-1 exactly (every tangent of c vanishes there), so Hessians are finite also at
W = V. F is not differentiable where a unit has |w| = 0; there the unit's direction is
taken as 0 (no sqrt'(0) = inf in any derivative), its kernels are 0 and so is its
gradient, in JAX and in the float64 host functions alike. The global minimum is F = 0 at
W = V up to a permutation of the units (extra units at 0).

float32 leaves F with a cancellation floor (three O(k^2) sums cancel to F): about 1e-5
at k = 20. `loss_float64` and `grad_float64` evaluate F and its gradient in float64
NumPy on the host, many seeds at once, to classify endpoints below that floor.

Shapes: S seeds, N student units, M teacher units, D input dimension.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from gdlab._checks import check_choice, check_int, check_positive
from gdlab.problem import KnownMinimum, Problem, builtin

TEACHERS = ("orthonormal",)
_TINY = 1e-30


# arccos(x) = sqrt(1 - x) (a0 + a1 x + ... + a7 x^7) on [0, 1], |error| <= 2e-8
# (Abramowitz & Stegun 4.4.46); about 4e-7 in float32 (XLA's arccos: 2e-7). The kernel's
# cost is almost all in arccos, and this is 3-5x cheaper on CPU than XLA's expansion.
_ACOS = (1.5707963050, -0.2145988016, 0.0889789874, -0.0501743046, 0.0308918810,
         -0.0170881256, 0.0066700901, -0.0012624911)


def _arccos(c: jax.Array) -> jax.Array:
    """arccos on [-1, 1] from the A&S polynomial (values outside are clipped)."""
    x = jnp.minimum(jnp.abs(c), 1.0)
    poly = jnp.full_like(x, _ACOS[-1])
    for a in _ACOS[-2::-1]:
        poly = poly * x + a
    r = jnp.sqrt(1.0 - x) * poly
    return jnp.where(c >= 0, r, jnp.pi - r)


@jax.custom_jvp
def _h(c: jax.Array) -> jax.Array:
    """sin(theta) + (pi - theta) cos(theta) as a function of c = cos(theta)."""
    c = jnp.clip(c, -1.0, 1.0)
    return jnp.sqrt(jnp.maximum((1.0 - c) * (1.0 + c), 0.0)) + (jnp.pi - _arccos(c)) * c


@_h.defjvp
def _h_jvp(primals, tangents):
    (c,), (dc,) = primals, tangents
    return _h(c), _h_prime(c) * dc


@jax.custom_jvp
def _h_prime(c: jax.Array) -> jax.Array:
    """h'(c) = pi - arccos(c), bounded on [-1, 1]."""
    return jnp.pi - _arccos(c)


@_h_prime.defjvp
def _h_prime_jvp(primals, tangents):
    # h''(c) = 1 / sqrt(1 - c^2) is infinite at c = +-1, where every tangent dc of a
    # cosine vanishes (c is extremal) and the true second derivative of the kernel is
    # finite: 0 there instead of inf * 0 = nan, so Hessians exist at W = V.
    (c,), (dc,) = primals, tangents
    gap = (1.0 - c) * (1.0 + c)
    inside = gap > 0
    return _h_prime(c), jnp.where(inside, jax.lax.rsqrt(jnp.where(inside, gap, 1.0)), 0.0) * dc


def _directions(u_ND: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Norms (N,) and unit directions (N, D); a zero row gets direction 0."""
    sq_N = jnp.sum(u_ND**2, axis=1)
    nonzero_N = sq_N > _TINY
    safe_N = jnp.sqrt(jnp.where(nonzero_N, sq_N, 1.0))  # no sqrt'(0) = inf in any derivative
    return jnp.where(nonzero_N, safe_N, 0.0), u_ND / safe_N[:, None]


def kernel_matrix(u_ND: jax.Array, v_MD: jax.Array) -> jax.Array:
    """(N, M) E[relu(u_i . x) relu(v_j . x)] for x ~ N(0, I_D) (arc-cosine kernel)."""
    nu_N, du_ND = _directions(u_ND)
    nv_M, dv_MD = _directions(v_MD)
    return nu_N[:, None] * nv_M[None, :] * _h(du_ND @ dv_MD.T) / (2 * jnp.pi)


def self_kernel_sum(u_ND: jax.Array) -> jax.Array:
    """sum_{i, j} E[relu(u_i . x) relu(u_j . x)], the diagonal in closed form (|u_i|^2 / 2)."""
    n = u_ND.shape[0]
    nu_N, du_ND = _directions(u_ND)
    eye = jnp.eye(n, dtype=bool)
    c_NN = jnp.where(eye, 0.0, du_ND @ du_ND.T)  # constant on the diagonal: h'' stays finite
    off = jnp.where(eye, 0.0, nu_N[:, None] * nu_N[None, :] * _h(c_NN) / (2 * jnp.pi))
    return jnp.sum(off) + 0.5 * jnp.sum(u_ND**2)


def population_loss(w_ND: jax.Array, v_MD: jax.Array) -> jax.Array:
    """F(W) = E[(sum_i relu(w_i . x) - sum_j relu(v_j . x))^2] / 2, x ~ N(0, I)."""
    return 0.5 * (self_kernel_sum(w_ND) - 2.0 * jnp.sum(kernel_matrix(w_ND, v_MD))
                  + self_kernel_sum(v_MD))


def orthonormal_loss(w_ND: jax.Array, k: int) -> jax.Array:
    """`population_loss` for the teacher v_j = e_j, j < k: cos(w_i, v_j) = w_ij / |w_i|
    (a slice, no product), and the teacher's own term k/2 + k(k-1)/(2 pi) in closed form."""
    nu_N, du_ND = _directions(w_ND)
    cross = jnp.sum(nu_N[:, None] * _h(du_ND[:, :k])) / (2 * jnp.pi)
    teacher = 0.5 * k + k * (k - 1) / (2 * jnp.pi)
    return 0.5 * (self_kernel_sum(w_ND) - 2.0 * cross + teacher)


# ------------------------------------------------------------------ float64 on the host


def _np_kernel_parts(u_SND: np.ndarray, v_SMD: np.ndarray):
    nu, nv = np.linalg.norm(u_SND, axis=-1), np.linalg.norm(v_SMD, axis=-1)
    du = u_SND / np.where(nu > _TINY, nu, 1.0)[..., None]
    dv = v_SMD / np.where(nv > _TINY, nv, 1.0)[..., None]
    c = np.clip(np.einsum("snd,smd->snm", du, dv), -1.0, 1.0)
    return nu, nv, du, c


def _np_kernel(u_SND: np.ndarray, v_SMD: np.ndarray, same: bool = False) -> np.ndarray:
    nu, nv, _, c = _np_kernel_parts(u_SND, v_SMD)
    if same:  # exact diagonal: angle 0
        idx = np.arange(c.shape[-1])
        c[:, idx, idx] = 1.0
    h = np.sqrt(np.maximum((1 - c) * (1 + c), 0.0)) + (np.pi - np.arccos(c)) * c
    return nu[..., :, None] * nv[..., None, :] * h / (2 * np.pi)


def _np_kernel_grad(u_SND: np.ndarray, v_SMD: np.ndarray, same: bool = False) -> np.ndarray:
    """(S, N, D) sum_j dK(u_i, v_j) / du_i, each term
    (|v_j| sin(theta) u_i / |u_i| + (pi - theta) v_j) / (2 pi)."""
    _, nv, du, c = _np_kernel_parts(u_SND, v_SMD)
    if same:
        idx = np.arange(c.shape[-1])
        c[:, idx, idx] = 1.0
    sin, theta = np.sqrt(np.maximum((1 - c) * (1 + c), 0.0)), np.arccos(c)
    radial = np.sum(nv[:, None, :] * sin, axis=-1)[..., None] * du
    return (radial + np.einsum("snm,smd->snd", np.pi - theta, v_SMD)) / (2 * np.pi)


def _as_seeds(w: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(w, np.float64)
    w_SND = w[None] if w.ndim == 2 else w
    v_SMD = np.broadcast_to(np.asarray(v, np.float64), (w_SND.shape[0], *np.shape(v)))
    return w_SND, v_SMD


def loss_float64(w_SND: np.ndarray, v_MD: np.ndarray) -> np.ndarray:
    """(S,) F of every seed (or a scalar array for one (N, D) W), in float64 NumPy."""
    w, v = _as_seeds(w_SND, v_MD)
    f = 0.5 * (_np_kernel(w, w, same=True).sum((1, 2)) - 2 * _np_kernel(w, v).sum((1, 2))
               + _np_kernel(v, v, same=True).sum((1, 2)))
    return np.maximum(f, 0.0) if np.ndim(w_SND) == 3 else np.maximum(f[0], 0.0)


def grad_float64(w_SND: np.ndarray, v_MD: np.ndarray) -> np.ndarray:
    """dF/dW of every seed, (S, N, D) (or (N, D)), in float64 NumPy (closed form)."""
    w, v = _as_seeds(w_SND, v_MD)
    g = _np_kernel_grad(w, w, same=True) - _np_kernel_grad(w, v)
    g = np.where(np.linalg.norm(w, axis=-1, keepdims=True) > _TINY, g, 0.0)  # as in JAX
    return g if np.ndim(w_SND) == 3 else g[0]


# ------------------------------------------------------------------ the problem


def teacher_weights(k: int, d: int, teacher: str = "orthonormal") -> np.ndarray:
    """(k, d) teacher rows: v_j = e_j ("orthonormal")."""
    check_choice("teacher", teacher, TEACHERS)
    return np.eye(k, d, dtype=np.float32)


def sort_units(w_ND: jax.Array) -> jax.Array:
    """Canonical order of the student units (rows sorted by a fixed generic projection):
    the loss is invariant to permuting them."""
    probe_D = jnp.arange(1, w_ND.shape[1] + 1, dtype=w_ND.dtype)
    return w_ND[jnp.argsort(w_ND @ probe_D)]


@builtin
def relu_population(k: int = 6, extra: int = 0, teacher: str = "orthonormal",
                    init_scale: float = 1.0, d: int | None = None) -> Problem:
    """Two-layer ReLU student (k + extra units) fitting a k-unit teacher, population loss.

    The loss is the closed-form expectation over x ~ N(0, I_d) (no data; Safran & Shamir,
    ICML 2018): F(W) = E[(sum_i relu(w_i . x) - sum_j relu(v_j . x))^2] / 2, output
    weights fixed to 1.

    Args:
      k: teacher units (>= 1).
      extra: extra student units (>= 0): the student has n = k + extra.
      teacher: "orthonormal" (v_j = e_j).
      init_scale: each student row starts at N(0, init_scale^2 I / d) (1.0: the
        Xavier-like init of the paper, |w_i| about init_scale).
      d: input dimension (default k; must be >= k).

    Returns:
      A data-free Problem with params W of shape (k + extra, d), `known_minima` holding
      the global minimum W = V (extra rows 0; F = 0), and `symmetry` sorting the units.

    Example:
      >>> p = relu_population(k=6, extra=1)
      >>> p.params_shape().shape, p.known_minima[0].loss
      ((7, 6), 0.0)
    """
    k = check_int("k", k, minimum=1)
    extra = check_int("extra", extra, minimum=0)
    d = k if d is None else check_int("d", d, minimum=k)
    init_scale = check_positive("init_scale", init_scale)
    n = k + extra
    v_KD = jnp.asarray(teacher_weights(k, d, teacher))
    std = init_scale / math.sqrt(d)

    def init(key):
        return std * jax.random.normal(key, (n, d), jnp.float32)

    def loss(w_ND, batch):
        del batch
        return orthonormal_loss(w_ND, k)

    global_min = jnp.concatenate([v_KD, jnp.zeros((extra, d), jnp.float32)])
    return Problem(
        name=f"relu_population_k{k}_n{n}", init=init, loss=loss,
        known_minima=(KnownMinimum(global_min, 0.0, "global"),), symmetry=sort_units,
        description=f"two-layer ReLU student ({n} units) vs {teacher} teacher ({k} units), "
                    f"Gaussian population loss in closed form, d={d}")
