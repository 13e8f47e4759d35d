"""Matplotlib figures: functions take arrays (or a Problem for its surface), return a Figure."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.colors
import matplotlib.lines
import numpy as np

from gdlab._checks import InputError
from gdlab.plots._base import panel, save, subplots
from gdlab.problem import Problem

__all__ = ["barrier_heatmap", "barrier_pair", "basin_map", "counts_vs_tolerance",
           "final_loss_histogram", "label_colours", "loss_curves", "minima_bars",
           "pca_projection", "save", "surface_endpoints", "surface_grid"]


@functools.partial(jax.jit, static_argnums=0)
def _surface_losses(loss, points_M2: jax.Array) -> jax.Array:
    """Loss of a data-free 2-D problem at each point (compiled once per loss function)."""
    return jax.vmap(lambda p: loss(p, None))(points_M2)


def surface_grid(problem: Problem, resolution: int = 200):
    """(X, Y, Z) loss values of a 2-D problem on a grid over its domain."""
    if problem.domain is None:
        raise InputError(f"problem {problem.name!r} has no 2-D domain to draw")
    (x0, x1), (y0, y1) = problem.domain
    xs, ys = np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
    gx, gy = np.meshgrid(xs, ys)
    pts = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], axis=1), jnp.float32)
    z = _surface_losses(problem.loss, pts)
    return gx, gy, np.asarray(z).reshape(gx.shape)


def label_colours(labels_S: np.ndarray) -> np.ndarray:
    """(S, 4) RGBA colour per label: a fixed qualitative colour per minimum, grey for -1."""
    labels_S = np.asarray(labels_S)
    many = labels_S.size > 0 and labels_S.max() >= 10
    palette = np.asarray(matplotlib.colormaps["tab20" if many else "tab10"].colors)
    if many:  # drop tab20's greys: grey means "no minimum"
        palette = np.delete(palette, [14, 15], axis=0)
    colours = np.ones((labels_S.size, 4))
    colours[:, :3] = palette[np.maximum(labels_S, 0) % len(palette)]
    colours[labels_S < 0] = matplotlib.colors.to_rgba("lightgrey")
    return colours


def _label_legend(ax, labels_S: np.ndarray, max_entries: int = 10, loc: str = "upper right"):
    """Legend with one marker per minimum (the most populated first), and 'no minimum'."""
    labels_S = np.asarray(labels_S)
    ids, counts = np.unique(labels_S[labels_S >= 0], return_counts=True)
    shown = ids[np.argsort(-counts, kind="stable")][:max_entries]
    handles = [matplotlib.lines.Line2D([], [], ls="", marker="o", color=label_colours(
        np.array([i]))[0], label=f"minimum {i}") for i in sorted(shown)]
    if len(ids) > max_entries:
        handles.append(matplotlib.lines.Line2D([], [], ls="", label=f"+{len(ids) - max_entries} "
                                                                    "more"))
    if (labels_S < 0).any():
        handles.append(matplotlib.lines.Line2D([], [], ls="", marker="o", color="lightgrey",
                                               label="no minimum"))
    return ax.legend(handles=handles, loc=loc, fontsize=7, framealpha=0.8)


def surface_endpoints(problem: Problem, final_S2: np.ndarray, labels_S: np.ndarray | None = None,
                      init_S2: np.ndarray | None = None, max_points: int = 4000,
                      trajectories_KE2: np.ndarray | None = None, ax=None):
    """Loss contours, every seed's endpoint coloured by its minimum, known minima ringed.

    `trajectories_KE2` (the params of K seeds at each evaluation, e.g. `Runs.trajectory`
    of the first K seeds) are drawn as paths from a small dot (start) to the endpoint.
    """
    gx, gy, z = surface_grid(problem)
    fig, ax = panel(ax, figsize=(6.4, 5.4))
    levels = np.quantile(z, np.linspace(0, 1, 30))
    cs = ax.contourf(gx, gy, z, levels=np.unique(levels), cmap="viridis", alpha=0.6)
    fig.colorbar(cs, ax=ax, label="loss")
    take = slice(None, max_points)
    labels = np.zeros(len(final_S2), np.int64) if labels_S is None else np.asarray(labels_S)
    if init_S2 is not None:
        ax.scatter(init_S2[take, 0], init_S2[take, 1], s=2, c="tab:blue", alpha=0.15)
    if trajectories_KE2 is not None:
        colours = label_colours(labels[: len(trajectories_KE2)])
        for path_E2, colour in zip(trajectories_KE2, colours, strict=True):
            ax.plot(path_E2[:, 0], path_E2[:, 1], lw=0.9, color=colour, alpha=0.9, zorder=2)
            ax.plot(path_E2[0, 0], path_E2[0, 1], "o", ms=2.5, color=colour, zorder=2)
    ax.scatter(final_S2[take, 0], final_S2[take, 1], s=30, c=label_colours(labels[take]),
               edgecolors="black", linewidths=0.4, zorder=3)
    if problem.known_minima:
        km = np.array([np.asarray(m.params) for m in problem.known_minima])
        ax.scatter(km[:, 0], km[:, 1], marker="o", s=220, facecolors="none",
                   edgecolors="red", linewidths=1.5, zorder=4)
    (x0, x1), (y0, y1) = problem.domain
    shown = f", {len(trajectories_KE2)} paths" if trajectories_KE2 is not None else ""
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="x", ylabel="y",
           title=f"{problem.name}: {len(final_S2)} seeds{shown} (red rings: known minima)")
    if labels_S is not None:
        _label_legend(ax, labels)
    return fig


def loss_curves(eval_steps_E: np.ndarray, loss_SE: np.ndarray, title: str = "", ax=None):
    """Median full-data loss over seeds with the 10-90% band, against steps.

    Log axes where the values span decades: the loss on a log scale (values at or below
    zero, e.g. an exact minimum, are drawn at a floor 1e12 times below the largest and
    said so), steps on a symmetric-log scale when they span more than two decades.
    """
    fig, ax = panel(ax, figsize=(6.4, 4.2))
    finite = np.where(np.isfinite(loss_SE), loss_SE, np.nan)
    lo, med, hi = np.nanquantile(finite, [0.1, 0.5, 0.9], axis=0)
    ylabel = "full-data loss"
    top = float(np.nanmax(hi)) if np.isfinite(np.nanmax(hi)) else 1.0
    if np.nanmin(lo) >= 0 and top > 0:
        floor = max(top * 1e-12, float(np.nanmin(np.where(lo > 0, lo, np.inf))))
        if np.nanmin(lo) < floor:
            ylabel += f" (values < {floor:.1e} drawn at it)"
        lo, med, hi = (np.maximum(v, floor) for v in (lo, med, hi))
        ax.set_yscale("log")
    ax.fill_between(eval_steps_E, lo, hi, alpha=0.3, label="10-90% of seeds")
    ax.plot(eval_steps_E, med, lw=2, label="median")
    steps = np.asarray(eval_steps_E, np.float64)
    if steps.size > 2 and steps.max() > 100 * max(1.0, np.min(steps[steps > 0], initial=1.0)):
        ax.set_xscale("symlog", linthresh=max(1.0, float(np.min(steps[steps > 0]))))
    ax.set(xlabel="step", ylabel=ylabel, title=title)
    ax.legend()
    return fig


def final_loss_histogram(final_loss_S: np.ndarray, title: str = "", ax=None):
    """Histogram of every seed's final loss: one spike for convex, several otherwise."""
    fig, ax = panel(ax, figsize=(6.4, 4.0))
    ax.hist(final_loss_S[np.isfinite(final_loss_S)], bins=60)
    ax.set(xlabel="final loss", ylabel="seeds", title=title)
    return fig


