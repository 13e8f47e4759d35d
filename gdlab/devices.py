"""Devices: the 1-D mesh over which the seed axis is sharded, and seed padding/chunking."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

SEED_AXIS = "seeds"
# Per-chunk working set to aim for on CPU: small enough to stay in a core's L2 cache.
CPU_CHUNK_BYTES = 1 << 20


def seed_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named "seeds" over `devices` (default: every local device)."""
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices is empty; pass at least one jax.Device")
    return Mesh(np.array(devices), (SEED_AXIS,))


def replicated(mesh: Mesh, tree: Any) -> Any:
    """`tree` placed whole on every device of the mesh."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def seed_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (seed) axis split over the mesh."""
    return NamedSharding(mesh, P(SEED_AXIS))


def auto_seed_chunk(local_seeds: int, bytes_per_seed: float, platform: str) -> int:
    """Seeds vmapped together per device: all of them on accelerators; on CPU, a power of
    two whose working set fits in cache (per-step temporaries stay hot)."""
    if platform != "cpu" or bytes_per_seed <= 0:
        return local_seeds
    chunk = 2 ** int(math.log2(max(1.0, CPU_CHUNK_BYTES / bytes_per_seed)))
    return int(min(local_seeds, max(4, chunk)))


def padded_seed_count(num_seeds: int, num_devices: int, chunk: int) -> int:
    """Smallest multiple of num_devices x chunk that holds num_seeds."""
    block = num_devices * chunk
    return -(-num_seeds // block) * block


def seed_parallel(fn: Callable, mesh: Mesh, chunk: int, num_shared: int) -> Callable:
    """`fn(per_seed, *shared)` lifted to a leading seed axis, sharded over the mesh.

    Each device maps over its local seeds in vmapped chunks of `chunk` (`lax.map`),
    so temporaries stay small; the `shared` arguments are replicated.
    """
    def local(seeds, *shared):
        return jax.lax.map(lambda s: fn(s, *shared), seeds, batch_size=chunk)
    return jax.shard_map(local, mesh=mesh, in_specs=(P(SEED_AXIS),) + (P(),) * num_shared,
                         out_specs=P(SEED_AXIS), check_vma=False)


def describe(devices: Sequence[jax.Device]) -> list[str]:
    """Human-readable device list for manifests."""
    return [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip() for d in devices]
