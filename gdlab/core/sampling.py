"""Mini-batch samplers: pure functions of a seed's data key and the step number.

A sampler is `(init, draw)`: `init(data_key) -> state` and
`draw(state, data_key, t) -> (indices_B, state)`. The step `t` is never batched over
seeds, so epoch boundaries are decided by a real `lax.cond`, not a select.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gdlab._checks import InputError


class Sampler(NamedTuple):
    init: Callable[[jax.Array], Any]
    draw: Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]]


RNGS = ("hash", "threefry")


def with_replacement(n: int, batch_size: int, rng: str = "hash") -> Sampler:
    """Each step draws B indices uniformly from [0, N), independently of other steps.

    rng="threefry" draws them with `jax.random.randint` from `fold_in(data_key, t)`;
    rng="hash" (the default) hashes (t, position in batch) with two 32-bit words drawn
    once per seed from its data key, which is about 30x cheaper on CPU (threefry was
    25-40% of a small MLP's step). Every index has probability 1/N to within a relative
    N / 2^32; draws at different steps, positions and seeds look independent (tests check
    uniformity, unbiased batch means and no correlation between steps).
    """
    if rng == "threefry":
        def draw(state, data_key, t):
            idx = jax.random.randint(jax.random.fold_in(data_key, t), (batch_size,), 0, n)
            return idx, state
        return Sampler(init=lambda data_key: (), draw=draw)
    if rng != "hash":
        raise InputError(f"unknown sampling rng {rng!r}; valid: {', '.join(RNGS)}")
    positions = jnp.arange(batch_size, dtype=jnp.uint32)

    def init(data_key):  # fold_in: the seed's data key itself stays unconsumed
        return jax.random.bits(jax.random.fold_in(data_key, 0), (2,), jnp.uint32)

    def draw(words, data_key, t):
        step_word = _mix(jnp.asarray(t).astype(jnp.uint32) ^ words[0])
        h = _mix(_mix(positions ^ words[1]) ^ step_word)
        return (h % jnp.uint32(n)).astype(jnp.int32), words

    return Sampler(init=init, draw=draw)


def _mix(x: jax.Array) -> jax.Array:
    """A bijective 32-bit integer hash with full avalanche (Wellons' "lowbias32")."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _perm(data_key: jax.Array, epoch: jax.Array, n: int) -> jax.Array:
    return jax.random.permutation(jax.random.fold_in(data_key, epoch), n).astype(jnp.int32)


def epoch_shuffle(n: int, batch_size: int) -> Sampler:
    """Shuffle without replacement; every run of N consecutive draws is one permutation.

    The stream of indices is the concatenation of permutations of [0, N), one per
    epoch, cut into batches of B; a batch may straddle two epochs, so every index is
    visited exactly once per epoch even when B does not divide N. The state holds the
    current and the next epoch's permutation.
    """
    if batch_size > n:
        raise InputError(f"batch_size {batch_size} > N = {n} data points")

    def init(data_key):
        return (_perm(data_key, 0, n), _perm(data_key, 1, n))

    def draw(state, data_key, t):
        cur, nxt = state
        g = t * batch_size + jnp.arange(batch_size)
        epoch = (t * batch_size) // n
        idx = jnp.where(g // n == epoch, cur[g % n], nxt[g % n])
        crossed = ((t + 1) * batch_size) // n > epoch
        state = jax.lax.cond(crossed, lambda: (nxt, _perm(data_key, epoch + 2, n)),
                             lambda: (cur, nxt))
        return idx, state

    return Sampler(init=init, draw=draw)


def make_sampler(kind: str, n: int, batch_size: int, rng: str = "hash") -> Sampler:
    """The sampler called `kind` ("with_replacement" or "epoch") for N points, batch B;
    `rng` picks the index generator of "with_replacement" (see `with_replacement`)."""
    if kind == "with_replacement":
        return with_replacement(n, batch_size, rng)
    if kind == "epoch":
        return epoch_shuffle(n, batch_size)
    raise InputError(f"unknown sampling {kind!r}; valid: with_replacement, epoch")


def gather(data: Any, idx_B: jax.Array) -> Any:
    """The batch of `data` at indices `idx_B` (every leaf indexed on its leading axis)."""
    return jax.tree.map(lambda a: jnp.take(a, idx_B, axis=0), data)
