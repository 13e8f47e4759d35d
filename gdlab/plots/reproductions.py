"""Figures of the reproductions study (`experiments/reproductions.py`): arrays in, Figure out.

Figure API only (no pyplot state, no backend switch); one-panel figures accept `ax=`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gdlab.plots._base import panel, subplots


def _yerr(value: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.stack([np.maximum(value - low, 0), np.maximum(high - value, 0)])


def spurious_fractions(k_K: np.ndarray, curves: Mapping[str, tuple], title: str = "",
                       ax=None):
    """Fraction of seeds ending in a spurious minimum against k, one line per student size.

    `curves` maps a label ("n = k", "n = k + 1", ...) to (k (K,), fraction (K,), low (K,),
    high (K,)) with 95% Wilson intervals.
    """
    fig, ax = panel(ax, figsize=(6.8, 4.4))
    for label, (k, frac, low, high) in curves.items():
        k, frac = np.asarray(k), np.asarray(frac, float)
        ax.errorbar(k, frac, yerr=_yerr(frac, np.asarray(low), np.asarray(high)), fmt="o-",
                    capsize=3, ms=4, label=label)
    ax.set(xlabel="teacher units k (input dimension d = k)",
           ylabel="fraction of seeds in a spurious minimum (95% CI)", ylim=(-0.02, 1.02),
           title=title or "spurious local minima of two-layer ReLU nets")
    ax.set_xticks(np.asarray(k_K))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def final_loss_split(losses: Mapping[str, np.ndarray], global_tol: float, spurious_loss: float,
                     title: str = "", ax=None):
    """Histogram of final losses (float64, log axis) per setting, with the class thresholds."""
    fig, ax = panel(ax, figsize=(6.8, 4.4))
    every = np.concatenate([np.asarray(v, float) for v in losses.values()])
    floor = max(np.min(every[every > 0], initial=1e-16), 1e-18)
    bins = np.geomspace(floor, max(np.max(every), 10 * floor), 60)
    for label, loss in losses.items():
        ax.hist(np.maximum(np.asarray(loss, float), floor), bins=bins, histtype="step", lw=1.5,
                label=label)
    ax.axvline(global_tol, color="tab:green", ls="--", lw=1, label=f"global below {global_tol:g}")
    ax.axvline(spurious_loss, color="tab:red", ls="--", lw=1,
               label=f"spurious above {spurious_loss:g}")
    ax.set(xscale="log", yscale="log", xlabel="final population loss (float64)",
           ylabel="seeds", title=title or "where the seeds end")
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    return fig


def noise_vs_loss(traces: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "",
                  ax=None):
    """B_simple against the training loss, one line per seed (colour per dataset); the
    loss axis reversed so training runs left to right. `traces` maps a label to
    (loss (C, S), b_simple (C, S))."""
    fig, ax = panel(ax, figsize=(6.8, 4.4))
    for i, (label, (loss_CS, b_CS)) in enumerate(traces.items()):
        colour = f"C{i}"
        b_CS = np.where(np.isfinite(b_CS), b_CS, np.nan)
        for s in range(loss_CS.shape[1]):
            ax.plot(loss_CS[:, s], b_CS[:, s], "-", color=colour, alpha=0.35, lw=1,
                    label=label if s == 0 else None)
        ax.plot(np.median(loss_CS, axis=1), np.nanmedian(b_CS, axis=1), "o-", color=colour,
                ms=3, lw=2)
    ax.set(xscale="log", yscale="log", xlabel="training loss (axis reversed: training ->)",
           ylabel="gradient noise scale B_simple = tr(Σ)/|G|²",
           title=title or "the noise scale grows as the loss falls")
    ax.invert_xaxis()
    ax.legend(fontsize=8)
    return fig


def bcrit_vs_bsimple(targets_T: np.ndarray, b_crit_T3: np.ndarray, b_simple_T3: np.ndarray,
                     band: float = 10.0, title: str = "", ax=None):
    """B_crit (fit, 95% CI) and B_simple (median, range over seeds) at each target loss,
    with the band within a factor `band` of B_simple shaded."""
    fig, ax = panel(ax, figsize=(6.4, 4.2))
    t = np.asarray(targets_T, float)
    bc, bs = np.asarray(b_crit_T3, float), np.asarray(b_simple_T3, float)
    ax.fill_between(t, bs[:, 0] / band, bs[:, 0] * band, color="tab:purple", alpha=0.1,
                    label=f"within {band:g}x of B_simple")
    ax.errorbar(t, bc[:, 0], yerr=_yerr(bc[:, 0], bc[:, 1], bc[:, 2]), fmt="o-", capsize=3,
                label="B_crit (fit of steps to target, 95% CI)")
    ax.errorbar(t * 1.03, bs[:, 0], yerr=_yerr(bs[:, 0], bs[:, 1], bs[:, 2]), fmt="s--",
                capsize=3, label="B_simple at the target (median, seed range)")
    ax.set(xscale="log", yscale="log", xlabel="target training loss (axis reversed)",
           ylabel="batch size", title=title or "critical batch size against the noise scale")
    ax.invert_xaxis()
    ax.legend(fontsize=7)
    return fig


def best_rate_vs_batch(b_K: np.ndarray, lr_K: np.ndarray, grid_lo_K: np.ndarray,
                       grid_hi_K: np.ndarray, first_regime_end: float | None = None,
                       title: str = "", ax=None):
    """The best learning rate of the grid per batch size, the grid's span shaded, a
    slope-1 line (linear scaling) through the smallest batch size, the first regime's end."""
    fig, ax = panel(ax, figsize=(6.4, 4.2))
    b, lr = np.asarray(b_K, float), np.asarray(lr_K, float)
    ax.fill_between(b, grid_lo_K, grid_hi_K, color="grey", alpha=0.15, label="rate grid")
    edge = (lr <= np.asarray(grid_lo_K) * (1 + 1e-9)) | (lr >= np.asarray(grid_hi_K) * (1 - 1e-9))
    ax.plot(b, lr, "o-", label="best rate (fewest median steps)")
    if edge.any():
        ax.plot(b[edge], lr[edge], "x", color="tab:red", ms=10, mew=2,
                label="best rate at the grid's edge")
    ax.plot(b, lr[0] * b / b[0], ":", color="black", label="linear scaling (slope 1)")
    if first_regime_end is not None and np.isfinite(first_regime_end):
        ax.axvline(first_regime_end, color="tab:green", ls="--", lw=1,
                   label=f"end of perfect scaling B_crit/4 = {first_regime_end:.3g}")
    ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="learning rate",
           title=title or "best learning rate against batch size",
           ylim=(np.min(grid_lo_K) / 2, np.max(grid_hi_K) * 2))
    ax.legend(fontsize=7)
    return fig


