"""Human-readable numbers for cost tables: SI prefixes and timings."""

from __future__ import annotations

import math

from gdlab.costs.timing import Timing


def format_si(value: float | None, unit: str) -> str:
    """`value` with an SI prefix (1.2 ms, 3.4 GFLOP/s); "-" for None."""
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return f"0 {unit}".strip()
    prefixes = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"),
                (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")]
    scale, prefix = next(((s, p) for s, p in prefixes if abs(value) >= s), prefixes[-1])
    return f"{value / scale:.3g} {prefix}{unit}".strip()


def format_seconds(t: Timing) -> str:
    """A Timing's median, or "< bound (below floor)"."""
    if t.below_floor:
        return f"< {format_si(t.median, 's')} (below floor)"
    return format_si(t.median, "s")
