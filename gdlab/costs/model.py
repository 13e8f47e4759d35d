"""Power-law fits of measured costs and the time model of a training run.

`fit_power_law` fits t ~ c N^a P^b with confidence intervals; `TimeModel` predicts a
run's wall seconds from a profile (steps x step + evaluations x loss + calls x host cost)
for the devices the run trains on (`run_layout`: devices, seeds per device, seed block);
`host_overhead` and `eval_overhead` measure the host loop's costs on real runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from gdlab._checks import InputError, check_int
from gdlab.config import TrainConfig
from gdlab.core import engine
from gdlab.core.train import Lanes, make_plan
from gdlab.costs.profile import PARTS, STEP_PARTS, StepProfile
from gdlab.problem import Problem


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """`y = prefactor * x_1**a_1 * ... * x_k**a_k`, fitted by least squares in log space.

    Attributes:
      names: name of each variable (e.g. ("N", "P")).
      exponents: fitted a_i.
      ci: (k, 2) confidence interval of each exponent (Student t, `level`).
      prefactor: fitted constant.
      level: confidence level of `ci`.
      r2: coefficient of determination in log space.
      num_points: number of points fitted.
    """

    names: tuple[str, ...]
    exponents: np.ndarray
    ci: np.ndarray
    prefactor: float
    level: float
    r2: float
    num_points: int

    def predict(self, *x: np.ndarray) -> np.ndarray:
        """The fitted law at the given values of each variable."""
        return self.prefactor * np.prod([np.asarray(v, np.float64) ** a
                                         for v, a in zip(x, self.exponents, strict=True)],
                                        axis=0)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {"names": list(self.names), "exponents": self.exponents.tolist(),
                "ci": self.ci.tolist(), "prefactor": self.prefactor, "level": self.level,
                "r2": self.r2, "num_points": self.num_points}


def fit_power_law(y_M: np.ndarray, *x_M: np.ndarray, names: Sequence[str] | None = None,
                  level: float = 0.95) -> PowerLawFit:
    """Fit `y ~ c * prod_i x_i**a_i` on M points: least squares of log y on log x.

    Args:
      y_M: positive measurements (e.g. seconds).
      *x_M: one positive array per variable (e.g. data points N, parameters P).
      names: a name per variable (default x1, x2, ...).
      level: confidence level of the exponents' intervals.

    Returns:
      A `PowerLawFit` with exponents and their confidence intervals.

    Example:
      >>> fit = fit_power_law(seconds_M, n_M, p_M, names=("N", "P"))
      >>> fit.exponents, fit.ci
    """
    names = tuple(names or (f"x{i + 1}" for i in range(len(x_M))))
    if not x_M or len(names) != len(x_M):
        raise InputError(f"give at least one variable and one name per variable; got "
                         f"{len(x_M)} variables and names {names!r}")
    if not 0 < level < 1:
        raise InputError(f"level must lie in (0, 1), got {level!r}")
    cols = [np.asarray(v, np.float64).ravel() for v in (y_M, *x_M)]
    m, k = cols[0].size, len(x_M)
    for name, c in zip(("y", *names), cols, strict=True):
        if c.size != m:
            raise InputError(f"{name} has {c.size} values but y has {m}")
        if not np.all(np.isfinite(c) & (c > 0)):
            raise InputError(f"{name} must be finite and > 0 for a power-law fit; got "
                             f"{c[~(np.isfinite(c) & (c > 0))][:3].tolist()}")
    if m <= k + 1:
        raise InputError(f"need more than {k + 1} points to fit {k} exponents with "
                         f"confidence intervals, got {m}")
    design_MK = np.column_stack([np.ones(m)] + [np.log(c) for c in cols[1:]])
    if np.linalg.matrix_rank(design_MK) < k + 1:
        constant = [n for n, c in zip(names, cols[1:], strict=True) if np.ptp(c) == 0]
        raise InputError(f"cannot separate the exponents: variables {constant or list(names)} "
                         "do not vary independently over the points")
    log_y = np.log(cols[0])
    beta, *_ = np.linalg.lstsq(design_MK, log_y, rcond=None)
    resid = log_y - design_MK @ beta
    dof = m - k - 1
    cov = resid @ resid / dof * np.linalg.inv(design_MK.T @ design_MK)
    import scipy.stats  # here: importing it takes about a second
    half = scipy.stats.t.ppf(0.5 + level / 2, dof) * np.sqrt(np.diag(cov))
    total = np.sum((log_y - log_y.mean()) ** 2)
    r2 = 1.0 - resid @ resid / total if total > 0 else 1.0
    return PowerLawFit(names, beta[1:], np.column_stack([beta[1:] - half[1:],
                                                         beta[1:] + half[1:]]),
                       float(np.exp(beta[0])), level, float(r2), m)


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """How `gdlab.train` lays out a run's seeds (see `run_layout`).

    Attributes:
      seeds: S, the seeds the run trains.
      devices: devices the seed axis is sharded over; they run at the same time.
      seeds_per_device: seeds each device trains per call (padding included).
      seed_block: seeds vmapped together on a device (a device runs its seeds block by
        block, one after another).
      groups: consecutive calls of the compiled program (seed groups, `seeds_per_call`).
    """

    seeds: int
    devices: int
    seeds_per_device: int
    seed_block: int
    groups: int = 1


def run_layout(problem: Problem, config: TrainConfig, seeds: int, **train_options: Any
               ) -> RunLayout:
    """The layout `gdlab.train(problem, config, seeds, **train_options)` would use, decided
    by the same rules (`gdlab.core.train.make_plan`); nothing compiles.

    Profile the step on `layout.seed_block` seeds (what a device vmaps together), on
    `layout.devices` devices at once, and pass the layout to `TimeModel.for_run`: a
    device's seconds per step are the block's times its number of blocks, slowed by the
    measured concurrency of the devices.

    Example:
      >>> layout = run_layout(problem, cfg, seeds=256)     # e.g. 2 devices x 128 seeds
      >>> prof = gdlab.profile_step(problem, cfg, seeds=layout.seed_block,
      ...                           devices=layout.devices)
      >>> TimeModel.for_run(prof, layout).predict_config(cfg)
    """
    check_int("seeds", seeds, minimum=1)
    ids = np.arange(seeds)
    lanes = Lanes(ids, {k: np.full(seeds, v, np.float64)
                        for k, v in config.hyperparams().items()})
    plan = make_plan(problem, config, lanes, 0, **train_options)
    return RunLayout(seeds, plan.mesh.size, plan.padded // plan.mesh.size, plan.seed_block,
                     -(-seeds // plan.padded))


@dataclasses.dataclass(frozen=True)
class TimeModel:
    """Wall time of a training run from the cost of its parts:

        seconds = groups * (steps * step_seconds
                            + evaluations * (eval_seconds + eval_overhead_seconds)
                            + calls * call_seconds) + fixed_seconds

    for a run whose seeds are spread over `devices` devices running side by side, each
    training `seeds_per_device` seeds (the step and evaluation seconds are those of one
    device's share, slowed by the devices' measured concurrency), in `groups`
    consecutive calls.

    Attributes:
      step_seconds: one training step of one device's seeds inside the compiled loop.
      eval_seconds: one loss measurement of one device's seeds, as a dispatched call.
      call_seconds: fixed cost of each compiled chunk the host calls (dispatch, launch,
        the host loop's own work).
      fixed_seconds: once per run.
      eval_overhead_seconds: fixed cost of each measurement beyond the loss call itself
        (the losses' copy to the host, the records, the next chunk's start on caches the
        measurement evicted).
      devices: devices the run trains on (for reports; they run concurrently).
      seeds_per_device: seeds each device trains (None: as profiled).
      groups: consecutive seed groups of the run (`RunLayout.groups`).

    Example:
      >>> model = TimeModel.from_profile(prof, call_seconds=host_overhead(runs, ...))
      >>> model.predict(steps=2000, evaluations=21, calls=20)
    """

    step_seconds: float
    eval_seconds: float
    call_seconds: float = 0.0
    fixed_seconds: float = 0.0
    eval_overhead_seconds: float = 0.0
    devices: int = 1
    seeds_per_device: int | None = None
    groups: int = 1

    @classmethod
    def from_profile(cls, profile: StepProfile, step: str = "parts",
                     call_seconds: float | None = None,
                     eval_overhead_seconds: float = 0.0, *, devices: int = 1,
                     seeds_per_device: int | None = None, groups: int = 1) -> TimeModel:
        """The model of a profile, for a run on `devices` devices of `seeds_per_device`
        seeds each.

        Args:
          profile: a `StepProfile` with the derivative, update, loss and step (and
            sample, for mini-batches), of `profile.seeds` seeds on one device.
          step: "parts" (derivative + update + sample) or "fused" (the fused step).
          call_seconds: cost per chunk call; default: the fused step's compiled loop
            called for zero steps (its dispatch floor), which leaves out the host loop's
            own work (see `host_overhead` to measure that on a real run).
          eval_overhead_seconds: cost per measurement beyond the loss call (see
            `eval_overhead` to measure it on a real run).
          devices: devices the run trains on, side by side (`gdlab.train` shards the
            seeds over every device: on CPU, one per core).
          seeds_per_device: seeds each device trains (default: `profile.seeds`, i.e. the
            profile timed one device's whole share); the step and loss seconds scale
            by `seeds_per_device / profile.seeds` (a device runs its seed blocks one
            after another, so profile one block: `run_layout(...).seed_block`).
          groups: consecutive seed groups (each runs every step).

        When the profile measured its `concurrency` on `devices` devices (`profile_step(...,
        devices=...)`), the step and loss seconds are divided by it: each device runs that
        much slower when all of them work at once (on a shared machine, other processes
        hold cores the devices would use).

        Returns:
          A `TimeModel`; one evaluation costs one dispatched call of the loss made right
          after a step (`profile.eval_seconds`; else the loss's `call_seconds`).
        """
        if step not in ("parts", "fused"):
            raise InputError(f"step must be 'parts' or 'fused', got {step!r}")
        missing = [n for n in ("derivative", "update", "loss", "step")
                   if n not in profile.parts]
        if missing:
            raise InputError(f"the profile lacks parts {missing}; profile all of {PARTS}")
        check_int("devices", devices, minimum=1)
        check_int("groups", groups, minimum=1)
        per_device = profile.seeds if seeds_per_device is None else check_int(
            "seeds_per_device", seeds_per_device, minimum=1)
        scale = per_device / profile.seeds
        if profile.concurrency is not None and profile.devices == devices > 1:
            scale /= profile.concurrency
        per_step = (sum(profile.seconds(n) for n in STEP_PARTS if n in profile.parts)
                    if step == "parts" else profile.seconds("step"))
        if call_seconds is None:
            call_seconds = profile.parts["step"].timing.floor
        evaluation = (profile.parts["loss"].call_seconds if profile.eval_seconds is None
                      else profile.eval_seconds)
        return cls(per_step * scale, evaluation * scale, call_seconds,
                   eval_overhead_seconds=eval_overhead_seconds, devices=devices,
                   seeds_per_device=per_device, groups=groups)

    @classmethod
    def for_run(cls, profile: StepProfile, layout: RunLayout, **kwargs: Any) -> TimeModel:
        """`from_profile` for the devices, seeds per device and groups of `layout`
        (`run_layout`); other arguments as `from_profile`'s."""
        return cls.from_profile(profile, devices=layout.devices,
                                seeds_per_device=layout.seeds_per_device,
                                groups=layout.groups, **kwargs)

    def breakdown(self, steps: int, evaluations: int, calls: int) -> dict[str, float]:
        """Predicted seconds of training, measuring the loss, and overhead (every group)."""
        for name, value in (("steps", steps), ("evaluations", evaluations),
                            ("calls", calls)):
            check_int(name, value, minimum=0)
        g = self.groups
        return {"training": g * steps * self.step_seconds,
                "measuring": g * evaluations * self.eval_seconds,
                "overhead": g * (calls * self.call_seconds
                                 + evaluations * self.eval_overhead_seconds)
                + self.fixed_seconds}

    def predict(self, steps: int, evaluations: int, calls: int) -> float:
        """Predicted wall seconds of a run (compile time excluded)."""
        return sum(self.breakdown(steps, evaluations, calls).values())

    def predict_config(self, config: TrainConfig) -> float:
        """Predicted wall seconds of `gdlab.train` with `config` (eval_every schedules):
        one chunk call per evaluation interval, evaluations at step 0 and after each."""
        if config.eval_by_time:
            raise InputError("predict_config needs an eval_every=K schedule; for "
                             "eval_every_seconds use predict() with the evaluation count")
        chunks = len(engine.chunk_lengths(config))
        return self.predict(config.steps, chunks + 1, chunks)


def host_overhead(train_seconds: float, steps: int, chunks: int,
                  step_seconds: float) -> float:
    """Seconds per chunk call that a run spent beyond its steps' work.

    `gdlab.train`'s host loop pays, per chunk, the dispatch of the compiled chunk plus its
    own work (placing the step counter, the progress bar, the schedule checks), which no
    profile of the compiled parts sees. Measure it on a real run with many short chunks
    (`runs.timings['train_seconds']` excludes the loss measurements).

    Args:
      train_seconds: the run's training seconds (loss measurements excluded).
      steps: its steps.
      chunks: its chunk calls.
      step_seconds: profiled seconds of one step.

    Returns:
      (train_seconds - steps * step_seconds) / chunks, at least 0.
    """
    check_int("chunks", chunks, minimum=1)
    return max(0.0, (train_seconds - steps * step_seconds) / chunks)


def eval_overhead(train_seconds_measuring: float, train_seconds_quiet: float,
                  measurements: int) -> float:
    """Seconds per measurement that the training loop loses to measuring the loss.

    A chunk that starts right after a measurement runs slower than one that follows
    another chunk (the measurement evicted the step's data from the caches and let the
    thread pool go idle), and the loop copies the losses to the host; a profile of the
    loss call alone sees none of it. Measure it as the difference between the training
    seconds (`runs.timings['train_seconds']`, measurements excluded) of two runs with the
    same chunks, one measuring the loss after every chunk and one never.

    Args:
      train_seconds_measuring: training seconds of the run that measures after every chunk.
      train_seconds_quiet: training seconds of the same chunks, never measuring.
      measurements: chunks that followed a measurement (the chunk count).

    Returns:
      (train_seconds_measuring - train_seconds_quiet) / measurements, at least 0.
    """
    check_int("measurements", measurements, minimum=1)
    return max(0.0, (train_seconds_measuring - train_seconds_quiet) / measurements)


def relative_error(predicted: float, measured: float) -> float:
    """(predicted - measured) / measured."""
    return (predicted - measured) / measured


