"""Seed ids and run keys: the rules every entry point (train, sweeps) shares."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gdlab._checks import InputError, is_int


def seed_ids_of(seeds: int | Sequence[int]) -> np.ndarray:
    """Seed ids from a count (0..S-1) or a sequence of unique ids in [0, 2**31)."""
    if is_int(seeds):
        if seeds <= 0:
            raise InputError(f"seeds must be a positive number of seeds or a sequence of seed "
                             f"ids, got {seeds!r}")
        return np.arange(int(seeds), dtype=np.int64)
    ids = np.asarray(seeds)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"seeds must be a positive int or a non-empty 1-D sequence of int "
                         f"seed ids, got {seeds!r}")
    if ids.min() < 0 or ids.max() >= 2**31:
        raise InputError(f"seed ids must lie in [0, 2**31), got min {ids.min()} max {ids.max()}")
    if len(np.unique(ids)) != len(ids):
        raise InputError("seed ids must be unique; got repeated ids")
    return ids.astype(np.int64)


def as_key(key: int | jax.Array) -> jax.Array:
    """A typed JAX key from an int or a typed key."""
    if is_int(key):
        return jax.random.key(int(key))
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    raise InputError(f"key must be an int or a typed JAX key (jax.random.key), got {key!r}")
