"""What training costs: honest timing of compiled calls (`timing`), the step profiler
(`profile`, time and memory per part), power-law fits and the time model of a run
(`model`, for the devices and seeds per device the run uses)."""

from gdlab.core.memory import MemoryCost, xla_memory
from gdlab.costs import timing
from gdlab.costs.format import format_seconds, format_si
from gdlab.costs.model import (
    PowerLawFit,
    RunLayout,
    TimeModel,
    eval_overhead,
    fit_power_law,
    host_overhead,
    relative_error,
    run_layout,
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

__all__ = ["PARTS", "STEP_PARTS", "MemoryCost", "PartCost", "PowerLawFit", "RunLayout",
           "StepProfile", "StepProfiler", "TimeModel", "eval_overhead", "fit_power_law",
           "format_seconds", "format_si", "host_overhead", "part_functions", "profile_step",
           "relative_error", "run_layout", "timing", "xla_cost", "xla_memory"]
