"""gdlab: a lab for gradient descent.

Train thousands of random seeds of a problem at once (JIT-compiled `jax.grad`, `lax.scan`
over steps, `jax.vmap` over seeds, sharded over devices) and study where they land.

Example:
  >>> import gdlab
  >>> from gdlab import devices as _devices

_devices.default_cpu_devices()  # before anything starts JAX's backends

from gdlab import problems
  >>> cfg = gdlab.TrainConfig(optimizer="sgd", learning_rate=1e-2, steps=2000, eval_every=100)
  >>> runs = gdlab.train(problems.himmelblau(), cfg, seeds=4096, key=0)
"""

from gdlab import devices as _devices

_devices.default_cpu_devices()  # before anything starts JAX's backends

from gdlab import problems
from gdlab.batchsize import BatchSweep, ScalingFit, fit_scaling, sweep_batch_size
from gdlab.checkpoint import Preempted
from gdlab.config import TrainConfig
from gdlab.costs import (
    PartCost,
    StepProfile,
    StepProfiler,
    TimeModel,
    fit_power_law,
    profile_step,
)
from gdlab.devices import initialize_distributed
from gdlab.minima import Atlas, Minimum, find_minima
from gdlab.noise import NoiseScale, NoiseTrace, noise_scale, track_noise_scale
from gdlab.problem import KnownMinimum, Problem
from gdlab.runs import Runs, load_runs
from gdlab.train import train

__version__ = "0.2.0"
__all__ = ["Atlas", "BatchSweep", "KnownMinimum", "Minimum", "NoiseScale", "NoiseTrace",
           "PartCost", "Preempted", "Problem", "Runs", "ScalingFit", "StepProfile",
           "StepProfiler", "TimeModel",
           "TrainConfig", "find_minima", "fit_power_law", "fit_scaling", "initialize_distributed",
           "load_runs",
           "noise_scale", "problems", "profile_step", "sweep_batch_size",
           "track_noise_scale", "train"]
