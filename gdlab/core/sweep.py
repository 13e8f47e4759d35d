"""`gdlab.sweep`: a grid of hyperparameter values x seeds, trained in one compiled call.

Every grid point x seed is a lane (see `gdlab.core.train`): the optimizer's injected
hyperparameters (learning rate, momentum, weight decay) are inputs of the compiled
program, so the whole grid shares one compile and one set of chunks, and lane (point,
seed i) follows exactly the trajectory of `gdlab.train(problem, replace(config, **point),
seeds=[i])`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from gdlab._checks import InputError, check_positive, check_real
from gdlab.config import SWEPT, TrainConfig
from gdlab.core.runs import Runs
from gdlab.core.seeds import seed_ids_of
from gdlab.core.train import Lanes, make_plan, run_plan
from gdlab.problem import Problem

# What each swept value may be.
_VALID = {"learning_rate": ("a finite number > 0", lambda v: check_positive("learning_rate", v)),
          "momentum": ("in [0, 1)", lambda v: check_real("momentum", v, 0.0, 1.0,
                                                          open_high=True)),
          "weight_decay": ("a finite number >= 0", lambda v: check_real("weight_decay", v, 0.0))}
LOWER_IS_BETTER = ("loss", "error")
HIGHER_IS_BETTER = ("accuracy",)


@dataclasses.dataclass(frozen=True, eq=False)
class Sweep:
    """Result of `gdlab.sweep`: one `Runs` per grid point.

    Attributes:
      names: the swept hyperparameters, in grid order.
      grid: G points, each {name: value}, the last name varying fastest.
      runs: G `Runs`, `runs[g]` trained at `grid[g]`, each with the same seeds.
      timings: compile_seconds, cache_hit, seconds (the whole call).
    """

    names: tuple[str, ...]
    grid: list[dict[str, float]]
    runs: list[Runs]
    timings: dict[str, Any]

    def scores(self, metric: str = "train/loss", statistic: str = "median") -> np.ndarray:
        """(G,) the final `metric` of each grid point over its seeds ("median" or "mean";
        diverged seeds count as NaN, and a point with any NaN seed scores NaN for "mean")."""
        if statistic not in ("median", "mean"):
            raise InputError(f"statistic must be 'median' or 'mean', got {statistic!r}")
        reduce = np.median if statistic == "median" else np.mean
        return np.array([reduce(_final(r, metric)) for r in self.runs])

    def best(self, metric: str = "train/loss", mode: str | None = None,
             statistic: str = "median") -> dict[str, float]:
        """The grid point with the best final `metric` (lowest for losses and errors,
        highest for accuracies; `mode="min"|"max"` for others). Warns when the best value of
        a hyperparameter lies at the edge of its grid: the optimum may lie beyond it."""
        return self.grid[self._best_index(metric, mode, statistic, stacklevel=4)]

    def best_index(self, metric: str = "train/loss", mode: str | None = None,
                   statistic: str = "median") -> int:
        """Index into `grid` of `best`."""
        return self._best_index(metric, mode, statistic, stacklevel=4)

    def _best_index(self, metric: str, mode: str | None, statistic: str,
                    stacklevel: int) -> int:
        # stacklevel: the user's line that called best or best_index, for the edge warning
        mode = _mode(metric, mode)
        scores = self.scores(metric, statistic)
        if np.all(np.isnan(scores)):
            raise InputError(f"no grid point has a finite {metric!r} on every seed")
        signed = np.where(np.isnan(scores), np.inf, scores if mode == "min" else -scores)
        best = int(np.argmin(signed))
        self._warn_at_edge(self.grid[best], metric, stacklevel)
        return best

    def _warn_at_edge(self, point: dict[str, float], metric: str, stacklevel: int) -> None:
        for name in self.names:
            values = sorted({p[name] for p in self.grid})
            if len(values) >= 3 and point[name] in (values[0], values[-1]):
                side = "smallest" if point[name] == values[0] else "largest"
                warnings.warn(f"the best {name} for {metric!r}, {point[name]:g}, is the {side} "
                              f"value of the grid {values}: the optimum may lie beyond it; "
                              "extend the grid", stacklevel=stacklevel)

    def table(self, metrics: Sequence[str] = ("train/loss",)) -> tuple[list[str], list[list]]:
        """Header and numeric rows: the grid point, then median and 10-90% range of each
        metric over seeds, and the diverged count."""
        header = [*self.names]
        for m in metrics:
            header += [f"{m} median", f"{m} q10", f"{m} q90"]
        header.append("diverged")
        rows = []
        for point, runs in zip(self.grid, self.runs, strict=True):
            row = [point[n] for n in self.names]
            for m in metrics:
                row += [float(v) for v in np.nanquantile(_final(runs, m), [0.5, 0.1, 0.9])]
            rows.append([*row, int(runs.diverged.sum())])
        return header, rows

    def to_dataframe(self):
        """One row per (grid point, seed): the hyperparameters, seed id, final metrics."""
        import pandas as pd
        frames = []
        for point, runs in zip(self.grid, self.runs, strict=True):
            frames.append(runs.to_dataframe().assign(**point))
        return pd.concat(frames, ignore_index=True)


def _final(runs: Runs, metric: str) -> np.ndarray:
    values = runs.final(metric).astype(np.float64)
    return np.where(runs.diverged, np.nan, values)


def _mode(metric: str, mode: str | None) -> str:
    if mode is not None:
        if mode not in ("min", "max"):
            raise InputError(f"mode must be 'min', 'max' or None, got {mode!r}")
        return mode
    base = metric.rsplit("/", 1)[-1]
    if base in LOWER_IS_BETTER:
        return "min"
    if base in HIGHER_IS_BETTER:
        return "max"
    raise InputError(f"say whether a higher or a lower {metric!r} is better: mode='min' or "
                     "'max'")


def sweep(problem: Problem, config: TrainConfig, seeds: int | Sequence[int] = 16,
          key: int | jax.Array = 0, *, learning_rate: Sequence[float] | None = None,
          momentum: Sequence[float] | None = None,
          weight_decay: Sequence[float] | None = None, progress: bool | None = None,
          **train_options: Any) -> Sweep:
    """Train every seed at every point of a hyperparameter grid, in one compiled call.

    Args:
      problem: the `gdlab.Problem`.
      config: a `gdlab.TrainConfig` with a named optimizer; the swept values replace its own.
      seeds: seeds per grid point (a count or ids); every point trains the same seeds.
      key: integer or JAX key.
      learning_rate, momentum, weight_decay: the values to try (each a non-empty sequence;
        only hyperparameters of the config's optimizer, see `gdlab.config.SWEPT`). The grid
        is their product.
      progress: show a progress bar.
      **train_options: `gdlab.train`'s other options (devices, seed_block, seeds_per_call,
        eval_data, unroll).

    Returns:
      A `Sweep`: `.grid`, `.runs`, `.best(metric)`, `.table()`, `.to_dataframe()`.

    Example:
      >>> sw = gdlab.sweep(gdlab.problems.himmelblau(),
      ...                  gdlab.TrainConfig(steps=100, eval_every=50), seeds=4,
      ...                  learning_rate=[1e-3, 3e-3, 1e-2], progress=False)
      >>> len(sw.runs), sw.grid[0]
      (3, {'learning_rate': 0.001})
    """
    grid, names = _grid(config, {"learning_rate": learning_rate, "momentum": momentum,
                                 "weight_decay": weight_decay})
    bad = set(train_options) - {"devices", "seed_block", "seeds_per_call", "eval_data",
                                "unroll"}
    if bad:
        raise InputError(f"unknown sweep options {sorted(bad)}; valid: devices, seed_block, "
                         "seeds_per_call, eval_data, unroll")
    seed_ids = seed_ids_of(seeds)
    lanes = _lanes(config, grid, seed_ids)
    start = time.perf_counter()
    plan = make_plan(problem, config, lanes, key, **train_options)
    trained = run_plan(problem, config, plan, progress)
    runs = [trained.runs(slice(g * len(seed_ids), (g + 1) * len(seed_ids)))
            for g in range(len(grid))]
    for point, r in zip(grid, runs, strict=True):
        r.manifest["config"] = dataclasses.replace(config, **point).describe()
    timings = {"compile_seconds": trained.compile_seconds, "cache_hit": trained.cache_hit,
               "seconds": time.perf_counter() - start}
    return Sweep(names, grid, runs, timings)


def _grid(config: TrainConfig, given: dict[str, Any]) -> tuple[list[dict], tuple[str, ...]]:
    """The checked grid (the product of the given values) and the swept names."""
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a gdlab.TrainConfig, got {type(config).__name__}")
    swept = {k: v for k, v in given.items() if v is not None}
    if not swept:
        raise InputError("give at least one of learning_rate=[...], momentum=[...], "
                         "weight_decay=[...] to sweep")
    allowed = config.hyperparams()
    for name, values in swept.items():
        if name not in allowed:
            opt = config.describe()["optimizer"]
            raise InputError(f"{name} is not a swept hyperparameter of optimizer {opt!r}; "
                             f"valid: {', '.join(allowed) or 'none'} (see gdlab.config.SWEPT: "
                             f"{SWEPT})")
        swept[name] = _values(name, values)
    names = tuple(swept)
    return [dict(zip(names, p, strict=True)) for p in itertools.product(*swept.values())], names


def _values(name: str, values: Any) -> list[float]:
    try:
        items = list(values)
    except TypeError:
        raise InputError(f"{name} must be a non-empty sequence of values, got {values!r}") \
            from None
    if not items:
        raise InputError(f"{name} is empty; give at least one value ({_VALID[name][0]})")
    checked = [_VALID[name][1](v) for v in items]
    if len(set(checked)) != len(checked):
        raise InputError(f"{name} has repeated values {checked}; give each value once")
    return checked


def _lanes(config: TrainConfig, grid: list[dict], seed_ids: np.ndarray) -> Lanes:
    """Grid-major lanes: lane g * S + s is seed s at grid point g."""
    base = config.hyperparams()
    hparams = {k: np.repeat([p.get(k, base[k]) for p in grid], len(seed_ids)).astype(np.float64)
               for k in base}
    if any(not math.isfinite(v) for vals in hparams.values() for v in vals):
        raise InputError("the grid holds a non-finite hyperparameter value")
    return Lanes(np.tile(seed_ids, len(grid)), hparams)
