"""Shared test helpers: a compile counter and pytree comparisons."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import jax
from jax.experimental.compilation_cache import compilation_cache

# Recorded by jax around every backend compile (jax/_src/dispatch.py, BACKEND_COMPILE_EVENT):
# once per program that misses jax's in-memory caches, a persistent-cache load included.
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@dataclasses.dataclass
class Compiles:
    """The programs compiled inside a `count_compiles` block: names and total seconds."""

    names: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"Compiles({self.count} in {self.seconds:.2f} s: {self.names})"


@contextlib.contextmanager
def count_compiles() -> Iterator[Compiles]:
    """Count the XLA programs compiled inside the block, with the persistent cache off.

    Every program that misses jax's in-memory caches is compiled for real (the persistent
    cache that tests/conftest.py turns on could otherwise hide a recompile as a cheap
    load); the cache setting is restored on exit.

    Example:
      >>> with count_compiles() as compiles:
      ...     f(x)
      >>> assert compiles.count == 0, compiles
    """
    log = Compiles()

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == BACKEND_COMPILE_EVENT:
            log.names.append(str(kwargs.get("fun_name", "?")))
            log.seconds += duration

    was_enabled = jax.config.jax_enable_compilation_cache
    _set_persistent_cache(False)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield log
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
        _set_persistent_cache(was_enabled)


def _set_persistent_cache(enabled: bool) -> None:
    """Turn jax's persistent compilation cache on or off (jax memoises whether it is used)."""
    jax.config.update("jax_enable_compilation_cache", enabled)
    compilation_cache.reset_cache()


def assert_trees_equal(a, b, *, dtype: bool = False) -> None:
    """Same structure and bitwise-equal leaves (and equal dtypes when `dtype`)."""
    import numpy as np
    assert jax.tree.structure(a) == jax.tree.structure(b), (jax.tree.structure(a),
                                                            jax.tree.structure(b))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if dtype:
            assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(x, y)


def assert_trees_close(a, b, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Same structure and leaves equal within tolerance."""
    import numpy as np
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


# Studies whose smoke runs test_experiments.py checks; the rest are in
# test_experiments_more.py, so that two test workers share the smoke runs (about 75 s each).
SMOKE_FIRST_FILE = ["step_costs", "convexity", "real_minima", "minima_census"]


def assert_smoke_report(out) -> None:
    """A study's smoke run wrote its report, figures and CSV tables."""
    report = (out / "report.md").read_text()
    assert report.startswith("# ") and "(smoke)" in report
    assert list(out.glob("*.png"))
    assert list(out.glob("**/*.csv")), "every study writes its tables as CSV"
