"""Seed ids and run keys: the rules every entry point (train, sweeps) shares."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gdlab._checks import InputError, is_int

MAX_SEED_ID = 2**31 - 1  # seed ids are int32 on the devices


def seed_ids_of(seeds: int | Sequence[int]) -> np.ndarray:
    """Seed ids from a count (0..S-1) or a sequence of unique ids in [0, 2**31)."""
    if is_int(seeds):
        if not 0 < int(seeds) <= MAX_SEED_ID + 1:
            raise InputError(f"seeds must be a positive number of seeds (at most 2**31) or a "
                             f"sequence of seed ids, got {seeds!r}")
        return np.arange(int(seeds), dtype=np.int64)
    if _is_key(seeds):
        raise InputError("seeds must be a count or a sequence of int seed ids, got a JAX key "
                         "(pass it as key=...)")
    try:
        ids = np.asarray(seeds)
    except (TypeError, ValueError, OverflowError) as e:
        raise InputError(f"seeds must be a positive int or a 1-D sequence of int seed ids, "
                         f"got {seeds!r}") from e
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"seeds must be a positive int or a non-empty 1-D sequence of int "
                         f"seed ids, got {seeds!r}")
    if ids.min() < 0 or ids.max() > MAX_SEED_ID:
        raise InputError(f"seed ids must lie in [0, 2**31), got min {ids.min()} max {ids.max()}")
    if len(np.unique(ids)) != len(ids):
        raise InputError("seed ids must be unique; got repeated ids")
    return ids.astype(np.int64)


def as_key(key: int | jax.Array) -> jax.Array:
    """A typed JAX key from an int or a typed key."""
    if is_int(key):
        if not -(2**63) <= int(key) < 2**63:
            raise InputError(f"key must be an int in [-2**63, 2**63) or a typed JAX key "
                             f"(jax.random.key), got {key!r}")
        return jax.random.key(int(key))
    if _is_key(key):
        if key.shape != ():
            raise InputError(f"key must be one key, got a key array of shape {key.shape}")
        return key
    raise InputError(f"key must be an int or a typed JAX key (jax.random.key), got {key!r}")


def _is_key(value) -> bool:
    return isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jax.dtypes.prng_key)
