"""Figures for equivalent minima of real networks: barriers naive and after weight
matching, prediction disagreement against test error, accuracy distributions, losses
along straight paths, and instability to data order.

Figure API only (no pyplot); one-panel functions accept `ax=`. Every function takes
arrays: means are over the last axis (pairs or seeds) with NaN ignored, bands the
25-75% range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gdlab.plots._base import panel

__all__ = ["accuracy_histograms", "barrier_vs_width", "disagreement_vs_error",
           "instability", "path_profiles"]

_STYLES = {"naive": dict(color="tab:red", marker="o"),
           "aligned": dict(color="tab:blue", marker="s")}


def _band(ax, x, values_XP, label: str, **style) -> None:
    """Mean line with markers and a 25-75% band over the last axis."""
    values_XP = np.asarray(values_XP, float)
    with np.errstate(all="ignore"):
        mean = np.nanmean(values_XP, axis=-1)
        lo, hi = np.nanpercentile(values_XP, [25, 75], axis=-1)
    ax.plot(x, mean, label=label, **style)
    ax.fill_between(x, lo, hi, color=style.get("color"), alpha=0.2, lw=0)


def barrier_vs_width(widths_W: Sequence[int], naive_WP: np.ndarray, aligned_WP: np.ndarray,
                     *, metric: str = "error", title: str = "", ax=None):
    """Barrier on straight paths between pairs of seeds against the width: naive and
    after weight matching (mean and 25-75% band over the pairs).

    Example:
      >>> plots.minima.barrier_vs_width([8, 32, 128], naive_WP, aligned_WP)
    """
    fig, ax = panel(ax, figsize=(5.6, 4.2))
    w = np.asarray(widths_W, float)
    _band(ax, w, naive_WP, "naive", **_STYLES["naive"])
    _band(ax, w, aligned_WP, "after weight matching", **_STYLES["aligned"])
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="hidden width", ylabel=f"{metric} barrier (max on path - mean of ends)",
           title=title)
    ax.legend(fontsize=8)
    return fig


def disagreement_vs_error(error_K: np.ndarray, disagreement_K: np.ndarray,
                          labels_K: Sequence[str], *, title: str = "", ax=None):
    """Mean pairwise disagreement of seeds' predicted labels against their mean test
    error, one point per configuration, with the line disagreement = error."""
    fig, ax = panel(ax, figsize=(5.6, 4.6))
    err, dis = np.asarray(error_K, float), np.asarray(disagreement_K, float)
    ax.scatter(err, dis, color="tab:purple", zorder=3)
    for e, d, label in zip(err, dis, labels_K, strict=True):
        ax.annotate(label, (e, d), fontsize=7, xytext=(3, 3), textcoords="offset points")
    top = float(np.nanmax(np.concatenate([err, dis, [1e-3]]))) * 1.1
    ax.plot([0, top], [0, top], color="grey", ls="--", lw=0.8, label="disagreement = error")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="mean test error",
           ylabel="mean disagreement between seeds", title=title)
    ax.legend(fontsize=8)
    return fig


def accuracy_histograms(accuracies: Mapping[str, np.ndarray], *, title: str = "",
                        bins: int = 30, ax=None):
    """Distribution of test accuracy over seeds, one step histogram per configuration."""
    fig, ax = panel(ax, figsize=(6.4, 4.2))
    values = [np.asarray(v, float) for v in accuracies.values()]
    lo = min((float(np.nanmin(v)) for v in values if v.size), default=0.0)
    hi = max((float(np.nanmax(v)) for v in values if v.size), default=1.0)
    edges = np.linspace(lo, hi + 1e-9, bins + 1)
    for label, v in zip(accuracies, values, strict=True):
        ax.hist(v, bins=edges, histtype="step", lw=1.4, label=label)
    ax.set(xlabel="test accuracy", ylabel="seeds", title=title)
    ax.legend(fontsize=7)
    return fig


def path_profiles(alphas_T: np.ndarray, naive_PT: np.ndarray, aligned_PT: np.ndarray, *,
                  ylabel: str = "loss", title: str = "", ax=None):
    """A metric along the straight paths between pairs of seeds (t = 0: one seed, t = 1:
    the other), naive and after weight matching (mean and 25-75% band over pairs)."""
    fig, ax = panel(ax, figsize=(5.6, 4.2))
    t = np.asarray(alphas_T, float)
    _band(ax, t, np.asarray(naive_PT, float).T, "naive", color="tab:red")
    _band(ax, t, np.asarray(aligned_PT, float).T, "after weight matching", color="tab:blue")
    ax.set(xlabel="t (path (1 - t) a + t b)", ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    return fig


def instability(splits_K: Sequence[int], naive_KP: np.ndarray, aligned_KP: np.ndarray, *,
                metric: str = "error", title: str = "", ax=None):
    """Barrier between two copies of one network split at step k (same init and first k
    mini-batches, then different batch orders) against k: Frankle et al.'s instability."""
    fig, ax = panel(ax, figsize=(5.6, 4.2))
    k = np.asarray(splits_K, float)
    _band(ax, k, naive_KP, "naive", **_STYLES["naive"])
    _band(ax, k, aligned_KP, "after weight matching", **_STYLES["aligned"])
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xscale("symlog", linthresh=max(1.0, float(np.min(k[k > 0], initial=1.0))))
    ax.set(xlabel="split step k", ylabel=f"{metric} barrier between the two copies",
           title=title)
    ax.legend(fontsize=8)
    return fig