def minima_bars(fractions_M: np.ndarray, ci_M2: np.ndarray, losses_M: np.ndarray,
                title: str = "", top: int = 30):
    """Basin fraction of each minimum with its 95% interval, and its loss.

    At most `top` minima are drawn (the rest as one "others" bar, their summed fraction);
    when the losses agree to float precision the loss panel says so instead of drawing
    rounding noise as bars.
    """
    fractions_M, losses_M = np.asarray(fractions_M, float), np.asarray(losses_M, float)
    ci_M2 = np.asarray(ci_M2, float).reshape(-1, 2)
    m, shown = len(fractions_M), min(len(fractions_M), top)
    labels = [str(i) for i in range(shown)] + ([f"{m - shown} others"] if m > shown else [])
    frac = np.concatenate([fractions_M[:shown], [fractions_M[shown:].sum()] if m > shown
                           else []])
    fig, (upper, lower) = subplots(2, 1, figsize=(min(max(6.4, 0.35 * len(labels)), 12.0),
                                                  5.6), sharex=True)
    idx = np.arange(len(labels))
    err = np.abs(ci_M2[:shown].T - fractions_M[None, :shown]) if shown else None
    upper.bar(idx[:shown], frac[:shown], yerr=err, capsize=3, color="tab:blue")
    if m > shown:
        upper.bar(idx[-1:], frac[-1:], color="lightgrey")
    upper.set(ylabel="basin fraction (95% CI)", title=title)
    _loss_panel(lower, idx[:shown], losses_M)
    lower.set_xticks(idx, labels, rotation=90 if len(labels) > 20 else 0)
    lower.set_xlabel("minimum (ordered by loss)")
    return fig


def _loss_panel(ax, idx: np.ndarray, losses_M: np.ndarray) -> None:
    spread = float(np.ptp(losses_M)) if losses_M.size else 0.0
    scale = max(1.0, float(np.max(np.abs(losses_M), initial=0.0)))
    if spread <= 1e-6 * scale:
        ax.text(0.5, 0.5, f"every minimum has loss {np.mean(losses_M):.3g} "
                f"(spread {spread:.1g}: float rounding)", transform=ax.transAxes,
                ha="center", va="center")
        ax.set_yticks([])
        return
    ax.bar(idx, losses_M[: len(idx)], color="tab:orange")
    ax.set_ylabel("loss")


