"""Figures of the loss landscape: 1-D and 2-D slices (contours, optionally a 3-D surface),
trajectories on their PCA slice with the projection mismatch shown, Hessian eigenvalue
densities, and curves between minima against the straight path.

Figure API only (no pyplot); one-panel functions accept `ax=`.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.colors
import numpy as np

from gdlab.landscape.curves import CurveComparison
from gdlab.landscape.slices import Slice
from gdlab.landscape.trajectories import TrajectorySlice
from gdlab.plots._base import panel, subplots

__all__ = ["curve_vs_line", "loss_levels", "metric_groups", "slice_contour", "slice_curves",
           "slice_surface", "spectral_densities", "trajectory_overlay"]


def loss_levels(loss: np.ndarray, num: int = 30) -> tuple[np.ndarray, bool]:
    """Contour levels for a loss grid: log-spaced when it is positive and spans more than
    two decades (a narrow minimum in a wide slice), else linear. Returns (levels, log)."""
    finite = np.asarray(loss, np.float64)[np.isfinite(loss)]
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return np.array([lo - 1e-12, hi + 1e-12]), False
    if lo > 0 and hi / lo > 100:
        return np.geomspace(lo, hi, num), True
    return np.linspace(lo, hi, num), False


def slice_curves(slices: Mapping[str, Slice], title: str = "", ax=None, log: bool | None = None):
    """1-D slices (`slice_1d`) side by side: loss against the step along the direction.

    With a seed axis, every seed is a thin line and the median a thick one.
    """
    fig, ax = panel(ax, figsize=(6.4, 4.2))
    colours = matplotlib.colormaps["tab10"].colors
    lows = []
    for i, (label, s) in enumerate(slices.items()):
        loss = np.atleast_2d(np.asarray(s.loss, np.float64))
        for row in loss if len(loss) > 1 else []:
            ax.plot(s.alphas, row, color=colours[i % 10], lw=0.6, alpha=0.35)
        ax.plot(s.alphas, np.median(loss, axis=0), color=colours[i % 10], lw=2,
                label=f"{label}" + (f" (median of {len(loss)})" if len(loss) > 1 else ""))
        lows.append(loss.min())
    if log or (log is None and min(lows) > 0 and
               max(np.max(np.asarray(s.loss)) for s in slices.values()) / min(lows) > 100):
        ax.set_yscale("log")
    norm = next(iter(slices.values())).normalize if slices else "none"
    ax.set(xlabel=f"step along a random direction ({norm}-normalised)", ylabel="loss",
           title=title)
    ax.axvline(0.0, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=8)
    return fig


def slice_contour(s: Slice, title: str = "", ax=None, seed: int = 0, num_levels: int = 30,
                  point_labels: tuple[str, ...] = ()):
    """Filled contours of a 2-D slice (log-spaced levels when the loss spans decades).

    `seed` picks one slice of a seed axis; marked `points` (a plane's three points) are
    drawn and labelled with `point_labels`.
    """
    loss = np.asarray(s.loss, np.float64)
    alphas, betas = np.asarray(s.alphas), np.asarray(s.betas)
    if loss.ndim == 3:
        loss = loss[seed]
        alphas = alphas[seed] if alphas.ndim == 2 else alphas
        betas = betas[seed] if betas.ndim == 2 else betas
    fig, ax = panel(ax, figsize=(5.6, 4.8))
    levels, log = loss_levels(loss, num_levels)
    norm = matplotlib.colors.LogNorm(levels[0], levels[-1]) if log else None
    cs = ax.contourf(alphas, betas, loss.T, levels=levels, cmap="viridis", norm=norm)
    ax.contour(alphas, betas, loss.T, levels=levels[:: max(1, len(levels) // 10)],
               colors="white", linewidths=0.4, alpha=0.6, norm=norm)
    fig.colorbar(cs, ax=ax, label="loss" + (" (log levels)" if log else ""),
                 format="%.3g")
    if s.points is not None and np.ndim(s.points) == 2 and len(point_labels):
        for (u, v), name in zip(np.asarray(s.points), point_labels, strict=False):
            ax.plot(u, v, "o", color="red", ms=5, mec="white")
            ax.annotate(name, (u, v), textcoords="offset points", xytext=(4, 4),
                        color="white", fontsize=8)
    elif 0.0 >= alphas.min() and 0.0 <= alphas.max():
        ax.plot(0.0, 0.0, "*", color="red", ms=9, mec="white", label="centre (the minimum)")
    ax.set(xlabel="alpha (direction 1)", ylabel="beta (direction 2)", title=title)
    return fig


def slice_surface(s: Slice, title: str = "", seed: int = 0):
    """A 3-D surface of a 2-D slice (log10 of the loss when it spans decades)."""
    fig, _ = subplots(figsize=(6.0, 5.0))
    fig.clear()
    ax = fig.add_subplot(projection="3d")
    loss = np.asarray(s.loss, np.float64)
    loss = loss[seed] if loss.ndim == 3 else loss
    _, log = loss_levels(loss)
    z = np.log10(loss) if log else loss
    a, b = np.meshgrid(np.asarray(s.alphas), np.asarray(s.betas), indexing="ij")
    ax.plot_surface(a, b, z, cmap="viridis", linewidth=0, antialiased=True)
    ax.set(xlabel="alpha", ylabel="beta", zlabel="log10 loss" if log else "loss", title=title)
    return fig


def trajectory_overlay(ts: TrajectorySlice, title: str = "", index: int = 0,
                       steps_E: np.ndarray | None = None):
    """A path on its PCA slice (left) and the mismatch it hides (right).

    Left: contours of the loss on the plane of the top two principal directions through
    the end point, the projected path on it. Right: the loss the run really had at each
    recorded point against the loss at its projection (what the contours show under the
    path), and their difference: where they part, the picture on the left misleads.
    """
    many = np.ndim(ts.path) == 3
    pick = (lambda x: np.asarray(x)[index]) if many else np.asarray
    fig, (left, right) = subplots(1, 2, figsize=(11.5, 4.6))
    s = ts.slice
    one = Slice(pick(s.alphas), pick(s.betas), pick(s.loss), normalize="none")
    slice_contour(one, ax=left)
    path = pick(ts.path)
    explained = pick(ts.pca.explained)
    left.plot(path[:, 0], path[:, 1], "-", color="white", lw=1.2)
    left.scatter(path[:, 0], path[:, 1], c=np.arange(len(path)), cmap="autumn", s=14,
                 zorder=3, edgecolors="black", linewidths=0.3, label="evaluations (red: early)")
    left.plot(path[0, 0], path[0, 1], "s", color="cyan", ms=6, mec="black", label="start")
    left.set(xlabel=f"PC 1 ({100 * explained[0]:.1f}% of the path)",
             ylabel=f"PC 2 ({100 * explained[1]:.1f}%)",
             title=title or "trajectory on its PCA slice")
    left.legend(fontsize=8, loc="upper right")
    x = np.arange(len(path)) if steps_E is None else np.asarray(steps_E)
    true, plane = pick(ts.true_loss), pick(ts.plane_loss)
    right.plot(x, true, "o-", ms=3, label="true loss at the recorded params")
    right.plot(x, plane, "s--", ms=3, label="loss at its projection on the slice")
    right.fill_between(x, true, plane, color="tab:red", alpha=0.2, label="mismatch")
    if min(true.min(), plane.min()) > 0 and max(true.max(), plane.max()) / min(
            true.min(), plane.min()) > 100:
        right.set_yscale("log")
    worst = float(np.abs(true - plane).max())
    right.set(xlabel="step" if steps_E is not None else "evaluation", ylabel="loss",
              title=f"what the slice hides: max |true - slice| = {worst:.3g}\n"
                    f"(the 2 directions explain {100 * explained[:2].sum():.1f}% of the path)")
    right.legend(fontsize=8)
    return fig


def spectral_densities(densities: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "",
                       ax=None, floor: float = 1e-6):
    """Hessian eigenvalue densities (SLQ) on a log y axis, one line per label.

    `densities[label] = (grid (G,), density (G,) or (S, G))`; with a seed axis the mean
    is drawn, the 10-90% band of the seeds around it. Values below `floor` times the
    largest are clipped to it (a log axis cannot show 0).
    """
    fig, ax = panel(ax, figsize=(6.4, 4.2))
    top = max(float(np.max(d)) for _, d in densities.values())
    for label, (grid, density) in densities.items():
        d = np.maximum(np.atleast_2d(np.asarray(density, np.float64)), floor * top)
        line, = ax.plot(grid, d.mean(axis=0), lw=1.5, label=label)
        if len(d) > 1:
            lo, hi = np.quantile(d, [0.1, 0.9], axis=0)
            ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.2)
    ax.set_yscale("log")
    ax.set(xlabel="Hessian eigenvalue", ylabel=f"density (clipped at {floor:g} x max)",
           title=title)
    ax.legend(fontsize=8)
    return fig


def curve_vs_line(comparisons: Mapping[str, CurveComparison], title: str = "", ax=None):
    """Loss along trained curves (solid) and the straight paths (dashed) between minima."""
    fig, ax = panel(ax, figsize=(6.4, 4.2))
    colours = matplotlib.colormaps["tab10"].colors
    for i, (label, c) in enumerate(comparisons.items()):
        colour = colours[i % 10]
        ax.plot(c.ts, np.atleast_2d(c.line_loss).mean(0), "--", color=colour,
                label=f"{label}: straight path (barrier {np.mean(c.line_barrier):.3g})")
        ax.plot(c.ts, np.atleast_2d(c.curve_loss).mean(0), "-", color=colour, lw=2,
                label=f"{label}: {c.curve.kind} curve (barrier {np.mean(c.curve_barrier):.3g})")
    ax.set(xlabel="t (position between the two minima)", ylabel="loss", title=title)
    ax.legend(fontsize=7)
    return fig


def metric_groups(groups: Mapping[str, Mapping[str, np.ndarray]],
                  metrics: Mapping[str, str], title: str = ""):
    """One panel per metric: every seed of every group as a dot, the group's mean with its
    95% t-interval as a bar (e.g. sharpness and test accuracy, small vs large batch).

    `groups[group][metric]` are (S,) values; `metrics` maps metric keys to axis labels.
    """
    from scipy import stats

    fig, axes = subplots(1, len(metrics), figsize=(3.0 * len(metrics), 3.6))
    axes = np.atleast_1d(axes)
    colours = matplotlib.colormaps["tab10"].colors
    for ax, (key, label) in zip(axes, metrics.items(), strict=True):
        for i, values in enumerate(groups.values()):
            v = np.asarray(values[key], np.float64)
            jitter = np.linspace(-0.12, 0.12, len(v)) if len(v) > 1 else np.zeros(1)
            ax.plot(i + jitter, v, "o", color=colours[i % 10], alpha=0.6, ms=4)
            if len(v) > 1:
                half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
                ax.errorbar(i + 0.3, v.mean(), yerr=half, fmt="s", color="black", capsize=4)
        ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
        ax.set_xlim(-0.5, len(groups) - 0.3)
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
