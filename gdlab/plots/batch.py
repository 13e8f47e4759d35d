"""Figures of the batch-size lab: functions take arrays (or results), return a Figure."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib
import numpy as np

from gdlab.batch.scaling import ScalingFit
from gdlab.batch.sizes import BatchSweep
from gdlab.plots._base import panel, subplots

REGIME_COLOURS = ("tab:green", "tab:orange", "tab:red")
REGIME_NAMES = ("perfect scaling", "diminishing returns", "maximal data parallelism")


def _errorbars(ax, b_K: np.ndarray, m_K3: np.ndarray, label: str, **kw) -> None:
    """Median with its interval; never-reached points (inf) are left out."""
    ok = np.isfinite(m_K3[:, 0])
    hi = np.where(np.isfinite(m_K3[:, 2]), m_K3[:, 2], m_K3[:, 0])
    err = np.stack([m_K3[:, 0] - m_K3[:, 1], hi - m_K3[:, 0]])[:, ok]
    ax.errorbar(b_K[ok], m_K3[ok, 0], yerr=err, fmt="o-", capsize=3, ms=4, label=label, **kw)


def _shade_regimes(ax, fit: ScalingFit, b_range: tuple[float, float]) -> None:
    lo, hi = fit.regimes
    edges = [b_range[0], lo, hi, b_range[1]]
    for k in range(3):
        left, right = max(edges[k], b_range[0]), min(edges[k + 1], b_range[1])
        if right > left:
            ax.axvspan(left, right, color=REGIME_COLOURS[k], alpha=0.08, lw=0,
                       label=REGIME_NAMES[k])
    ax.axvline(fit.b_crit, color="black", ls="--", lw=1,
               label=f"B_crit = {fit.b_crit:.3g} [{fit.b_crit_ci[0]:.3g}, "
                     f"{fit.b_crit_ci[1]:.3g}]")


def _grid(b_K: np.ndarray) -> np.ndarray:
    return np.geomspace(b_K.min() / 1.5, b_K.max() * 1.5, 200)


def steps_to_target(sweeps: Mapping[str, BatchSweep], fit: ScalingFit | None = None,
                    noise_scale: float | None = None, title: str = ""):
    """Median steps to target vs batch size (log-log), with the fit, B_crit and regimes."""
    fig, ax = _to_target(sweeps, "steps", fit, title)
    if noise_scale is not None and np.isfinite(noise_scale):
        ax.axvline(noise_scale, color="tab:purple", ls=":", lw=1.5,
                   label=f"B_simple at target = {noise_scale:.3g}")
        ax.legend(fontsize=7, loc="best")
    return fig


def examples_to_target(sweeps: Mapping[str, BatchSweep], fit: ScalingFit | None = None,
                       title: str = ""):
    """Median examples (steps x B) to target vs batch size, with E_min (1 + B / B_crit)."""
    return _to_target(sweeps, "examples", fit, title)[0]


_FIT_LINES = {"steps": ("steps_at", "r2_steps", "fit S_min (1 + B_crit/B)"),
              "examples": ("examples_at", "r2_examples", "fit E_min (1 + B/B_crit)")}


def _to_target(sweeps, what: str, fit: ScalingFit | None, title: str, ax=None):
    """Log-log medians of `what` ("steps" or "examples") per sweep; with a fit, its curve
    and the three regimes shaded."""
    fig, ax = panel(ax, figsize=(7.0, 4.8))
    if fit is not None:
        curve, r2, label = _FIT_LINES[what]
        b = _grid(np.concatenate([s.batch_sizes for s in sweeps.values()]))
        _shade_regimes(ax, fit, (b[0], b[-1]))
        ax.plot(b, getattr(fit, curve)(b), color="black", lw=1.5,
                label=f"{label}, R² = {getattr(fit, r2):.3f}")
    for label, sweep in sweeps.items():
        _errorbars(ax, sweep.batch_sizes, sweep.median(what), label)
    ax.set(xscale="log", yscale="log", xlabel="batch size B",
           ylabel=f"{what} to target (median, 95% CI)", title=title)
    ax.legend(fontsize=7, loc="best")
    return fig, ax


def wall_time_to_target(sweeps: Mapping[str, BatchSweep], title: str = ""):
    """Median wall time to target of one run vs batch size (steps x seconds per step)."""
    fig, (ax, ax2) = subplots(1, 2, figsize=(10.0, 4.2))
    for label, sweep in sweeps.items():
        if not np.all(np.isnan(sweep.seconds_per_step)):
            _errorbars(ax, sweep.batch_sizes, sweep.median("wall_seconds"), label)
            ax2.plot(sweep.batch_sizes, sweep.seconds_per_step * 1e6, "o-", ms=4, label=label)
    ax.set(xscale="log", yscale="log", xlabel="batch size B",
           ylabel="wall seconds to target (median, 95% CI)", title=title)
    ax2.set(xscale="log", yscale="log", xlabel="batch size B",
            ylabel="µs per training step (one run)", title="measured step time")
    ax.legend(fontsize=7)
    return fig


def noise_over_training(steps_C: np.ndarray, b_simple_CS: np.ndarray, loss_CS: np.ndarray,
                        target_loss: float, b_crit: float | None = None,
                        b_at_target: float | None = None, title: str = ""):
    """B_simple along training (one line per seed) above the loss, the target marked."""
    fig, (top, bottom) = subplots(2, 1, figsize=(7.0, 6.0), sharex=True)
    x = np.maximum(steps_C, 0.5)  # step 0 drawn at 0.5 on the log axis
    top.plot(x, np.where(np.isfinite(b_simple_CS), b_simple_CS, np.nan), lw=1, alpha=0.6)
    top.plot(x, np.nanmedian(np.where(np.isfinite(b_simple_CS), b_simple_CS, np.nan), axis=1),
             color="black", lw=2, label="median B_simple = tr(Σ)/|G|²")
    if b_crit is not None and np.isfinite(b_crit):
        top.axhline(b_crit, color="black", ls="--", lw=1, label=f"fitted B_crit = {b_crit:.3g}")
    if b_at_target is not None and np.isfinite(b_at_target):
        top.axhline(b_at_target, color="tab:purple", ls=":", lw=1.5,
                    label=f"B_simple where the loss reaches the target = {b_at_target:.3g}")
    top.set(yscale="log", ylabel="noise scale B_simple", title=title)
    top.legend(fontsize=7)
    bottom.plot(x, loss_CS, lw=1, alpha=0.6)
    bottom.axhline(target_loss, color="tab:red", ls=":", label=f"target {target_loss:g}")
    bottom.set(xscale="log", yscale="log", xlabel="step (0 drawn at 0.5)",
               ylabel="full-data loss")
    bottom.legend(fontsize=7)
    return fig


def learning_rate_choice(sweep: BatchSweep, title: str = "", ax=None):
    """Median steps to target per rate of the grid (one line per batch size), best marked."""
    fig, ax = panel(ax, figsize=(7.0, 4.4))
    colours = matplotlib.colormaps["viridis"](np.linspace(0, 1, len(sweep.batch_sizes)))
    for k, b in enumerate(sweep.batch_sizes):
        m = sweep.grid_median_steps[k]
        ok = np.isfinite(m)
        ax.plot(sweep.rate_grid[k][ok], m[ok], "o-", ms=3, color=colours[k], label=f"B={b}")
        ax.plot(sweep.learning_rates[k], np.nanmin(np.where(ok, m, np.nan)) if ok.any()
                else np.nan, "*", ms=10, color=colours[k])
    ax.set(xscale="log", yscale="log", xlabel="learning rate",
           ylabel="median steps to target (★ chosen)",
           title=(title or "learning rate per batch size")
           + "\n(rates still running when the best one finished are left out)")
    ax.legend(fontsize=6, ncol=2)
    return fig
