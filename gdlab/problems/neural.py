"""Built-in neural networks (flax linen) and the neural built-in problems.

The adapters for your own models (`from_flax`, `from_nnx`, `from_equinox`) live in
`gdlab.problems.adapters`; `from_flax` is re-exported here for older imports. Every
built-in network's `symmetry` is its `gdlab.symmetry.Symmetry` (hidden-unit
permutations, with sign flips for tanh and positive rescalings for relu).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gdlab._checks import InputError
from gdlab.problem import Problem, builtin
from gdlab.problems.adapters import from_flax
from gdlab.symmetry import for_model

# Hidden-layer activations by name (gelu: flax's tanh approximation).
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu, "tanh": jnp.tanh, "gelu": nn.gelu}


def activation_fn(name: str) -> Callable[[jax.Array], jax.Array]:
    """The activation called `name` (one of `ACTIVATIONS`), or an InputError."""
    if name not in ACTIVATIONS:
        raise InputError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Fully connected network: hidden layers with `activation` (tanh), linear output.

    `hidden=()` is a linear model (logistic regression with a cross-entropy loss).
    """

    hidden: Sequence[int]
    out: int = 1
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x):
        act = activation_fn(self.activation)
        for width in self.hidden:
            x = act(nn.Dense(width)(x))
        return nn.Dense(self.out)(x)


class CNN(nn.Module):
    """Convolutions (stride 1, SAME padding) with `activation`, then a linear output.

    Inputs are `(B, *spatial, channels)`: `(B, 8, 8, 1)` images with a 2-D kernel or
    `(B, 40, 1)` signals with a 1-D kernel (`kernel_size` has one entry per spatial axis).
    """

    channels: Sequence[int] = (8,)
    kernel_size: Sequence[int] = (3, 3)
    out: int = 10
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        act = activation_fn(self.activation)
        for features in self.channels:
            x = act(nn.Conv(features, tuple(self.kernel_size), padding="SAME")(x))
        return nn.Dense(self.out)(x.reshape(x.shape[0], -1))


def _half_squared_error(pred, target):
    return 0.5 * jnp.sum((pred - target) ** 2)


@builtin
def teacher_student(d_in: int = 8, hidden: int = 64, n: int = 4096, noise: float = 0.0,
                    teacher_hidden: int | None = None, key: int = 0) -> Problem:
    """Teacher-student regression: a one-hidden-layer tanh MLP fits a random teacher.

    Inputs are standard normal; targets are the outputs of a randomly initialised
    teacher MLP (width `teacher_hidden`, default the student's width; hidden biases drawn
    standard normal so its units differ) plus Gaussian noise.

    Args:
      d_in: input dimension D.
      hidden: student width h.
      n: data points N.
      noise: label noise standard deviation.
      teacher_hidden: teacher width (default: same as the student).
      key: integer seed of the data and the teacher.
    """
    for label, value in (("d_in", d_in), ("hidden", hidden), ("n", n)):
        if int(value) != value or value <= 0:
            raise InputError(f"{label} must be a positive integer, got {value!r}")
    teacher_hidden = hidden if teacher_hidden is None else teacher_hidden
    x, y = _teacher_data(jax.random.key(key), jnp.float32(noise), int(n), int(d_in),
                         int(teacher_hidden))
    p = from_flax(MLP(hidden=(hidden,)), x, y, _half_squared_error, name="teacher_student",
                  description=f"teacher-student tanh MLP {d_in}-{hidden}-1, N={n}: "
                              "non-convex, symmetric minima", symmetry=None)
    return dataclasses.replace(p, symmetry=for_model(p.params_shape(), "tanh"))


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _teacher_data(key: jax.Array, noise: jax.Array, n: int, d_in: int,
                  teacher_hidden: int) -> tuple[jax.Array, jax.Array]:
    """Inputs and noisy teacher outputs, one compiled program per shape (op by op, the
    teacher's init and apply compiled some 35 small programs at every construction)."""
    kx, kt, kb, kn = jax.random.split(key, 4)
    x = jax.random.normal(kx, (n, d_in))
    teacher = MLP(hidden=(teacher_hidden,))
    t_params = teacher.init(kt, x[:1])["params"]
    # Random hidden biases make the teacher's units distinct (flax initialises biases to 0).
    t_params["Dense_0"]["bias"] = jax.random.normal(kb, (teacher_hidden,))
    return x, teacher.apply({"params": t_params}, x) + noise * jax.random.normal(kn, (n, 1))


@builtin
def two_spirals(n: int = 512, hidden: Sequence[int] = (32, 32), noise: float = 0.05,
                key: int = 0) -> Problem:
    """Two interleaved spirals, classified by a tanh MLP with softmax cross-entropy.

    Args:
      n: data points N (half per class).
      hidden: hidden layer widths.
      noise: standard deviation of the Gaussian jitter added to the points.
      key: integer seed of the data.
    """
    if int(n) != n or n < 2:
        raise InputError(f"n must be an integer >= 2, got {n!r}")
    rng = np.random.default_rng(key)
    labels = (np.arange(n) >= n // 2).astype(np.int32)
    t = np.sqrt(rng.random(n)) * 3 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
    x = np.where(labels[:, None] == 0, arm, -arm) + noise * rng.standard_normal((n, 2))
    xent = lambda logits, label: optax.softmax_cross_entropy_with_integer_labels(logits, label)
    p = from_flax(MLP(hidden=tuple(hidden), out=2), jnp.asarray(x, jnp.float32),
                  jnp.asarray(labels), xent, name="two_spirals",
                  description=f"two spirals, MLP 2-{'-'.join(map(str, hidden))}-2, "
                              f"N={n}: non-convex classifier", symmetry=None)
    return dataclasses.replace(p, symmetry=for_model(p.params_shape(), "tanh")
                               if len(hidden) else None)
