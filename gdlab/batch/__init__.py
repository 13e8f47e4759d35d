"""The batch-size lab: (seed, learning-rate) lanes, steps to a target against batch size,
the scaling fit S = S_min (1 + B_crit / B), and the gradient noise scale."""

from gdlab.batch.noise import NoiseScale, NoiseTrace, noise_scale, track_noise_scale
from gdlab.batch.scaling import ScalingFit, fit_scaling, median_ci
from gdlab.batch.sizes import BatchSweep, eval_schedule, sweep_batch_size

__all__ = ["BatchSweep", "NoiseScale", "NoiseTrace", "ScalingFit", "eval_schedule",
           "fit_scaling", "median_ci", "noise_scale", "sweep_batch_size", "track_noise_scale"]
