"""Matplotlib figures: functions take arrays (or a Problem for its surface), return a Figure."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from gdlab.problem import Problem


def surface_grid(problem: Problem, resolution: int = 200):
    """(X, Y, Z) loss values of a 2-D problem on a grid over its domain."""
    if problem.domain is None:
        raise ValueError(f"problem {problem.name!r} has no 2-D domain to draw")
    (x0, x1), (y0, y1) = problem.domain
    xs, ys = np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
    gx, gy = np.meshgrid(xs, ys)
    pts = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], axis=1), jnp.float32)
    z = jax.jit(jax.vmap(lambda p: problem.loss(p, None)))(pts)
    return gx, gy, np.asarray(z).reshape(gx.shape)


def surface_endpoints(problem: Problem, final_S2: np.ndarray, labels_S: np.ndarray | None = None,
                      init_S2: np.ndarray | None = None, max_points: int = 4000):
    """Loss contours with every seed's endpoint (coloured by label) and known minima marked."""
    gx, gy, z = surface_grid(problem)
    fig, ax = plt.subplots(figsize=(6.4, 5.4), layout="constrained")
    levels = np.quantile(z, np.linspace(0, 1, 30))
    cs = ax.contourf(gx, gy, z, levels=np.unique(levels), cmap="viridis", alpha=0.6)
    fig.colorbar(cs, ax=ax, label="loss")
    take = slice(None, max_points)
    if init_S2 is not None:
        ax.scatter(init_S2[take, 0], init_S2[take, 1], s=2, c="tab:blue", alpha=0.15,
                   label="starts")
    colours = None if labels_S is None else labels_S[take]
    ax.scatter(final_S2[take, 0], final_S2[take, 1], s=30, c=colours, cmap="tab10",
               edgecolors="black", linewidths=0.4, label="endpoints", zorder=3)
    if problem.known_minima:
        km = np.array([np.asarray(m.params) for m in problem.known_minima])
        ax.scatter(km[:, 0], km[:, 1], marker="o", s=220, facecolors="none",
                   edgecolors="red", linewidths=1.5, label="known minima", zorder=4)
    (x0, x1), (y0, y1) = problem.domain
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="x", ylabel="y",
           title=f"{problem.name}: {len(final_S2)} seeds")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    return fig


def loss_curves(eval_steps_E: np.ndarray, loss_SE: np.ndarray, title: str = ""):
    """Median full-data loss over seeds with the 10-90% band, against steps."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    finite = np.where(np.isfinite(loss_SE), loss_SE, np.nan)
    lo, med, hi = np.nanquantile(finite, [0.1, 0.5, 0.9], axis=0)
    ax.fill_between(eval_steps_E, lo, hi, alpha=0.3, label="10-90% of seeds")
    ax.plot(eval_steps_E, med, lw=2, label="median")
    if np.nanmin(finite) > 0:
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="full-data loss", title=title)
    ax.legend()
    return fig


def final_loss_histogram(final_loss_S: np.ndarray, title: str = ""):
    """Histogram of every seed's final loss: one spike for convex, several otherwise."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    ax.hist(final_loss_S[np.isfinite(final_loss_S)], bins=60)
    ax.set(xlabel="final loss", ylabel="seeds", title=title)
    return fig


def minima_bars(fractions_M: np.ndarray, ci_M2: np.ndarray, losses_M: np.ndarray,
                title: str = ""):
    """Basin fraction of each minimum with its 95% interval, and its loss."""
    m = len(fractions_M)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.4, 0.35 * m), 5.6), sharex=True,
                                      layout="constrained")
    idx = np.arange(m)
    err = np.abs(np.asarray(ci_M2).T - np.asarray(fractions_M)[None, :]) if m else None
    top.bar(idx, fractions_M, yerr=err, capsize=3, color="tab:blue")
    top.set(ylabel="basin fraction (95% CI)", title=title)
    bottom.bar(idx, losses_M, color="tab:orange")
    bottom.set(xlabel="minimum (ordered by loss)", ylabel="loss")
    return fig


def basin_map(problem: Problem, init_S2: np.ndarray, labels_S: np.ndarray,
              max_points: int = 20000):
    """Each start position coloured by the minimum it reached (grey: none)."""
    fig, ax = plt.subplots(figsize=(6.4, 5.4), layout="constrained")
    take = slice(None, max_points)
    lab = np.asarray(labels_S)[take]
    pts = np.asarray(init_S2)[take]
    none = lab < 0
    ax.scatter(pts[none, 0], pts[none, 1], s=4, c="lightgrey", label="no minimum")
    sc = ax.scatter(pts[~none, 0], pts[~none, 1], s=4, c=lab[~none], cmap="tab20")
    if problem.domain is not None:
        (x0, x1), (y0, y1) = problem.domain
        ax.set(xlim=(x0, x1), ylim=(y0, y1))
    fig.colorbar(sc, ax=ax, label="minimum reached")
    ax.set(xlabel="x start", ylabel="y start", title=f"{problem.name}: basins of attraction")
    return fig


def barrier_heatmap(barriers_MM: np.ndarray, title: str = ""):
    """Loss barrier on the straight path between every pair of minima."""
    fig, ax = plt.subplots(figsize=(5.6, 4.8), layout="constrained")
    im = ax.imshow(barriers_MM, cmap="magma")
    fig.colorbar(im, ax=ax, label="barrier (max on path - mean of ends)")
    ax.set(xlabel="minimum", ylabel="minimum", title=title)
    return fig


def pca_projection(flat_SP: np.ndarray, labels_S: np.ndarray, title: str = ""):
    """Endpoints projected on their two principal components, coloured by minimum."""
    centred = flat_SP - flat_SP.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = np.zeros((2, flat_SP.shape[1]))
    axes[: min(2, len(vt))] = vt[:2]
    xy = centred @ axes.T
    fig, ax = plt.subplots(figsize=(6.4, 5.0), layout="constrained")
    none = labels_S < 0
    ax.scatter(xy[none, 0], xy[none, 1], s=5, c="lightgrey", label="not a minimum")
    ax.scatter(xy[~none, 0], xy[~none, 1], s=8, c=labels_S[~none], cmap="tab20")
    ax.set(xlabel="PC 1", ylabel="PC 2", title=title)
    ax.legend(loc="best", fontsize=8)
    return fig


def save(fig, path) -> None:
    """Write a figure as PNG and release it."""
    fig.savefig(path, dpi=110)
    plt.close(fig)
