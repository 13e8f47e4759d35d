"""Devices: the 1-D mesh over which the seed axis is sharded, seed padding and blocks, and
multi-process runs (`jax.distributed`): global arrays in, host arrays out."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from gdlab._checks import InputError

SEED_AXIS = "seeds"
# Per-block working set to aim for on CPU: small enough to stay in a core's L2 cache.
CPU_BLOCK_BYTES = 1 << 20


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None, process_id: int | None = None,
                           initialization_timeout: int = 300) -> None:
    """Join a multi-process JAX run (`jax.distributed.initialize`); call before any JAX work.

    With no arguments JAX detects the cluster (SLURM, Open MPI, ...); otherwise give the
    coordinator's "host:port", the number of processes and this process's id. CPU
    processes exchange results over gloo. Every process must then call `gdlab.train`
    with the same arguments; the seed axis spans every device of every process.
    """
    if jax.distributed.is_initialized():
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id,
                               initialization_timeout=initialization_timeout)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_tuned = False


def tune_host_allocator() -> bool:
    """Keep freed host memory in the process (glibc only; once per process).

    XLA on CPU allocates each call's large temporaries with malloc; glibc serves those with
    fresh mmap pages and hands them back on free, so every call pays the page faults again.
    For a loss measured on 4096 points that made each measurement 4x slower (9.6 ms vs
    2.4 ms, teacher-student 8-64-1, 16 seeds). Raising the mmap and trim thresholds to
    1 GiB keeps the pages; the cost is that the process's resident memory stays at its
    peak. Set GDLAB_MALLOC_TUNING=0 to leave the allocator alone. Returns whether applied.
    """
    global _tuned
    if _tuned or os.environ.get("GDLAB_MALLOC_TUNING", "1") == "0":
        return _tuned
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        _tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and \
            bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):  # not glibc: nothing to tune
        _tuned = False
    return _tuned


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_cpu_devices() -> int | None:
    """Give JAX one CPU device per usable core, so seeds sharded over them use every core.

    A single XLA CPU device runs most of a small model's step on one core; sharding the
    seeds over one device per core ran a 256-seed MLP workload 2x faster on 2 cores. This
    runs when gdlab is imported and only if JAX has not started and nobody chose a count:
    `GDLAB_CPU_DEVICES=N` picks N (1 = JAX's default), and JAX's own settings
    (`JAX_NUM_CPU_DEVICES`, `jax_num_cpu_devices`, `--xla_force_host_platform_device_count`)
    are left alone. Returns the count set, or None when nothing was changed.
    """
    chosen = os.environ.get("GDLAB_CPU_DEVICES")
    if chosen is None and (jax.config.jax_num_cpu_devices != -1
                           or "JAX_NUM_CPU_DEVICES" in os.environ
                           or "xla_force_host_platform_device_count" in
                           os.environ.get("XLA_FLAGS", "")):
        return None
    if chosen is not None and not (chosen.isdigit() and int(chosen) >= 1):
        warnings.warn(f"GDLAB_CPU_DEVICES={chosen!r} is not an integer >= 1; ignored",
                      stacklevel=2)
        return None
    count = int(chosen) if chosen is not None else usable_cores()
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # JAX already started (it was used before `import gdlab`)
        if count > 1 and jax.default_backend() == "cpu":
            warnings.warn(f"JAX was started before gdlab was imported, so it has "
                          f"{len(jax.devices())} CPU device(s) instead of one per core "
                          f"({count}); seeds then train on fewer cores (1.8x slower on 2 "
                          "cores). Import gdlab before using JAX, or set "
                          f"JAX_NUM_CPU_DEVICES={count} before starting Python.", stacklevel=3)
        return None
    return count


def default_compilation_cache() -> str | None:
    """Keep compiled programs on disk across processes (JAX's persistent cache), so a second
    process running the same study or CLI command skips most compiling.

    The cache lives in `$GDLAB_CACHE_DIR` (default `~/.cache/gdlab/jax`, or under
    `$XDG_CACHE_HOME`); `GDLAB_COMPILATION_CACHE=0` turns it off, and a cache directory
    chosen through JAX (`JAX_COMPILATION_CACHE_DIR`, `jax_compilation_cache_dir`) is left
    alone. Programs that compile in under 0.2 s are not cached. Returns the directory used.
    """
    if os.environ.get("GDLAB_COMPILATION_CACHE", "1") == "0":
        return None
    if "JAX_COMPILATION_CACHE_DIR" in os.environ or jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.environ.get("GDLAB_CACHE_DIR") or os.path.join(base, "gdlab", "jax")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:  # an unwritable home: run without the cache
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    return path


def is_main_process() -> bool:
    """True in the process that writes files (process 0; always true when single-process)."""
    return jax.process_index() == 0


def seed_mesh(devices: Sequence[jax.Device] | None = None, num_seeds: int | None = None) -> Mesh:
    """A 1-D mesh named "seeds" over `devices` (default: every device of every process;
    in a single process, at most `num_seeds` of them, so a few seeds are not padded out
    to one per device)."""
    if devices is None:
        devices = jax.devices()
        if num_seeds is not None and jax.process_count() == 1:
            devices = devices[:max(1, num_seeds)]
    devices = list(devices)
    if not devices:
        raise InputError("devices is empty; pass at least one jax.Device")
    return Mesh(np.array(devices), (SEED_AXIS,))


def put(x: Any, sharding: NamedSharding) -> jax.Array:
    """Host array (the same in every process) -> global array with `sharding`."""
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(put(jax.random.key_data(x), sharding),
                                        impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def replicated(mesh: Mesh, tree: Any) -> Any:
    """`tree` placed whole on every device of the mesh."""
    return jax.tree.map(lambda x: put(x, NamedSharding(mesh, P())), tree)


def to_host(x: jax.Array) -> np.ndarray:
    """The whole of a (possibly multi-process) array as a NumPy array, in every process."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    if getattr(x, "is_fully_addressable", True) or x.is_fully_replicated:
        return np.asarray(x)
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def agree(flags: Sequence[bool]) -> list[bool]:
    """Process 0's values of host-side decisions, so every process takes the same branch."""
    if jax.process_count() == 1:
        return list(flags)
    from jax.experimental import multihost_utils
    return [bool(f) for f in multihost_utils.broadcast_one_to_all(np.asarray(flags, bool))]


def check_devices(devices: Any) -> None:
    """None, or a non-empty sequence of jax.Device; else an InputError naming the value."""
    if devices is None:
        return
    try:
        listed = list(devices)
    except TypeError:
        listed = None
    if not listed or not all(isinstance(d, jax.Device) for d in listed):
        raise InputError(f"devices must be None or a non-empty sequence of jax.Device "
                         f"(e.g. jax.devices()), got {devices!r}")


def seed_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (seed) axis split over the mesh."""
    return NamedSharding(mesh, P(SEED_AXIS))


def memory_bytes(device: jax.Device) -> float:
    """Memory one device can hold: its allocator limit, or the host's RAM for CPU devices
    (shared by all of them, so divided by their number)."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return float(stats["bytes_limit"])
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return float("inf")
    return float(ram) / max(1, len(jax.local_devices(backend=device.platform)))


def auto_seed_block(local_seeds: int, bytes_per_seed: float, platform: str,
                    convolution: bool = False) -> int:
    """Seeds vmapped together per device (the seed block): all of them on accelerators; on
    CPU, a power of two whose working set fits in cache (per-step temporaries stay hot),
    and 1 (`lax.map` over single seeds) for a model with convolutions: XLA:CPU runs a
    convolution batched over seeds slower per seed than one seed's (digits CNN, 64 seeds
    x 100 steps, `benchmarks/run.py --only W5`: blocks 1 / 4 / 8 / 32 took 1.57 / 1.73 /
    1.79 / 2.52 s)."""
    if platform != "cpu" or bytes_per_seed <= 0:
        return local_seeds
    if convolution:
        return 1
    block = 2 ** int(math.log2(max(1.0, CPU_BLOCK_BYTES / bytes_per_seed)))
    return int(min(local_seeds, max(4, block)))


def padded_seed_count(num_seeds: int, num_devices: int, block: int) -> int:
    """Smallest multiple of num_devices x block that holds num_seeds."""
    size = num_devices * block
    return -(-num_seeds // size) * size


def seed_parallel(fn: Callable, mesh: Mesh, block: int, num_shared: int,
                  batched: bool = False) -> Callable:
    """`fn(per_seed, *shared)` lifted to a leading seed axis, sharded over the mesh.

    Each device maps over its local seeds in vmapped blocks of `block` seeds (`lax.map`),
    so temporaries stay small; the `shared` arguments are replicated. With `batched`,
    `fn` takes a whole block of seeds (leading axis `block`) and does its own vmapping.
    """
    def local(seeds, *shared):
        if not batched:
            return jax.lax.map(lambda s: fn(s, *shared), seeds, batch_size=block)
        split = lambda x: x.reshape((-1, block, *x.shape[1:]))
        out = jax.lax.map(lambda s: fn(s, *shared), jax.tree.map(split, seeds))
        return jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), out)
    return jax.shard_map(local, mesh=mesh, in_specs=(P(SEED_AXIS),) + (P(),) * num_shared,
                         out_specs=P(SEED_AXIS), check_vma=False)


def describe(devices: Sequence[jax.Device]) -> list[str]:
    """Human-readable device list for manifests."""
    return [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip() for d in devices]
