"""The suite's speed targets, kept as data (`benchmarks/targets.toml`), and their check.

A target names one measured number (workload, side, metric: a dotted path into that
side's results) and a comparison with a threshold; `evaluate` marks each met (True),
not met (False) or not measured (None).
"""

from __future__ import annotations

import operator
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TARGETS_FILE = Path(__file__).with_name("targets.toml")
COMPARISONS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
UNITS = ("x", "fraction", "extra", "ran")
FIELDS = ("id", "text", "workload", "side", "metric", "comparison", "threshold", "unit")


def load(path: str | Path = TARGETS_FILE) -> list[dict[str, Any]]:
    """The targets of a TOML file (`[[target]]` tables), checked; raises ValueError naming
    the first bad entry."""
    with open(path, "rb") as f:
        rows = tomllib.load(f).get("target", [])
    for i, t in enumerate(rows):
        missing = [k for k in FIELDS if k not in t]
        if missing:
            raise ValueError(f"{path}: target {i} ({t.get('id', '?')}) lacks {missing}")
        if t["comparison"] not in COMPARISONS:
            raise ValueError(f"{path}: target {t['id']!r} has comparison {t['comparison']!r}; "
                             f"valid: {', '.join(COMPARISONS)}")
        if t["unit"] not in UNITS:
            raise ValueError(f"{path}: target {t['id']!r} has unit {t['unit']!r}; valid: "
                             f"{', '.join(UNITS)}")
    ids = [t["id"] for t in rows]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"{path}: repeated target ids {repeated}")
    return rows


def lookup(workloads: Mapping, workload: str, side: str, metric: str) -> float | None:
    """`workloads[workload]["sides"][side]` followed along the dotted `metric`; None when
    any step is missing (not measured)."""
    node: Any = workloads.get(workload, {}).get("sides", {}).get(side)
    for key in metric.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return None if node is None else float(node)


def evaluate(targets: Sequence[Mapping], workloads: Mapping) -> list[dict[str, Any]]:
    """Every target with its measured `value` and `met` (None: not measured).

    Example:
      >>> t = {"id": "a", "workload": "W2", "side": "gdlab", "metric": "fraction_of_peak",
      ...      "comparison": ">=", "threshold": 0.5, "unit": "fraction", "text": "..."}
      >>> evaluate([t], {"W2": {"sides": {"gdlab": {"fraction_of_peak": 0.4}}}})[0]["met"]
      False
    """
    out = []
    for t in targets:
        value = lookup(workloads, t["workload"], t["side"], t["metric"])
        met = None if value is None else bool(COMPARISONS[t["comparison"]](value,
                                                                           t["threshold"]))
        out.append({**t, "value": value, "met": met})
    return out


def format_value(t: Mapping) -> str:
    """A target's measured value in its unit ("not measured" when absent)."""
    v = t["value"]
    if v is None:
        return "not measured"
    return {"x": lambda: f"{v:.3g}x" if abs(v) < 1000 else f"{v:,.0f}x",
            "fraction": lambda: f"{100 * v:.1f}%", "extra": lambda: f"{100 * v:+.1f}%",
            "ran": lambda: "ran" if v >= 1 else "failed"}[t["unit"]]()


def format_threshold(t: Mapping) -> str:
    """The target's comparison and threshold in its unit, e.g. ">= 50%"."""
    shown = format_value({**t, "value": t["threshold"]})
    return f"{t['comparison']} {shown}" if t["unit"] != "ran" else "finishes"
