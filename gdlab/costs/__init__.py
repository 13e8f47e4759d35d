"""What training costs: honest timing of compiled calls (`timing`), the step profiler
(`profile`), power-law fits and the time model of a run (`model`)."""

from gdlab.costs import timing
from gdlab.costs.format import format_seconds, format_si
from gdlab.costs.model import (
    PowerLawFit,
    TimeModel,
    eval_overhead,
    fit_power_law,
    host_overhead,
    relative_error,
)
from gdlab.costs.profile import (
    PARTS,
    STEP_PARTS,
    PartCost,
    StepProfile,
    StepProfiler,
    part_functions,
    profile_step,
    xla_cost,
)

__all__ = ["PARTS", "STEP_PARTS", "PartCost", "PowerLawFit", "StepProfile", "StepProfiler",
           "TimeModel", "eval_overhead", "fit_power_law", "format_seconds", "format_si",
           "host_overhead", "part_functions", "profile_step", "relative_error", "timing",
           "xla_cost"]
