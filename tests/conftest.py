"""Strict JAX settings and 4 simulated CPU devices, set before any backend starts.

Compiled programs are cached on disk for the session (shared by pytest-xdist workers and
the subprocesses tests start): `gdlab.train` compiles ahead of time on every call, and
many tests train the same small programs, so repeats load instead of recompiling.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite checks results, not speed, and is dominated by compiling small programs:
# XLA:CPU's LLVM at its lowest optimisation level compiles them about 40% faster (the
# whole suite: 611 s -> 485 s of pytest on 2 cores). Results stay bitwise reproducible
# (the tests comparing programs compare programs built under the same flags).
# Training in subprocesses at default flags is still checked (test_distributed.py clears
# XLA_FLAGS for its processes).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_"
                               "level=0 --xla_llvm_disable_expensive_passes=true").strip()
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # the first process of the session
    _cache = tempfile.mkdtemp(prefix="gdlab-test-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_debug_key_reuse", True)


@pytest.fixture(scope="session")
def devices():
    devs = jax.devices()
    assert len(devs) == 4, f"expected 4 simulated CPU devices, got {devs}"
    return devs


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Each study's smoke run, done once per test module: `smoke_runs(name)` ->
    (study module, run directory)."""
    from gdlab.cli import load_study
    cache = {}

    def get(name):
        if name not in cache:
            module = load_study(name)
            out = tmp_path_factory.mktemp(name) / "run"
            cache[name] = (module, module.run(module.get_config(smoke=True), out=out))
        return cache[name]
    return get
