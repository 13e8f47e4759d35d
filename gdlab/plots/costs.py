"""Figures of step costs and loss-evaluation schedules (take arrays, return a Figure)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import matplotlib.ticker as mticker
import numpy as np

from gdlab.costs.model import PowerLawFit
from gdlab.plots._base import panel, subplots

PART_COLOURS = {"derivative": "tab:blue", "update": "tab:orange", "loss": "tab:green",
                "step": "tab:red", "sample": "tab:purple", "measuring": "tab:green",
                "training": "tab:blue", "overhead": "tab:grey"}


def scaling(name: str, n_M: np.ndarray, p_M: np.ndarray, seconds_M: np.ndarray,
            fit: PowerLawFit | None = None, fit_mask_M: np.ndarray | None = None,
            floor: float | None = None, n_label: str = "data points N"):
    """Seconds of one part against N (a line per P) and against P (a line per N), log-log,
    with the fitted power law dashed over the points it was fitted on."""
    fig, axes = subplots(1, 2, figsize=(11, 4.4), sharey=True)
    mask = np.ones(len(n_M), bool) if fit_mask_M is None else np.asarray(fit_mask_M)
    for ax, (x, other, xl, ol) in zip(axes, [(n_M, p_M, n_label, "P"),
                                             (p_M, n_M, "parameters P", "N")], strict=True):
        groups = np.unique(other)
        colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(groups)))
        for g, colour in zip(groups, colours, strict=True):
            sel = other == g
            order = np.argsort(x[sel])
            ax.plot(x[sel][order], seconds_M[sel][order], "o-", color=colour, ms=4,
                    label=f"{ol}={g:g}")
            if fit is not None and np.any(sel & mask):
                xs = np.sort(x[sel & mask])
                args = (xs, np.full_like(xs, g, dtype=float))
                ax.plot(xs, fit.predict(*(args if x is n_M else args[::-1])), "--",
                        color=colour, lw=1)
        if floor is not None:
            ax.axhline(floor, color="grey", ls=":", lw=1, label="dispatch floor")
        ax.set(xscale="log", yscale="log", xlabel=xl)
        ax.legend(fontsize=7, ncol=2)
    axes[0].set_ylabel("seconds per call")
    title = name
    if fit is not None:
        title += ": t ~ " + " ".join(f"{v}^{a:.2f} [{lo:.2f}, {hi:.2f}]" for v, a, (lo, hi)
                                     in zip(fit.names, fit.exponents, fit.ci, strict=True))
        title += " (dashed: fit on the large sizes)"
    fig.suptitle(title, fontsize=10)
    return fig


def stacked_shares(labels: Sequence[str], shares_KC: np.ndarray, names: Sequence[str],
                   title: str = "", xlabel: str = "", ax=None):
    """A stacked bar per size: the share of each part (rows: sizes, columns: parts)."""
    fig, ax = subplots(figsize=(max(6.4, 0.7 * len(labels)), 4.2))
    bottom = np.zeros(len(labels))
    for c, name in enumerate(names):
        ax.bar(labels, shares_KC[:, c], bottom=bottom, label=name,
               color=PART_COLOURS.get(name))
        bottom += shares_KC[:, c]
    ax.set(ylim=(0, 1), ylabel="share of the parts' summed time", xlabel=xlabel,
           title=title)
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def per_seed_cost(seeds_S: np.ndarray, seconds_SC: np.ndarray, names: Sequence[str],
                  title: str = "", ax=None):
    """Seconds per seed of each part when S seeds share one vmapped call, log-log."""
    fig, ax = panel(ax, figsize=(6.4, 4.4))
    for c, name in enumerate(names):
        ax.plot(seeds_S, seconds_SC[:, c] / seeds_S, "o-", label=name,
                color=PART_COLOURS.get(name))
    ax.set(xscale="log", yscale="log", xlabel="seeds S in one vmapped call",
           ylabel="seconds per seed", title=title)
    ax.legend(fontsize=8)
    return fig


def predicted_vs_measured(measured_R: np.ndarray, predicted_RM: np.ndarray,
                          models: Sequence[str], labels: Sequence[str], tolerance: float = 0.2,
                          title: str = "", ax=None):
    """Predicted against measured wall time per run, with y = x and a +-tolerance band."""
    fig, ax = panel(ax, figsize=(6.0, 5.2))
    lo = min(measured_R.min(), predicted_RM.min()) * 0.7
    hi = max(measured_R.max(), predicted_RM.max()) * 1.4
    line = np.geomspace(lo, hi, 10)
    ax.plot(line, line, "k-", lw=1)
    ax.fill_between(line, line * (1 - tolerance), line * (1 + tolerance), color="grey",
                    alpha=0.2, label=f"within {tolerance:.0%}")
    for m, (model, marker) in enumerate(zip(models, "os^", strict=False)):
        ax.scatter(measured_R, predicted_RM[:, m], marker=marker, label=model, zorder=3)
    for x, y, text in zip(measured_R, predicted_RM[:, 0], labels, strict=True):
        ax.annotate(text, (x, y), fontsize=7, xytext=(4, -8), textcoords="offset points")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi),
           xlabel="measured wall seconds (gdlab.train)", ylabel="predicted seconds",
           title=title)
    for axis in (ax.xaxis, ax.yaxis):  # plain numbers (6, not 6 x 10^0), minor ticks
        axis.set_major_formatter(mticker.FormatStrFormatter("%g"))  # labelled if few decades
        axis.set_minor_formatter(mticker.LogFormatter(labelOnlyBase=False))
    ax.legend(fontsize=8, loc="upper left")
    return fig


def schedule_costs(labels: Sequence[str], training_R: np.ndarray, measuring_R: np.ndarray,
                   title: str = "", ax=None):
    """Wall time of each schedule, split into training and measuring the loss."""
    fig, ax = panel(ax, figsize=(7.0, 4.2))
    ax.bar(labels, training_R, label="training", color=PART_COLOURS["training"])
    ax.bar(labels, measuring_R, bottom=training_R, label="measuring the loss",
           color=PART_COLOURS["measuring"])
    for i, (t, m) in enumerate(zip(training_R, measuring_R, strict=True)):
        ax.text(i, t + m, f"{m / (t + m):.1%}", ha="center", va="bottom", fontsize=8)
    ax.set(ylabel="wall seconds", title=title)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8)
    return fig


def recorded_losses(steps_T: np.ndarray, loss_T: np.ndarray,
                    schedules: Sequence[tuple[str, np.ndarray, np.ndarray]],
                    from_step: int = 0, title: str = "", ax=None):
    """The every-step loss of one seed with what each schedule recorded (from `from_step`
    on), each schedule's best marked with a diamond and the true best with a star."""
    fig, ax = panel(ax, figsize=(7.0, 4.4))
    keep = steps_T >= from_step
    ax.plot(steps_T[keep], loss_T[keep], color="lightgrey", lw=1, label="every step (truth)")
    best = int(np.argmin(loss_T))
    ax.plot(steps_T[best], loss_T[best], "k*", ms=14, label="true best", zorder=4)
    palette = matplotlib.colormaps["tab10"].colors
    for (name, steps_E, loss_E), colour in zip(schedules, palette, strict=False):
        sel = steps_E >= from_step
        ax.plot(steps_E[sel], loss_E[sel], "o-", ms=3, lw=0.8, color=colour, label=name)
        b = int(np.argmin(loss_E))
        ax.plot(steps_E[b], loss_E[b], "D", ms=9, mfc="none", mew=1.5, color=colour,
                zorder=3)
    ax.set(xlabel="step", ylabel="full-data loss", title=title)
    ax.legend(fontsize=7, ncol=2)
    return fig


def subset_spread(sizes: Sequence[int], rel_errors: Sequence[np.ndarray], title: str = "", ax=None):
    """Relative error of loss estimates on random subsets against the full-data loss."""
    fig, ax = panel(ax, figsize=(6.4, 4.2))
    ax.boxplot([100 * np.asarray(e) for e in rel_errors], whis=(5, 95), showfliers=False)
    ax.set_xticks(np.arange(1, len(sizes) + 1), [str(s) for s in sizes])
    ax.axhline(0, color="black", lw=1)
    ax.set(xlabel="subset size (data points)  [box: quartiles, whiskers: 5%-95%]",
           ylabel="(subset loss - full loss) / full loss, %", title=title)
    return fig
