"""Lanes: (seed, learning rate) pairs trained side by side in one compiled call.

A lane is one seed at one learning rate. Lanes reuse the engine's per-seed pieces
(`engine.make_init`, `engine.make_step`, the samplers), so lane `(i, lr)` follows exactly
the trajectory `gdlab.train(problem, replace(config, learning_rate=lr), seeds=[i], key)`
follows; the learning rate is a traced argument, so a whole learning-rate grid shares
one compile (the batch size still changes shapes: one compile per batch size).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gdlab.config import TrainConfig
from gdlab.core import devices as dev
from gdlab.core import engine
from gdlab.problem import Problem


class LaneFns(NamedTuple):
    """Per-lane pure functions (vmap them over lanes)."""

    init: Callable  # (seed_id, lr, key) -> SeedState
    step: Callable  # (state, lr, t, data) -> SeedState
    loss: Callable  # (state, eval_data) -> scalar


def rate_is_tunable(config: TrainConfig) -> bool:
    """True when the learning rate is a plain float of a named optimizer (can be swept)."""
    return isinstance(config.optimizer, str) and not callable(config.learning_rate)


def lane_fns(problem: Problem, config: TrainConfig, batch_size: int | None) -> LaneFns:
    """Init, step and loss of one lane at mini-batch size `batch_size` (None = full batch).

    The lane's rate enters at init as the optimizer's injected learning rate (as
    `gdlab.train` does with the config's), so configs whose rate cannot be swept (an optax
    transformation, a schedule) ignore it.
    """
    sampler = engine.build_sampler(problem, dataclasses.replace(config, batch_size=batch_size))
    optimizer = config.make_optimizer()
    base_init = engine.make_init(problem, optimizer, sampler)
    base_step = engine.make_step(problem, optimizer, sampler)
    tunable = rate_is_tunable(config)

    def init(seed_id, lr, key):
        return base_init(seed_id, key, {"learning_rate": lr} if tunable else None)

    def step(state, lr, t, data):  # the rate lives in the state since init
        return base_step(state, t, data)

    return LaneFns(init, step, lambda state, eval_data: problem.loss(state.params, eval_data))


@dataclasses.dataclass(frozen=True)
class LaneLayout:
    """Lanes laid out group-major: lane `g * S + s` is seed `seed_ids[s]` at `rates[g]`.

    The lane axis is padded to a multiple of the device count (padding repeats the last
    lane and is marked not `real`).
    """

    seed_ids: np.ndarray  # (S,)
    rates: np.ndarray     # (G,)
    padded: int

    @property
    def num_lanes(self) -> int:
        return len(self.seed_ids) * len(self.rates)

    def arrays(self) -> dict[str, np.ndarray]:
        """Per-lane seed id, rate, group index and real mask, padded."""
        s, g = len(self.seed_ids), len(self.rates)
        pad = lambda a: np.concatenate([a, np.repeat(a[-1:], self.padded - len(a))])
        return {"seed_id": pad(np.tile(self.seed_ids, g).astype(np.int32)),
                "lr": pad(np.repeat(self.rates, s).astype(np.float32)),
                "group": pad(np.repeat(np.arange(g, dtype=np.int32), s)),
                "real": pad(np.ones(s * g, bool)) & (np.arange(self.padded) < s * g)}

    def unpack(self, x_L: np.ndarray) -> np.ndarray:
        """(padded, ...) lane values -> (G, S, ...)."""
        x = np.asarray(x_L)[: self.num_lanes]
        return x.reshape(len(self.rates), len(self.seed_ids), *x.shape[1:])


def layout(seed_ids: np.ndarray, rates: Sequence[float], num_devices: int) -> LaneLayout:
    """The lane layout of `seed_ids` x `rates`, padded for `num_devices` devices."""
    lanes = len(seed_ids) * len(rates)
    return LaneLayout(np.asarray(seed_ids), np.asarray(rates, np.float64),
                      dev.padded_seed_count(lanes, num_devices, 1))


def place_lanes(mesh, arrays: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Lane arrays split over the mesh (the lane axis plays the seed axis)."""
    return {k: jax.device_put(jnp.asarray(v), dev.seed_sharding(mesh)) for k, v in arrays.items()}

