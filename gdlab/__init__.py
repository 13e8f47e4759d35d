"""gdlab: a lab for gradient descent.

Train thousands of random seeds of a problem at once (JIT-compiled `jax.grad`, `lax.scan`
over steps, `jax.vmap` over seeds, sharded over devices) and study where they land.

Example:
  >>> import gdlab
  >>> from gdlab import problems
  >>> cfg = gdlab.TrainConfig(optimizer="sgd", learning_rate=1e-2, steps=200, eval_every=50)
  >>> runs = gdlab.train(problems.himmelblau(), cfg, seeds=64, key=0, progress=False)
  >>> runs.final_loss.shape
  (64,)
"""

from importlib import metadata as _metadata

from gdlab.core import devices as _devices

_devices.default_cpu_devices()  # before anything starts JAX's backends
_devices.default_compilation_cache()  # compiled programs kept on disk across processes

from gdlab import atlas, batch, costs, landscape, problems, symmetry
from gdlab._checks import InputError
from gdlab.atlas.functions import disagreement
from gdlab.atlas.minima import (
    Atlas,
    Endpoints,
    Minimum,
    classify_endpoints,
    find_minima,
    map_minima,
)
from gdlab.atlas.saved import load_atlas
from gdlab.batch.noise import NoiseScale, NoiseTrace, noise_scale, track_noise_scale
from gdlab.batch.scaling import ScalingFit, fit_scaling
from gdlab.batch.sizes import BatchSweep, sweep_batch_size
from gdlab.config import TrainConfig
from gdlab.core.checkpoint import Preempted
from gdlab.core.devices import initialize_distributed
from gdlab.core.runs import Runs, UnsavedRun, load_runs
from gdlab.core.sweep import Sweep, sweep
from gdlab.core.train import train
from gdlab.costs.model import TimeModel, fit_power_law
from gdlab.costs.profile import PartCost, StepProfile, StepProfiler, profile_step
from gdlab.landscape import curvature
from gdlab.problem import KnownMinimum, Problem

try:  # one version source: pyproject.toml, as installed
    __version__ = _metadata.version("gdlab")
except _metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Atlas",
    "BatchSweep",
    "Endpoints",
    "InputError",
    "KnownMinimum",
    "Minimum",
    "NoiseScale",
    "NoiseTrace",
    "PartCost",
    "Preempted",
    "Problem",
    "Runs",
    "ScalingFit",
    "StepProfile",
    "StepProfiler",
    "Sweep",
    "TimeModel",
    "TrainConfig",
    "UnsavedRun",
    "atlas",
    "batch",
    "classify_endpoints",
    "costs",
    "curvature",
    "disagreement",
    "find_minima",
    "fit_power_law",
    "fit_scaling",
    "initialize_distributed",
    "landscape",
    "load_atlas",
    "load_runs",
    "map_minima",
    "noise_scale",
    "problems",
    "profile_step",
    "sweep",
    "sweep_batch_size",
    "symmetry",
    "track_noise_scale",
    "train",
]
