"""Neural problems defined with flax, and an adapter for a user's own flax module."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gdlab._checks import InputError
from gdlab.atlas.symmetry import tanh_mlp_canonical
from gdlab.problem import Problem, builtin, num_data_points


class MLP(nn.Module):
    """Fully connected network: tanh hidden layers, linear output."""

    hidden: Sequence[int]
    out: int = 1

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = jnp.tanh(nn.Dense(width)(x))
        return nn.Dense(self.out)(x)


def from_flax(module: nn.Module, x: jax.typing.ArrayLike, y: jax.typing.ArrayLike,
              per_example_loss: Callable[[jax.Array, jax.Array], jax.Array],
              name: str = "flax", description: str = "") -> Problem:
    """Turn a flax linen module, a dataset and a per-example loss into a Problem.

    Params are the module's `"params"` collection; modules with other mutable
    collections (batch statistics, caches) are not supported.

    Args:
      module: a `flax.linen.Module` mapping a batch of inputs to a batch of outputs.
      x: inputs, leading axis N.
      y: targets, leading axis N.
      per_example_loss: `loss(prediction_i, target_i) -> scalar` for one example;
        the Problem's loss is its mean over the batch.
      name: problem name used in reports.

    Example:
      >>> p = from_flax(MLP(hidden=(16,)), x, y, lambda p, t: 0.5 * jnp.sum((p - t) ** 2))
    """
    data = {"x": jnp.asarray(x), "y": jnp.asarray(y)}
    num_data_points(data, where=f"from_flax({name!r}) data")
    example_x = data["x"][:1]
    variables = jax.eval_shape(module.init, jax.random.key(0), example_x)
    extra = sorted(set(variables) - {"params"})
    if extra:
        raise InputError(f"from_flax({name!r}): module has collections {extra} besides "
                         "'params'; only stateless modules (params only) are supported")

    def init(key):
        return module.init(key, example_x)["params"]

    def loss(params, batch):
        pred = module.apply({"params": params}, batch["x"])
        return jnp.mean(jax.vmap(per_example_loss)(pred, batch["y"]))

    def predict(params, batch):
        return module.apply({"params": params}, batch["x"])

    return Problem(name=name, init=init, loss=loss, data=data, predict=predict,
                   description=description)


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
    kx, kt, kb, kn = jax.random.split(jax.random.key(key), 4)
    x = jax.random.normal(kx, (n, d_in))
    teacher = MLP(hidden=(teacher_hidden,))
    t_params = teacher.init(kt, x[:1])["params"]
    # Random hidden biases make the teacher's units distinct (flax initialises biases to 0).
    t_params["Dense_0"]["bias"] = jax.random.normal(kb, (teacher_hidden,))
    y = teacher.apply({"params": t_params}, x) + noise * jax.random.normal(kn, (n, 1))
    p = from_flax(MLP(hidden=(hidden,)), x, y, _half_squared_error, name="teacher_student",
                  description=f"teacher-student tanh MLP {d_in}-{hidden}-1, N={n}: "
                              "non-convex, symmetric minima")
    return dataclasses.replace(p, symmetry=tanh_mlp_canonical)


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
                              f"N={n}: non-convex classifier")
    return dataclasses.replace(p, symmetry=tanh_mlp_canonical)
