"""TrainConfig: everything static about a training run, validated on construction."""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from typing import Any

import optax

from gdlab._checks import (
    InputError,
    check_choice,
    check_int,
    check_optional_int,
    check_positive,
    check_real,
    is_real,
)

# The hyperparameters of each named optimizer that enter the compiled program as inputs
# (`optax.inject_hyperparams`): a new value reuses the program, and seeds trained together
# may each have their own (`gdlab.sweep`). The optimizers' other settings are constants.
SWEPT: dict[str, tuple[str, ...]] = {
    "sgd": ("learning_rate",),
    "momentum": ("learning_rate", "momentum"),
    "nesterov": ("learning_rate", "momentum"),
    "adam": ("learning_rate",),
    "adamw": ("learning_rate", "weight_decay"),
    "rmsprop": ("learning_rate",),
}
_FACTORIES: dict[str, tuple[Callable[..., optax.GradientTransformation], dict[str, Any]]] = {
    "sgd": (optax.sgd, {}), "momentum": (optax.sgd, {}),
    "nesterov": (optax.sgd, {"nesterov": True}),
    "adam": (optax.adam, {}), "adamw": (optax.adamw, {}), "rmsprop": (optax.rmsprop, {}),
}
OPTIMIZERS = tuple(SWEPT)


def named_optimizer(name: str, **hyperparams: Any) -> optax.GradientTransformation:
    """The optax optimizer `name` with its `SWEPT` hyperparameters injected (state-held)."""
    factory, fixed = _FACTORIES[name]
    static = tuple(k for k in inspect.signature(factory).parameters if k not in SWEPT[name])
    return optax.inject_hyperparams(factory, static_args=static)(**fixed, **hyperparams)


SAMPLINGS = ("with_replacement", "epoch")
MAX_STEPS = 2**31 - 1  # the engine's step counter and `diverged_at` are int32
SAMPLING_RNGS = ("hash", "threefry")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train: optimizer, learning rate, steps, mini-batches and evaluation schedule.

    Args:
      optimizer: one of "sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", or
        any optax `GradientTransformation` (then `learning_rate` may be None).
      learning_rate: a positive float or an optax schedule `step -> rate`.
      steps: number of optimizer steps T, at most 2**31 - 1 (`MAX_STEPS`).
      batch_size: mini-batch size B, or None for full-batch gradient descent.
      sampling: "with_replacement" (each step draws B indices uniformly) or "epoch"
        (shuffle without replacement, reshuffle every epoch).
      sampling_rng: how "with_replacement" draws indices: "hash" (default; a 32-bit hash
        of the step and batch position keyed per seed, ~30x cheaper on CPU) or
        "threefry" (`jax.random.randint`, the generator of gdlab 0.1).
      eval_every: evaluate the loss every K steps (give this or eval_every_seconds; when
        neither is given, every steps // 10 steps).
      eval_every_seconds: evaluate the loss every T seconds of wall time.
      chunk_steps: steps per compiled chunk between host clock checks when evaluating
        by time (default 100); ignored for eval_every.
      momentum: momentum coefficient for "momentum" and "nesterov".
      weight_decay: decoupled weight decay for "adamw".

    Example:
      >>> cfg = TrainConfig(optimizer="sgd", learning_rate=1e-2, steps=2000, eval_every=100)
    """

    optimizer: str | optax.GradientTransformation = "sgd"
    learning_rate: float | optax.Schedule | None = 1e-3
    steps: int = 1000
    batch_size: int | None = None
    sampling: str = "with_replacement"
    sampling_rng: str = "hash"
    eval_every: int | None = None
    eval_every_seconds: float | None = None
    chunk_steps: int = 100
    momentum: float = 0.9
    weight_decay: float = 1e-4

    def __post_init__(self):
        _check_optimizer(self.optimizer, self.learning_rate)
        if is_real(self.learning_rate):  # 0-d NumPy / JAX numbers become plain floats
            object.__setattr__(self, "learning_rate", float(self.learning_rate))
        object.__setattr__(self, "steps", check_int("steps", self.steps, minimum=1))
        if self.steps > MAX_STEPS:
            raise InputError(f"steps must be at most {MAX_STEPS} (2**31 - 1: the engine counts "
                             f"steps in int32), got {self.steps!r}")
        object.__setattr__(self, "batch_size", check_optional_int(
            "batch_size", self.batch_size, minimum=1,
            hint="or None for full-batch gradient descent"))
        check_choice("sampling", self.sampling, SAMPLINGS)
        check_choice("sampling_rng", self.sampling_rng, SAMPLING_RNGS)
        if self.eval_every is None and self.eval_every_seconds is None:
            object.__setattr__(self, "eval_every", max(1, self.steps // 10))
        _check_schedule(self.eval_every, self.eval_every_seconds)
        object.__setattr__(self, "chunk_steps", check_int("chunk_steps", self.chunk_steps,
                                                          minimum=1))
        for name in ("momentum", "weight_decay"):
            object.__setattr__(self, name, check_real(name, getattr(self, name), 0.0,
                                                      1.0 if name == "momentum" else math.inf,
                                                      open_high=name == "momentum"))

    @property
    def eval_by_time(self) -> bool:
        return self.eval_every_seconds is not None

    def make_optimizer(self) -> optax.GradientTransformation:
        """The optax transformation this config describes (named optimizers with their
        `SWEPT` hyperparameters held in the optimizer state, as inputs)."""
        if isinstance(self.optimizer, str):
            values = {"learning_rate": self.learning_rate, "momentum": self.momentum,
                      "weight_decay": self.weight_decay}
            return named_optimizer(self.optimizer, **{k: values[k]
                                                      for k in SWEPT[self.optimizer]})
        return self.optimizer

    def hyperparams(self) -> dict[str, float]:
        """The hyperparameters that are inputs of the compiled program, with their values
        (none for an optax transformation; a schedule's rate is not one)."""
        if not isinstance(self.optimizer, str):
            return {}
        values = {"learning_rate": self.learning_rate, "momentum": self.momentum,
                  "weight_decay": self.weight_decay}
        return {k: float(values[k]) for k in SWEPT[self.optimizer] if not callable(values[k])}

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary (for manifests and reports)."""
        out = dataclasses.asdict(self)
        if not isinstance(self.optimizer, str):
            out["optimizer"] = f"custom optax transformation {type(self.optimizer).__name__}"
        if callable(self.learning_rate):
            out["learning_rate"] = f"schedule {getattr(self.learning_rate, '__name__', '')}"
        return out


def _check_optimizer(optimizer: Any, learning_rate: Any) -> None:
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)} "
                             "or an optax GradientTransformation")
        if learning_rate is None:
            raise InputError(f"optimizer {optimizer!r} needs a learning_rate (a positive float "
                             "or an optax schedule)")
    elif not isinstance(optimizer, optax.GradientTransformation):
        raise InputError(f"optimizer must be a name ({', '.join(OPTIMIZERS)}) or an optax "
                         f"GradientTransformation, got {optimizer!r}")
    if learning_rate is None or callable(learning_rate):
        return
    check_positive("learning_rate", learning_rate, hint="or an optax schedule")


def _check_schedule(every: Any, seconds: Any) -> None:
    if (every is None) == (seconds is None):
        given = "both" if every is not None else "neither"
        raise InputError(f"give exactly one evaluation schedule, eval_every=K (steps) or "
                         f"eval_every_seconds=T (seconds); got {given} (eval_every={every!r}, "
                         f"eval_every_seconds={seconds!r})")
    if every is not None:
        check_int("eval_every", every, minimum=1)
    else:
        check_positive("eval_every_seconds", seconds)