def basin_map(problem: Problem, init_S2: np.ndarray, labels_S: np.ndarray,
              max_points: int = 20000, ax=None):
    """Each start position coloured by the minimum it reached (grey: none)."""
    fig, ax = panel(ax, figsize=(6.4, 5.4))
    take = slice(None, max_points)
    lab = np.asarray(labels_S)[take]
    pts = np.asarray(init_S2)[take]
    ax.scatter(pts[:, 0], pts[:, 1], s=4, c=label_colours(lab))
    if problem.domain is not None:
        (x0, x1), (y0, y1) = problem.domain
        ax.set(xlim=(x0, x1), ylim=(y0, y1))
    ax.set(xlabel="x start", ylabel="y start", title=f"{problem.name}: basins of attraction")
    _label_legend(ax, lab)
    return fig


def barrier_heatmap(barriers_MM: np.ndarray, title: str = "", ax=None):
    """Loss barrier on the straight path between every pair of minima."""
    fig, ax = panel(ax, figsize=(5.6, 4.8))
    im = ax.imshow(barriers_MM, cmap="magma")
    fig.colorbar(im, ax=ax, label="barrier (max on path - mean of ends)")
    ax.set(xlabel="minimum", ylabel="minimum", title=title)
    _integer_ticks(ax, len(barriers_MM))
    return fig


def _integer_ticks(ax, m: int) -> None:
    """Minimum indices as ticks (not matplotlib's -0.5, 0.5, ... on small matrices)."""
    ticks = np.arange(m) if m <= 20 else np.linspace(0, m - 1, 10).round().astype(int)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)


def barrier_pair(naive_MM: np.ndarray, aligned_MM: np.ndarray, title: str = ""):
    """Barrier heatmaps side by side: naive straight paths, and after symmetry alignment."""
    fig, axes = subplots(1, 2, figsize=(10.5, 4.6))
    top = float(max(np.max(naive_MM, initial=0.0), np.max(aligned_MM, initial=0.0), 1e-12))
    for ax, mat, name in zip(axes, (naive_MM, aligned_MM), ("naive", "after alignment"),
                             strict=True):
        im = ax.imshow(mat, cmap="magma", vmin=0.0, vmax=top)
        ax.set(xlabel="minimum", ylabel="minimum", title=name)
        _integer_ticks(ax, len(mat))
    fig.colorbar(im, ax=axes, label="barrier (max on path - mean of ends)")
    fig.suptitle(title)
    return fig


def counts_vs_tolerance(tols_T: np.ndarray, counts: dict[str, np.ndarray], xlabel: str,
                        title: str = "", ax=None):
    """Number of minima at each tolerance, one line per count (e.g. raw / symmetry / function).

    Keys ending in " (distance only)" are drawn dashed in the colour of their base key.
    """
    fig, ax = panel(ax, figsize=(6.4, 4.4))
    colours = {}
    for name, values in counts.items():
        base = name.removesuffix(" (distance only)")
        colour = colours.setdefault(base, f"C{len(colours)}")
        ax.plot(tols_T, values, "o-" if base == name else "s--", color=colour, label=name)
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="distinct minima", title=title)
    ax.legend(fontsize=8)
    return fig


def pca_projection(flat_SP: np.ndarray, labels_S: np.ndarray, title: str = "", ax=None):
    """Endpoints projected on their two principal components, coloured by minimum.

    When every endpoint lies within float32 rounding of the others (a convex problem's
    single minimum), the panel says so rather than drawing the rounding noise as clusters.
    """
    flat_SP = np.asarray(flat_SP, np.float64)
    centred = flat_SP - flat_SP.mean(axis=0)
    fig, ax = panel(ax, figsize=(6.4, 5.0))
    scale = max(1.0, float(np.max(np.abs(flat_SP), initial=0.0)))
    spread = float(np.max(np.linalg.norm(centred, axis=1), initial=0.0))
    if spread <= 1e-5 * scale:
        ax.text(0.5, 0.5, f"all {len(flat_SP)} endpoints within {spread:.1g} of their mean\n"
                "(float32 rounding): one point", transform=ax.transAxes, ha="center",
                va="center")
        ax.set(xticks=[], yticks=[], title=title)
        return fig
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = np.zeros((2, flat_SP.shape[1]))
    axes[: min(2, len(vt))] = vt[:2]
    xy = centred @ axes.T
    ax.scatter(xy[:, 0], xy[:, 1], s=8, c=label_colours(labels_S))
    ax.set(xlabel="PC 1", ylabel="PC 2", title=title)
    _label_legend(ax, labels_S, loc="best")
    return fig