def two_groups(values: Mapping[str, Mapping[str, np.ndarray]], title: str = ""):
    """One panel per quantity: the seeds of each group as points, their median as a line
    (not a bar: a bar's height means nothing on the log axes used for wide ranges).

    `values` maps a quantity ("top Hessian eigenvalue", ...) to {group: (S,) values}.
    """
    fig, axes = subplots(1, len(values), figsize=(3.6 * len(values), 4.0))
    axes = np.atleast_1d(axes)
    for ax, (quantity, groups) in zip(axes, values.items(), strict=True):
        for g, v in enumerate(groups.values()):
            v = np.asarray(v, float)
            ax.hlines(np.median(v), g - 0.3, g + 0.3, color=f"C{g}", lw=2,
                      label="median" if g == 0 else None)
            jitter = np.linspace(-0.15, 0.15, len(v)) if len(v) > 1 else np.zeros(1)
            ax.plot(g + jitter, v, "o", color=f"C{g}", ms=4)
        ax.set_xticks(range(len(groups)), list(groups))
        ax.set(title=quantity, xlim=(-0.6, len(groups) - 0.4))
        every = np.concatenate([np.asarray(v, float) for v in groups.values()])
        if np.all(every > 0) and every.max() > 3 * every.min():
            ax.set_yscale("log")
        else:  # zoom on the seeds
            pad = 0.15 * max(np.ptp(every), 1e-3 * abs(every.max()), 1e-12)
            ax.set_ylim(every.min() - pad, every.max() + pad)
    fig.suptitle(title)
    return fig


def barriers_vs_width(widths_W: np.ndarray, series: Mapping[str, np.ndarray], title: str = "",
                      ax=None):
    """Loss barrier against hidden width: per series the median over pairs with the
    min-max range; `series` maps a label to (W, pairs) barriers."""
    fig, ax = panel(ax, figsize=(6.4, 4.2))
    w = np.asarray(widths_W, float)
    for label, b_WP in series.items():
        b_WP = np.asarray(b_WP, float)
        med = np.median(b_WP, axis=1)
        ax.errorbar(w, med, yerr=_yerr(med, b_WP.min(axis=1), b_WP.max(axis=1)), fmt="o-",
                    capsize=3, label=label)
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xscale="log", xlabel="hidden width", ylabel="loss barrier (median, min-max of pairs)",
           title=title or "linear mode connectivity against width")
    ax.minorticks_off()
    ax.set_xticks(w, [str(int(x)) for x in w])
    ax.legend(fontsize=8)
    return fig


def paths(alphas_T: np.ndarray, curves: Mapping[str, np.ndarray], ylabel: str,
          threshold: float | None = None, threshold_label: str = "", title: str = "",
          ax=None):
    """A metric along straight paths: per label the median over pairs with the 10-90% band;
    `curves` maps a label to (pairs, T) values; an optional horizontal threshold line."""
    fig, ax = panel(ax, figsize=(6.4, 4.2))
    for label, v_PT in curves.items():
        v_PT = np.asarray(v_PT, float)
        lo, med, hi = np.quantile(v_PT, [0.1, 0.5, 0.9], axis=0)
        ax.fill_between(alphas_T, lo, hi, alpha=0.2)
        ax.plot(alphas_T, med, lw=2, label=f"{label} ({v_PT.shape[0]} pairs)")
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", ls=":", lw=1,
                   label=threshold_label or f"{threshold:.3g}")
    ax.set(xlabel="α on the path (1 - α) a + α b", ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    return fig


def verdict_bars(claims: Sequence[str], verdicts: Sequence[str], title: str = "", ax=None):
    """One coloured cell per claim: agrees (green), disagrees (red), inconclusive (amber),
    not run (grey)."""
    colours = {"agrees": "tab:green", "disagrees": "tab:red", "inconclusive": "goldenrod"}
    fig, ax = panel(ax, figsize=(7.2, 0.45 * len(claims) + 1.0))
    for i, (claim, verdict) in enumerate(zip(claims, verdicts, strict=True)):
        ax.barh(i, 1, color=colours.get(verdict, "lightgrey"))
        ax.text(0.02, i, f"{claim}: {verdict}", va="center", fontsize=8)
    ax.set(xlim=(0, 1), ylim=(-0.6, len(claims) - 0.4), yticks=[], xticks=[],
           title=title or "verdicts")
    ax.invert_yaxis()
    return fig
