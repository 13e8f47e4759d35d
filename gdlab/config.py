"""TrainConfig: everything static about a training run, validated on construction."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from typing import Any

import optax

from gdlab._checks import InputError

OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": lambda lr, c: optax.sgd(lr),
    "momentum": lambda lr, c: optax.sgd(lr, momentum=c.momentum),
    "nesterov": lambda lr, c: optax.sgd(lr, momentum=c.momentum, nesterov=True),
    "adam": lambda lr, c: optax.adam(lr),
    "adamw": lambda lr, c: optax.adamw(lr, weight_decay=c.weight_decay),
    "rmsprop": lambda lr, c: optax.rmsprop(lr),
}
SAMPLINGS = ("with_replacement", "epoch")
SAMPLING_RNGS = ("hash", "threefry")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train: optimizer, learning rate, steps, mini-batches and evaluation schedule.

    Args:
      optimizer: one of "sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", or
        any optax `GradientTransformation` (then `learning_rate` may be None).
      learning_rate: a positive float or an optax schedule `step -> rate`.
      steps: number of optimizer steps T.
      batch_size: mini-batch size B, or None for full-batch gradient descent.
      sampling: "with_replacement" (each step draws B indices uniformly) or "epoch"
        (shuffle without replacement, reshuffle every epoch).
      sampling_rng: how "with_replacement" draws indices: "hash" (default; a 32-bit hash
        of the step and batch position keyed per seed, ~30x cheaper on CPU) or
        "threefry" (`jax.random.randint`, the generator of gdlab 0.1).
      eval_every: evaluate the loss every K steps (give this or eval_every_seconds).
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
        _check_int("steps", self.steps, minimum=1)
        if self.batch_size is not None:
            _check_int("batch_size", self.batch_size, minimum=1,
                       hint="or None for full-batch gradient descent")
        if self.sampling not in SAMPLINGS:
            raise InputError(f"unknown sampling {self.sampling!r}; valid: {', '.join(SAMPLINGS)}")
        if self.sampling_rng not in SAMPLING_RNGS:
            raise InputError(f"unknown sampling_rng {self.sampling_rng!r}; valid: "
                             f"{', '.join(SAMPLING_RNGS)}")
        _check_schedule(self.eval_every, self.eval_every_seconds)
        _check_int("chunk_steps", self.chunk_steps, minimum=1)

    @property
    def eval_by_time(self) -> bool:
        return self.eval_every_seconds is not None

    def make_optimizer(self) -> optax.GradientTransformation:
        """The optax transformation this config describes."""
        if isinstance(self.optimizer, str):
            return OPTIMIZERS[self.optimizer](self.learning_rate, self)
        return self.optimizer

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary (for manifests and reports)."""
        out = dataclasses.asdict(self)
        if not isinstance(self.optimizer, str):
            out["optimizer"] = f"custom optax transformation {type(self.optimizer).__name__}"
        if callable(self.learning_rate):
            out["learning_rate"] = f"schedule {getattr(self.learning_rate, '__name__', '')}"
        return out


def _check_int(name: str, value: Any, minimum: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        extra = f" ({hint})" if hint else ""
        raise InputError(f"{name} must be an integer >= {minimum}{extra}, got {value!r}")


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
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
        raise InputError(f"learning_rate must be a positive float or an optax schedule, "
                         f"got {learning_rate!r}")
    if not math.isfinite(learning_rate) or learning_rate <= 0:
        raise InputError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")


def _check_schedule(every: Any, seconds: Any) -> None:
    if (every is None) == (seconds is None):
        given = "both" if every is not None else "neither"
        raise InputError(f"give exactly one evaluation schedule, eval_every=K (steps) or "
                         f"eval_every_seconds=T (seconds); got {given} (eval_every={every!r}, "
                         f"eval_every_seconds={seconds!r})")
    if every is not None:
        _check_int("eval_every", every, minimum=1)
    elif (isinstance(seconds, bool) or not isinstance(seconds, numbers.Real)
          or not math.isfinite(seconds) or seconds <= 0):
        raise InputError(f"eval_every_seconds must be a finite number > 0, got {seconds!r}")
