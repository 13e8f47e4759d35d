"""Reproductions: six published claims about gradient descent, checked with many seeds.

1. Spurious local minima of two-layer ReLU nets are common and grow with the width, and
   mild over-parameterization removes most of them (Safran & Shamir, ICML 2018).
2. The gradient noise scale grows as the loss falls, and the critical batch size is of
   its order (McCandlish et al. 2018).
3. Three regimes of data parallelism: perfect scaling, diminishing returns, maximal data
   parallelism, with the best rate growing with B in the first (Shallue et al., JMLR 2019).
4. Large batches find sharper minima that generalise worse (Keskar et al., ICLR 2017).
5. Linear mode connectivity after permutation: the aligned loss barrier falls toward zero
   as width grows, the naive one does not (Entezari et al. 2022; Ainsworth et al. 2023).
6. Small networks are stable to SGD noise from initialisation (Frankle et al., ICML 2020).

Every claim has a verdict rule written in the config (and printed in the report) before
anything runs; each verdict is agrees / disagrees / inconclusive by that rule, and a
claim whose gdlab API is missing is reported "not run".

Run:
  python experiments/reproductions.py [--smoke] [--out DIR]   (or: gdlab run reproductions)
The full run took 11.4 minutes on the shared 2-core CPU at a load average of about 7
(7 CPU-minutes, JAX's persistent cache warm from an earlier run; 22.5 minutes at load 10
with a colder cache). Smoke (claims 1, 4, 5 and 6 on tiny settings; 2 and 3 run in
tests/test_reproductions.py): about 25 CPU-seconds with nothing cached, mostly compiling.
Writes DIR/report.md, figures (DIR/*.png) and tidy tables (DIR/*.csv), and prints DIR.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import io
import math
import os
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats as sps

import gdlab
from gdlab import plots, problems
from gdlab.batch.scaling import median_ci
from gdlab.plots import batch as plots_batch
from gdlab.plots import reproductions as rplots
from gdlab.stats import wilson_interval
from gdlab.studies import markdown_table, study_dir, study_main, write_text

# the module (the attribute `problems.relu_population` is its factory function)
relu = importlib.import_module("gdlab.problems.relu_population")

CLAIMS = ("spurious", "noise", "regimes", "sharpness", "connectivity", "stability")
VERDICTS = ("agrees", "disagrees", "inconclusive")


# ============================================================================ configs


@dataclasses.dataclass(frozen=True)
class SpuriousConfig:
    """Claim 1: the student-teacher ReLU population loss, plain full-batch GD."""

    ks: tuple[int, ...] = (3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 20)
    seeds: int = 1000
    large_k: int = 14           # k >= large_k: large_k_seeds (the fraction is large there)
    large_k_seeds: int = 500
    steps: int = 600            # GD steps: steps + steps_per_k * k (larger k converge slower:
    steps_per_k: int = 220      # slow escapes from plateaus near saddles, about 5% of k = 20
    #                             seeds after 4000 steps, 0.5% after 8000)
    overparam_ks: tuple[int, ...] = (12, 16)
    extras: tuple[int, ...] = (1, 2)
    overparam_seeds: int = 256
    overparam_steps: int = 8000
    lr: float = 1.8             # GD rate lr / (1 + 0.3 n): about 1.5 / (top Hessian eigenvalue)
    init_scale: float = 1.0     # w_i ~ N(0, init_scale^2 I / d), the paper's Xavier-like init
    eval_every: int = 500
    global_tol: float = 1e-6    # float64 loss below: converged to a global minimum
    spurious_loss: float = 1e-4  # float64 loss above and gradient below grad_tol: spurious
    grad_tol: float = 1e-4      # float64 gradient norm below: converged
    hessian_ks: tuple[int, ...] = (6, 12, 20)  # validate spurious endpoints' Hessians here
    hessian_seeds: int = 64     # ... on at most this many of them per k
    hessian_tol: float = 1e-3   # a minimum: smallest eigenvalue >= -hessian_tol * largest
    # verdict rules
    small_k: int = 6            # "none for k < small_k"
    none_below: float = 0.005   # ... the pooled fraction's Wilson upper bound (worst case) below
    rho_min: float = 0.8
    p_max: float = 0.01
    ci_factor: float = 3.0
    max_not_converged: float = 0.05
    overparam_factor: float = 0.25

    def rules(self) -> dict[str, str]:
        return {
            "1a": f"Pooled over k < {self.small_k} (n = k): agrees if the Wilson 95% upper bound "
                  f"of (spurious + not converged) / seeds is below {self.none_below:g}; "
                  f"disagrees if the lower bound of spurious / seeds is above it; else "
                  "inconclusive.",
            "1b": f"Over k >= {self.small_k} (n = k): agrees if the fraction rises with k "
                  f"(Spearman rho > {self.rho_min:g}, p < {self.p_max:g}) and the fraction at "
                  f"the largest k exceeds {self.ci_factor:g}x its Wilson half-width; "
                  "disagrees if rho <= 0; inconclusive otherwise, or when more than "
                  f"{self.max_not_converged:.0%} of the seeds of some k did not converge.",
            "1c": "At the largest k (n = k): agrees if the Wilson lower bound of the fraction "
                  "exceeds 1/2 (a majority), disagrees if the upper bound is below 1/2, else "
                  "inconclusive.",
            "1d": f"Pooled over k in {list(self.overparam_ks)}: for every n = k + e, e in "
                  f"{list(self.extras)}, agrees if the Wilson upper bound of (spurious + not "
                  f"converged) / seeds is below {self.overparam_factor:g}x the Wilson lower "
                  "bound of the n = k fraction; disagrees if for some e the lower bound of "
                  "spurious / seeds exceeds half the n = k upper bound (not even halved); "
                  "else inconclusive.",
        }


@dataclasses.dataclass(frozen=True)
class NoiseConfig:
    """Claim 2: B_simple along SGD training; B_crit from batch-size sweeps (digits)."""

    datasets: tuple[str, ...] = ("digits", "mnist1d")
    hidden: tuple[int, ...] = (32,)
    learning_rate: float = 0.1
    batch_size: int = 64
    track_steps: int = 4000
    checkpoints: int = 16
    seeds: int = 8
    targets: tuple[float, ...] = (0.3, 0.1, 0.03)   # digits training losses for B_crit
    batch_sizes: tuple[int, ...] = (4, 16, 64, 256, 1400)
    sweep_seeds: int = 4
    rates: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
    sweep_steps: int = 20000
    # verdict rules
    rho_max: float = -0.8
    growth_min: float = 3.0
    same_order: float = 10.0
    r2_min: float = 0.8

    def rules(self) -> dict[str, str]:
        return {
            "2a": f"Per dataset: agrees if the median over seeds of Spearman's rho between the "
                  f"loss and B_simple across checkpoints is below {self.rho_max:g} and every "
                  f"seed's B_simple grew by more than {self.growth_min:g}x from the first to the "
                  "last checkpoint; disagrees if the median rho is above 0 or no seed's "
                  "B_simple grew; else inconclusive.",
            "2b": f"Digits, at each target loss: agrees if every B_crit / B_simple lies within "
                  f"a factor {self.same_order:g} (the same order of magnitude); disagrees if "
                  "for some target even the most favourable ends of the intervals (B_crit's "
                  "95% CI, B_simple's range over seeds) lie outside it; inconclusive "
                  f"otherwise, or when a fit has R^2 < {self.r2_min:g}.",
        }


@dataclasses.dataclass(frozen=True)
class RegimesConfig:
    """Claim 3: steps to a target test loss against B on an mnist1d MLP, rate retuned per B."""

    dataset: str = "mnist1d"
    hidden: tuple[int, ...] = (64, 64)
    momentum: float = 0.9
    batch_sizes: tuple[int, ...] = (4, 16, 64, 256, 1024, 4000)
    rates: tuple[float, ...] = tuple(float(0.001 * 2**i) for i in range(12))
    target_test_loss: float = 1.3   # the MLP overfits: its test loss bottoms out near 1.1
    seeds: int = 4
    steps: int = 20000
    resolution: float = 0.05
    # verdict rules
    r2_min: float = 0.9
    small_slope: float = -0.7
    large_slope: float = -0.3
    lr_slope: tuple[float, float] = (0.5, 1.5)
    lr_slope_reject: tuple[float, float] = (0.25, 2.0)

    def rules(self) -> dict[str, str]:
        lo, hi = self.lr_slope
        rlo, rhi = self.lr_slope_reject
        return {
            "3a": f"Agrees if S = S_min (1 + B_crit / B) fits the median steps with R^2 >= "
                  f"{self.r2_min:g}, B_crit's 95% CI lies inside the batch sizes tried, the "
                  f"log-log slope of steps between the two smallest B is <= {self.small_slope:g} "
                  f"(perfect scaling) and between the two largest >= {self.large_slope:g} "
                  "(maximal data parallelism); disagrees if the steps rise with B beyond their "
                  "intervals somewhere or R^2 < 0.5; else inconclusive.",
            "3b": f"Over the batch sizes B <= B_crit (at least 3, none with its best rate at the "
                  f"grid's edge, else inconclusive): agrees if the least-squares slope of "
                  f"log(best rate) on log(B) lies in [{lo:g}, {hi:g}] (linear scaling: 1); "
                  f"disagrees if it lies outside [{rlo:g}, {rhi:g}]; else inconclusive.",
        }


@dataclasses.dataclass(frozen=True)
class SharpnessConfig:
    """Claim 4: small- versus large-batch Adam on digits, sharpness and test accuracy."""

    hidden: tuple[int, ...] = (64,)
    small_batch: int = 32
    large_batch: int = 1400     # full batch (the paper: 10% of the data)
    learning_rate: float = 1e-3
    steps: int = 3000
    seeds: int = 8
    epsilon: float = 1e-3
    bootstrap: int = 2000
    match_every: int = 25       # the large batch's loss is recorded this often (control 4c)

    def rules(self) -> dict[str, str]:
        return {
            "4a": "Agrees if the ratio of medians large/small batch (bootstrap 95% CI over "
                  "seeds) exceeds 1 at its lower bound for both the top Hessian eigenvalue and "
                  "the epsilon-sharpness; disagrees if either ratio's upper bound is below 1; "
                  "else inconclusive.",
            "4b": "Agrees if the test accuracy of small minus large batch (difference of "
                  "means, bootstrap 95% CI) is above 0 at its lower bound; disagrees if its "
                  "upper bound is below 0; else inconclusive.",
            "4c": "Control for the training loss (not a test of the claim: 4a decides it): "
                  "the large batch stopped at the first recorded step where its median "
                  "training loss is at or below the small batch's final median; the rule of 4a "
                  "on those minima.",
        }


@dataclasses.dataclass(frozen=True)
class ConnectivityConfig:
    """Claim 5: loss barriers between independent digits MLPs, naive and weight-matched."""

    widths: tuple[int, ...] = (16, 32, 128, 512)
    pairs: int = 5
    learning_rate: float = 1e-3
    batch_size: int = 64
    steps: int = 2000
    fall_factor: float = 0.5

    def rules(self) -> dict[str, str]:
        f = self.fall_factor
        return {
            "5": f"With the range over pairs as interval: agrees if at the widest width the "
                 f"aligned barrier's maximum is below {f:g}x the naive barrier's minimum and the "
                 f"aligned median is below {f:g}x its median at the narrowest width; disagrees "
                 "if at the widest width the aligned minimum is at or above the naive maximum, "
                 "or the aligned barrier's minimum at the widest width exceeds its maximum at "
                 "the narrowest; else inconclusive.",
        }


@dataclasses.dataclass(frozen=True)
class StabilityConfig:
    """Claim 6: copies from one init with different batch orders, their error barrier."""

    hidden: tuple[int, ...] = (32,)
    optimizer: str = "momentum"
    learning_rate: float = 0.05
    momentum: float = 0.9
    batch_size: int = 32
    steps: int = 3000
    pairs: int = 8
    stable_below: float = 0.02   # Frankle et al.: stable when the error barrier is < 2%

    def rules(self) -> dict[str, str]:
        return {
            "6": f"Agrees if the order-statistic 95% CI of the median test-error barrier of "
                 f"same-init pairs lies below {self.stable_below:g}; disagrees if it lies above; "
                 "else inconclusive.",
        }


@dataclasses.dataclass(frozen=True)
class Config:
    spurious: SpuriousConfig = SpuriousConfig()
    noise: NoiseConfig = NoiseConfig()
    regimes: RegimesConfig = RegimesConfig()
    sharpness: SharpnessConfig = SharpnessConfig()
    connectivity: ConnectivityConfig = ConnectivityConfig()
    stability: StabilityConfig = StabilityConfig()
    claims: tuple[str, ...] = CLAIMS
    smoke: bool = False

    def rules(self) -> dict[str, str]:
        out = {}
        for part in (self.spurious, self.noise, self.regimes, self.sharpness,
                     self.connectivity, self.stability):
            out.update(part.rules())
        return out


def get_config(smoke: bool = False) -> Config:
    """The study's settings (the verdict rules are part of them); `smoke=True` shrinks every
    claim to seconds."""
    if not smoke:
        return Config()
    # Smoke: the fewest compiled programs (compiling, not training, is what a smoke run
    # pays for: about 1.5-3 s per program on a 2-core CPU). Claims 1, 4, 5 and 6 run on
    # four programs (one ReLU problem; one digits MLP shared by claims 4-6, plus the
    # Hessian and ascent kernels); claims 2 and 3 (another five programs) are left out of
    # the smoke run and run on the configs below by tests/test_reproductions.py, as are
    # claim 1's rows for k < small_k and for n > k (from hand-made settings).
    return Config(
        spurious=SpuriousConfig(ks=(6,), seeds=32, steps=200, steps_per_k=0,
                                overparam_ks=(), extras=(1,), overparam_seeds=32,
                                overparam_steps=200, eval_every=100, hessian_ks=(6,),
                                hessian_seeds=4),
        # no B_crit sweep (targets=()): tests/test_reproductions.py checks its code on a
        # stand-in sweep
        noise=NoiseConfig(datasets=("digits",), hidden=(4,), track_steps=50, checkpoints=4,
                          seeds=2, targets=(), batch_sizes=(1400,), sweep_seeds=2,
                          rates=(0.4,), sweep_steps=200),
        # digits, not mnist1d: generating mnist1d alone takes 10 s
        regimes=RegimesConfig(dataset="digits", hidden=(4,), batch_sizes=(1400,),
                              rates=(0.1, 0.4),
                              target_test_loss=2.2, seeds=2, steps=100, resolution=0.2),
        # one program for both batch groups and the connectivity runs: compiled once
        sharpness=SharpnessConfig(hidden=(4,), small_batch=64, large_batch=64, steps=50,
                                  seeds=4, bootstrap=100, match_every=50),
        connectivity=ConnectivityConfig(widths=(4,), pairs=2, steps=50),
        stability=StabilityConfig(hidden=(4,), optimizer="adam", learning_rate=1e-3,
                                  batch_size=64, steps=50, pairs=2),
        claims=("spurious", "sharpness", "connectivity", "stability"), smoke=True)


# ============================================================================ results


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the reproduction table."""

    claim: str
    paper: str
    ours: str
    verdict: str
    rule: str        # the verdict rule, fixed before the run (or why the claim did not run)


@dataclasses.dataclass
class ClaimResult:
    """What one claim's function returns: its rows and the report section's text."""

    key: str
    title: str
    citation: str
    paper_setting: str
    our_setting: str
    rows: list[Row]
    notes: list[str] = dataclasses.field(default_factory=list)
    figures: list[str] = dataclasses.field(default_factory=list)
    tables: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def _wilson(count: int, total: int) -> tuple[float, float, float]:
    lo, hi = wilson_interval(int(count), int(total))
    lo = 0.0 if count == 0 else lo  # not 2e-19 from rounding
    return (count / total if total else math.nan), lo, hi


def _pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def _frac_ci(count: int, total: int) -> str:
    p, lo, hi = _wilson(count, total)
    return f"{count}/{total} = {_pct(p)} [{_pct(lo)}, {_pct(hi)}]"


def _g(x: float, digits: int = 3) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def _save_csv(out: Path, name: str, frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    write_text(out / name, buf.getvalue())
    return name


def _save_fig(out: Path, name: str, fig) -> str:
    plots.save(fig, out / name)
    return name


# ============================================================================ verdict rules
# Pure functions of numbers, tested on hand-made inputs (tests/test_reproductions.py).


def interval_verdict(low: float, high: float, threshold: float, above: bool = True) -> str:
    """agrees if the whole interval lies on the claimed side of `threshold` (above, or below
    with above=False), disagrees if it lies wholly on the other side, else inconclusive."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "inconclusive"
    if above:
        return "agrees" if low > threshold else "disagrees" if high < threshold else "inconclusive"
    return "agrees" if high < threshold else "disagrees" if low > threshold else "inconclusive"


def verdict_none(spurious: int, not_converged: int, total: int, below: float) -> str:
    """Rule 1a: no spurious minima (worst case counts unconverged seeds as spurious)."""
    upper = wilson_interval(spurious + not_converged, total)[1]
    lower = wilson_interval(spurious, total)[0]
    return "agrees" if upper < below else "disagrees" if lower > below else "inconclusive"


def verdict_rises(ks: Sequence[int], spurious: Sequence[int], totals: Sequence[int],
                  not_converged: Sequence[int], cfg: SpuriousConfig) -> tuple[str, str]:
    """Rule 1b: the spurious fraction rises with k."""
    ks, s, n = np.asarray(ks), np.asarray(spurious), np.asarray(totals)
    nc = np.asarray(not_converged) / n
    if len(ks) < 3:
        return "inconclusive", f"only {len(ks)} values of k"
    frac = s / n
    rho, p = sps.spearmanr(ks, frac)
    lo, hi = wilson_interval(int(s[-1]), int(n[-1]))
    half = (hi - lo) / 2
    p_text = f"p = {p:.2g}" if p > 0 else "p < 1e-16"
    reason = (f"Spearman rho = {rho:.3f} ({p_text}); at k = {ks[-1]} the fraction "
              f"{frac[-1]:.3f} vs half-width {half:.3f}; not converged at most {nc.max():.1%}")
    if nc.max() > cfg.max_not_converged:
        return "inconclusive", reason
    if not np.isfinite(rho) or rho <= 0:
        return "disagrees" if np.isfinite(rho) else "inconclusive", reason
    if rho > cfg.rho_min and p < cfg.p_max and frac[-1] > cfg.ci_factor * half:
        return "agrees", reason
    return "inconclusive", reason


def verdict_overparam(base: tuple[int, int], extra: Sequence[tuple[int, int, int]],
                      factor: float) -> str:
    """Rule 1d. base = (spurious, seeds) at n = k; extra: (spurious, not converged, seeds)
    per n = k + e (pooled over the same k)."""
    _, low0, high0 = _wilson(*base)
    uppers = [wilson_interval(s + c, n)[1] for s, c, n in extra]
    lowers = [wilson_interval(s, n)[0] for s, _, n in extra]
    if all(u < factor * low0 for u in uppers):
        return "agrees"
    if any(lo > 0.5 * high0 for lo in lowers):
        return "disagrees"
    return "inconclusive"


def verdict_noise_grows(rhos_S: np.ndarray, growth_S: np.ndarray, cfg: NoiseConfig) -> str:
    """Rule 2a: B_simple rises as the loss falls (rho per seed, growth last/first per seed)."""
    rho, growth = np.nanmedian(rhos_S), np.asarray(growth_S, float)
    if rho < cfg.rho_max and np.all(growth > cfg.growth_min):
        return "agrees"
    if rho > 0 or np.all(growth <= 1):
        return "disagrees"
    return "inconclusive"


def verdict_same_order(b_crit_T3: np.ndarray, b_simple_T3: np.ndarray, r2_T: np.ndarray,
                       factor: float, r2_min: float) -> str:
    """Rule 2b: B_crit (value, low, high) within `factor` of B_simple (median, min, max)."""
    bc, bs = np.asarray(b_crit_T3, float), np.asarray(b_simple_T3, float)
    if not len(bc) or np.any(np.asarray(r2_T) < r2_min) or not np.all(np.isfinite(bc)) \
            or not np.all(np.isfinite(bs)):
        return "inconclusive"
    ratio = bc[:, 0] / bs[:, 0]
    if np.all((ratio >= 1 / factor) & (ratio <= factor)):
        return "agrees"
    low, high = bc[:, 1] / bs[:, 2], bc[:, 2] / bs[:, 1]
    if np.any((high < 1 / factor) | (low > factor)):
        return "disagrees"
    return "inconclusive"


def log_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y on log x."""
    x, y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    return float(np.polyfit(x, y, 1)[0])


def verdict_regimes(r2: float, b_crit_ci: tuple[float, float], b_range: tuple[float, float],
                    small_slope: float, large_slope: float, increases: int,
                    cfg: RegimesConfig) -> str:
    """Rule 3a: the three regimes."""
    if increases > 0 or not np.isfinite(r2) or r2 < 0.5:
        return "disagrees"
    inside = b_range[0] <= b_crit_ci[0] and b_crit_ci[1] <= b_range[1]
    if r2 >= cfg.r2_min and inside and small_slope <= cfg.small_slope \
            and large_slope >= cfg.large_slope:
        return "agrees"
    return "inconclusive"


def verdict_linear_scaling(b_K: np.ndarray, lr_K: np.ndarray, at_edge_K: np.ndarray,
                           cfg: RegimesConfig) -> tuple[str, float]:
    """Rule 3b on the batch sizes of the first regime: (verdict, slope)."""
    if len(b_K) < 3:
        return "inconclusive", math.nan
    slope = log_slope(b_K, lr_K)
    if np.any(at_edge_K):
        return "inconclusive", slope
    lo, hi = cfg.lr_slope
    rlo, rhi = cfg.lr_slope_reject
    if lo <= slope <= hi:
        return "agrees", slope
    return ("disagrees" if slope < rlo or slope > rhi else "inconclusive"), slope


def verdict_barriers(naive_WP: np.ndarray, aligned_WP: np.ndarray, factor: float) -> str:
    """Rule 5 on (widths, pairs) barriers, widths ascending."""
    naive, aligned = np.asarray(naive_WP, float), np.asarray(aligned_WP, float)
    if aligned[-1].min() >= naive[-1].max() or aligned[-1].min() > aligned[0].max():
        return "disagrees"
    if aligned[-1].max() < factor * naive[-1].min() and \
            np.median(aligned[-1]) < factor * np.median(aligned[0]):
        return "agrees"
    return "inconclusive"


def bootstrap(a: np.ndarray, b: np.ndarray, statistic: Callable, reps: int,
              seed: int = 0) -> tuple[float, float, float]:
    """statistic(a, b) with a percentile bootstrap 95% CI (a and b resampled apart)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    draws = [statistic(rng.choice(a, len(a)), rng.choice(b, len(b))) for _ in range(reps)]
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return float(statistic(a, b)), float(lo), float(hi)


def _ratio_of_medians(a, b):
    return np.median(a) / np.median(b)


def _difference_of_means(a, b):
    return np.mean(a) - np.mean(b)


# ============================================================================ claim 1


def _lr_spurious(cfg: SpuriousConfig, n: int) -> float:
    return cfg.lr / (1.0 + 0.3 * n)


def seeds_for(cfg: SpuriousConfig, k: int) -> int:
    return cfg.seeds if k < cfg.large_k else cfg.large_k_seeds


def steps_for(cfg: SpuriousConfig, k: int) -> int:
    return cfg.steps + cfg.steps_per_k * k


def classify_relu(loss_S: np.ndarray, grad_S: np.ndarray, diverged_S: np.ndarray,
                  cfg: SpuriousConfig) -> np.ndarray:
    """(S,) "global", "spurious" (converged: small gradient, loss clearly > 0),
    "not converged" (everything else) or "diverged"."""
    cls = np.full(len(loss_S), "not converged", dtype=object)
    cls[(loss_S >= cfg.spurious_loss) & (grad_S < cfg.grad_tol)] = "spurious"
    cls[loss_S < cfg.global_tol] = "global"
    cls[diverged_S] = "diverged"
    return cls


def _hessian_check(problem: gdlab.Problem, params_S: np.ndarray, cls: np.ndarray,
                   cfg: SpuriousConfig) -> np.ndarray:
    """(C, 2) smallest and largest Hessian eigenvalue of the first `hessian_seeds` spurious
    endpoints (exact Hessian up to 100 parameters, Lanczos beyond)."""
    idx = np.nonzero(cls == "spurious")[0][: cfg.hessian_seeds]
    if not idx.size:
        return np.zeros((0, 2))
    size = int(np.prod(params_S.shape[1:]))
    return np.asarray(gdlab.landscape.curvature.hessian_extremes(
        problem, jnp.asarray(params_S[idx]), None, max_exact_params=100,
        lanczos_iters=min(size, 60)), np.float64)


def run_relu_setting(cfg: SpuriousConfig, k: int, extra: int, seeds: int,
                     steps: int) -> dict:
    """Train one (k, n = k + extra) setting and classify every seed's endpoint."""
    start = time.perf_counter()
    problem = problems.relu_population(k=k, extra=extra, init_scale=cfg.init_scale)
    n = k + extra
    train_cfg = gdlab.TrainConfig(optimizer="sgd", learning_rate=_lr_spurious(cfg, n),
                                  steps=steps, eval_every=min(cfg.eval_every, steps))
    runs = gdlab.train(problem, train_cfg, seeds=seeds, key=0, progress=False)
    w = np.asarray(runs.params, np.float64)
    v = relu.teacher_weights(k, k)
    loss, grad = relu.loss_float64(w, v), relu.grad_float64(w, v)
    grad_norm = np.linalg.norm(grad.reshape(seeds, -1), axis=1)
    cls = classify_relu(loss, grad_norm, runs.diverged, cfg)
    hess = _hessian_check(problem, np.asarray(runs.params), cls, cfg) \
        if extra == 0 and k in cfg.hessian_ks else np.zeros((0, 2))
    counts = {c: int(np.sum(cls == c)) for c in ("global", "spurious", "not converged",
                                                 "diverged")}
    return {"k": k, "n": n, "extra": extra, "seeds": seeds, "steps": steps,
            "lr": train_cfg.learning_rate, "counts": counts, "loss": loss,
            "grad": grad_norm, "cls": cls, "hessian": hess,
            "seconds": time.perf_counter() - start}


def _relu_frame(settings: list[dict]) -> pd.DataFrame:
    rows = []
    for s in settings:
        c = s["counts"]
        p, lo, hi = _wilson(c["spurious"], s["seeds"])
        spur = s["loss"][s["cls"] == "spurious"]
        rows.append({"k": s["k"], "n": s["n"], "extra": s["extra"], "seeds": s["seeds"],
                     "steps": s["steps"], "lr": s["lr"], **{k.replace(" ", "_"): v
                                                            for k, v in c.items()},
                     "spurious_fraction": p, "ci_low": lo, "ci_high": hi,
                     "spurious_loss_min": float(spur.min()) if spur.size else math.nan,
                     "spurious_loss_median": float(np.median(spur)) if spur.size else math.nan,
                     "seconds": s["seconds"]})
    return pd.DataFrame(rows)


def claim_spurious(cfg: SpuriousConfig, out: Path) -> ClaimResult:
    """Claim 1 (Safran & Shamir 2018)."""
    settings = [run_relu_setting(cfg, k, 0, seeds_for(cfg, k), steps_for(cfg, k))
                for k in cfg.ks]
    for s in settings:
        print(f"    k={s['k']} n={s['n']}: {s['counts']} ({s['seconds']:.0f} s)")
    over = []
    for k in cfg.overparam_ks:
        for e in cfg.extras:
            over.append(run_relu_setting(cfg, k, e, cfg.overparam_seeds, cfg.overparam_steps))
            print(f"    k={k} n={k + e}: {over[-1]['counts']} ({over[-1]['seconds']:.0f} s)")
    frame = _relu_frame(settings + over)
    result = ClaimResult(
        "spurious", "Spurious local minima of two-layer ReLU networks",
        "Safran & Shamir, Spurious local minima are common in two-layer ReLU neural "
        "networks, ICML 2018",
        paper_setting="Student x -> sum_{i<=n} relu(w_i . x) fitting a teacher with k "
        "orthonormal units (v_j = e_j), d = k, x ~ N(0, I), on the closed-form population loss; "
        "gradient descent from Xavier initialisation, 1000 initialisations per k, k = n = 6 .. "
        "20, then n = k + 1 .. ; endpoints checked to be local minima (positive definite "
        "Hessian).",
        our_setting=f"The same loss (`problems.relu_population`, arc-cosine kernel in closed "
        f"form, float32), plain full-batch GD at rate {cfg.lr:g} / (1 + 0.3 n) (about 1.5 / the "
        f"top Hessian eigenvalue), w_i ~ N(0, {cfg.init_scale:g}^2 I / d); k in {list(cfg.ks)} "
        f"with n = k ({cfg.seeds} seeds, {cfg.large_k_seeds} from k = {cfg.large_k} on; "
        f"{cfg.steps} + {cfg.steps_per_k} k steps) and k in {list(cfg.overparam_ks)} with "
        f"n = k + {list(cfg.extras)} ({cfg.overparam_seeds} seeds, {cfg.overparam_steps} steps)."
        f" Endpoints re-evaluated in float64 on the host: global if the loss < "
        f"{cfg.global_tol:g}; spurious if the loss >= {cfg.spurious_loss:g} and the gradient "
        f"norm < {cfg.grad_tol:g}; everything else not converged (reported, never folded into "
        f"either). The Hessians of up to {cfg.hessian_seeds} spurious endpoints at k in "
        f"{list(cfg.hessian_ks)} are checked to be those of minima (the paper checks every "
        "one).",
        rows=[], tables=[_save_csv(out, "spurious.csv", frame)])
    result.rows = _spurious_rows(cfg, settings, over)
    result.figures = _spurious_figures(cfg, settings, over, out)
    result.notes = _spurious_notes(cfg, settings, over, frame)
    return result


def _pooled(settings: list[dict], keys: Sequence[str]) -> dict[str, int]:
    return {key: int(sum(s["counts"][key] if key in s["counts"] else s[key] for s in settings))
            for key in keys}


def _spurious_rows(cfg: SpuriousConfig, settings: list[dict], over: list[dict]) -> list[Row]:
    rules, rows = cfg.rules(), []
    small = [s for s in settings if s["k"] < cfg.small_k]
    if small:
        c = _pooled(small, ("spurious", "not converged", "seeds"))
        verdict = verdict_none(c["spurious"], c["not converged"], c["seeds"], cfg.none_below)
        rows.append(Row("1a. none for k < 6", "spurious minima exist 'once 6 <= k <= 20' "
                        "(abstract: proven for those k); none found below k = 6 (from memory)",
                        f"k in {[s['k'] for s in small]}: spurious "
                        f"{_frac_ci(c['spurious'], c['seeds'])}, not converged "
                        f"{c['not converged']}", verdict, rules["1a"]))
    big = [s for s in settings if s["k"] >= cfg.small_k]
    if big:
        verdict, why = verdict_rises([s["k"] for s in big],
                                     [s["counts"]["spurious"] for s in big],
                                     [s["seeds"] for s in big],
                                     [s["counts"]["not converged"] for s in big], cfg)
        ours = "; ".join(f"k={s['k']}: {_pct(s['counts']['spurious'] / s['seeds'])}"
                         for s in big)
        rows.append(Row("1b. the fraction grows with k", "the probability of hitting them "
                        "is 'quite high, and increasing with the network size' (abstract); "
                        "0.3% at k = 6 (from memory)", f"{ours}. {why}", verdict, rules["1b"]))
        last = big[-1]
        _, lo, hi = _wilson(last["counts"]["spurious"], last["seeds"])
        rows.append(Row(f"1c. a majority by k = {last['k']}", "a majority of "
                        "initialisations by k around 12-20 (from memory)",
                        f"k = {last['k']}: {_frac_ci(last['counts']['spurious'], last['seeds'])}",
                        interval_verdict(lo, hi, 0.5), rules["1c"]))
    rows += _overparam_rows(cfg, settings, over)
    return rows


def _overparam_rows(cfg: SpuriousConfig, settings: list[dict], over: list[dict]) -> list[Row]:
    base_settings = [s for s in settings if s["k"] in cfg.overparam_ks]
    if not over or not base_settings:
        return []
    b = _pooled(base_settings, ("spurious", "seeds"))
    extra, parts = [], [f"n = k: {_frac_ci(b['spurious'], b['seeds'])}"]
    for e in cfg.extras:
        c = _pooled([s for s in over if s["extra"] == e], ("spurious", "not converged", "seeds"))
        extra.append((c["spurious"], c["not converged"], c["seeds"]))
        parts.append(f"n = k + {e}: {_frac_ci(c['spurious'], c['seeds'])} (not converged "
                     f"{c['not converged']})")
    verdict = verdict_overparam((b["spurious"], b["seeds"]), extra, cfg.overparam_factor)
    return [Row("1d. mild over-parameterization removes most", "'mild over-"
                "parameterization appears to drastically reduce such local minima' "
                "(abstract); n = k + 1, k + 2 (from memory)",
                f"pooled over k in {list(cfg.overparam_ks)}: " + "; ".join(parts), verdict,
                cfg.rules()["1d"])]


def _spurious_figures(cfg: SpuriousConfig, settings, over, out: Path) -> list[str]:
    curves = {}
    for e in (0, *cfg.extras):
        group = [s for s in (settings if e == 0 else over) if s["extra"] == e]
        if group:
            w = np.array([_wilson(s["counts"]["spurious"], s["seeds"]) for s in group])
            curves["n = k" if e == 0 else f"n = k + {e}"] = (
                [s["k"] for s in group], w[:, 0], w[:, 1], w[:, 2])
    figs = [_save_fig(out, "spurious_fraction.png", rplots.spurious_fractions(
        np.array(cfg.ks), curves, "seeds of plain GD ending in a spurious local minimum"))]
    show = {f"k={s['k']}, n={s['n']}": s["loss"] for s in settings + over
            if s["k"] in (cfg.ks[0], cfg.small_k, cfg.ks[-1]) or s["extra"] > 0}
    figs.append(_save_fig(out, "spurious_losses.png", rplots.final_loss_split(
        show, cfg.global_tol, cfg.spurious_loss, "final loss (float64) per setting")))
    return figs


def _spurious_notes(cfg: SpuriousConfig, settings, over, frame: pd.DataFrame) -> list[str]:
    every = settings + over
    spur = np.concatenate([s["loss"][s["cls"] == "spurious"] for s in every])
    glob = np.concatenate([s["loss"][s["cls"] == "global"] for s in every])
    table = frame[["k", "n", "seeds", "steps", "global", "spurious", "not_converged",
                   "diverged", "spurious_fraction", "ci_low", "ci_high",
                   "spurious_loss_min", "spurious_loss_median", "seconds"]]
    rows = [[*(_g(v, 4) if isinstance(v, float) else v for v in r)] for r in table.values]
    notes = [markdown_table(list(table.columns), rows)]
    between = sum(int(np.sum((s["loss"] >= cfg.global_tol) & (s["loss"] < cfg.spurious_loss)))
                  for s in every)
    total = sum(s["seeds"] for s in every)
    if glob.size and spur.size:
        notes.append(f"Global endpoints reach float64 losses up to {glob.max():.2g} (median "
                     f"{np.median(glob):.2g}), spurious ones start at {spur.min():.3g} (median "
                     f"{np.median(spur):.3g}); {between} endpoints of {total} have a loss "
                     f"between the thresholds {cfg.global_tol:g} and {cfg.spurious_loss:g} "
                     "(counted as not converged).")
    checks = []
    for s in settings:
        h = s["hessian"]
        if len(h):
            ok = int(np.sum(h[:, 0] >= -cfg.hessian_tol * np.maximum(h[:, 1], 1.0)))
            checks.append(f"k = {s['k']}: {ok} of {len(h)} (smallest eigenvalue "
                          f"{h[:, 0].min():.2g} .. {h[:, 0].max():.2g})")
    if checks:
        notes.append(f"Hessian check of spurious endpoints (a minimum: smallest eigenvalue "
                     f">= -{cfg.hessian_tol:g} x the largest): " + "; ".join(checks) + ".")
    notes.append("float32 cannot resolve the loss below about 1e-5 at k = 20 (three O(k^2) "
                 "kernel sums cancel), so every endpoint's loss and gradient are recomputed in "
                 "float64 NumPy (`relu_population.loss_float64`, `grad_float64`) before it is "
                 "classified; the float32 loss history is only drawn.")
    return notes


# ============================================================================ claim 2


@functools.lru_cache(maxsize=16)
def _mlp(dataset: str, hidden: tuple[int, ...]) -> gdlab.Problem:
    """One Problem per (dataset, widths): claims sharing it share compiled programs."""
    return problems.BUILTINS[dataset](model="mlp", hidden=tuple(hidden), activation="relu")


def _checkpoints(last: int, count: int) -> list[int]:
    return sorted({0, *np.unique(np.geomspace(1, last, count - 1).astype(int)).tolist()})


def _trace_stats(trace) -> tuple[np.ndarray, np.ndarray]:
    """(S,) Spearman rho between loss and B_simple, and B_simple last / first."""
    rhos, growth = [], []
    for s in range(trace.loss.shape[1]):
        b, loss = trace.b_simple[:, s], trace.loss[:, s]
        ok = np.isfinite(b) & np.isfinite(loss)
        rhos.append(sps.spearmanr(loss[ok], b[ok])[0] if ok.sum() >= 3 else math.nan)
        growth.append(b[ok][-1] / b[ok][0] if ok.sum() >= 2 else math.nan)
    return np.array(rhos), np.array(growth)


def claim_noise(cfg: NoiseConfig, out: Path) -> ClaimResult:
    """Claim 2 (McCandlish et al. 2018)."""
    track = gdlab.TrainConfig(optimizer="sgd", learning_rate=cfg.learning_rate,
                              steps=cfg.track_steps, batch_size=cfg.batch_size)
    at = _checkpoints(cfg.track_steps, cfg.checkpoints)
    traces, rows, frames, rules = {}, [], [], cfg.rules()
    for name in cfg.datasets:
        trace = gdlab.track_noise_scale(_mlp(name, cfg.hidden), track, at_steps=at,
                                        seeds=cfg.seeds, method="exact")
        traces[name] = trace
        rhos, growth = _trace_stats(trace)
        first, last = np.median(trace.b_simple[0]), np.median(trace.b_simple[-1])
        rows.append(Row(f"2a. B_simple grows as the loss falls ({name})",
                        "B_simple grows as the loss falls, often by an order of magnitude or "
                        "more (seen by hand on digits: about 50 at init, 2,100 at the end)",
                        f"median B_simple {_g(first)} at step 0 -> {_g(last)} at step "
                        f"{at[-1]} (growth per seed {_g(np.min(growth))}..{_g(np.max(growth))}x;"
                        f" loss {_g(np.median(trace.loss[0]))} -> {_g(np.median(trace.loss[-1]))});"
                        f" median rho(loss, B_simple) = {np.nanmedian(rhos):.3f}",
                        verdict_noise_grows(rhos, growth, cfg), rules["2a"]))
        frames.append(pd.DataFrame({
            "dataset": name, "step": np.repeat(trace.steps, trace.loss.shape[1]),
            "seed": np.tile(trace.seed_ids, len(trace.steps)), "loss": trace.loss.ravel(),
            "b_simple": trace.b_simple.ravel(), "trace_sigma": trace.trace_sigma.ravel(),
            "grad_norm_sq": trace.grad_norm_sq.ravel()}))
    tables = [_save_csv(out, "noise_scale.csv", pd.concat(frames, ignore_index=True))]
    figures = [_save_fig(out, "noise_scale.png", rplots.noise_vs_loss(
        {n: (t.loss, t.b_simple) for n, t in traces.items()}))]
    crit_row, crit_notes, crit_tables, crit_figs = _critical_batch(cfg, traces["digits"], out) \
        if "digits" in traces and cfg.targets else (None, [], [], [])
    result = ClaimResult(
        "noise", "The gradient noise scale grows as the loss falls; B_crit ~ B_simple",
        "McCandlish, Kaplan, Amodei et al., An empirical model of large-batch training, 2018",
        paper_setting="B_simple = tr(Sigma) / |G|^2 estimated along training of many models "
        "(MNIST to Dota); B_crit from steps-to-target at several targets, fitted with "
        "S = S_min (1 + B_crit / B); B_crit ~ B_simple to within an order of magnitude, "
        "both growing as the loss falls.",
        our_setting=f"MLPs {list(cfg.hidden)} relu on {', '.join(cfg.datasets)}; SGD rate "
        f"{cfg.learning_rate:g}, batch {cfg.batch_size}, {cfg.seeds} seeds; B_simple exact from "
        f"every per-example gradient (`gdlab.track_noise_scale`, method='exact') at {len(at)} "
        f"checkpoints 0..{cfg.track_steps}. B_crit: `gdlab.sweep_batch_size` on digits at "
        f"B in {list(cfg.batch_sizes)}, SGD with the rate tuned per B over {list(cfg.rates)}, "
        f"{cfg.sweep_seeds} seeds, one sweep per target training loss {list(cfg.targets)} (the "
        "rate retuned per B and per target, as McCandlish et al. do); "
        "B_simple at each target read off the tracked runs (`NoiseTrace.at_loss`). Small "
        "classifiers on small datasets, not the paper's models.",
        rows=rows + ([crit_row] if crit_row else []), notes=crit_notes,
        figures=figures + crit_figs, tables=tables + crit_tables)
    return result


def at_grid_edge(sweep) -> np.ndarray:
    """(K,) the best rate of each batch size is the smallest or largest of its grid (the
    grid does not bracket it; a one-rate grid brackets nothing)."""
    lr, grid = np.asarray(sweep.learning_rates, float), np.asarray(sweep.rate_grid, float)
    if grid.shape[1] < 2:
        return np.ones(len(lr), bool)
    return (lr <= grid.min(axis=1) * (1 + 1e-9)) | (lr >= grid.max(axis=1) * (1 - 1e-9))


def _crit_at(sweep) -> tuple[tuple[float, float, float], float, np.ndarray]:
    """B_crit (value, 95% CI), its fit's R^2 and the (K,) median steps of one sweep."""
    med = sweep.median("steps")[:, 0]
    try:
        fit = sweep.fit()
    except gdlab.InputError:  # fewer than 3 batch sizes reached the target
        return (math.nan,) * 3, math.nan, med
    return (fit.b_crit, *fit.b_crit_ci), fit.r2_steps, med


def _critical_batch(cfg: NoiseConfig, trace, out: Path):
    """B_crit at each target, one sweep per target (the rate retuned per B and per target),
    against B_simple where the tracked runs reach each target."""
    problem = _mlp("digits", cfg.hidden)
    sgd = gdlab.TrainConfig(optimizer="sgd", learning_rate=cfg.rates[0], steps=cfg.sweep_steps)
    bc, bs, r2, lines, frames, edges = [], [], [], [], [], {}
    for target in cfg.targets:
        sweep = gdlab.sweep_batch_size(problem, sgd, list(cfg.batch_sizes), target,
                                       seeds=cfg.sweep_seeds, learning_rates=list(cfg.rates),
                                       timing=False, progress=False)
        crit, fit_r2, med = _crit_at(sweep)
        at = trace.at_loss(target)
        at = at[np.isfinite(at)]
        simple = (float(np.median(at)), float(at.min()), float(at.max())) if at.size \
            else (math.nan,) * 3
        bc.append(crit)
        bs.append(simple)
        r2.append(fit_r2)
        edges[target] = [int(b) for b in sweep.batch_sizes[at_grid_edge(sweep)]]
        frames.append(pd.DataFrame({"target": target, "batch_size": sweep.batch_sizes,
                                    "learning_rate": sweep.learning_rates,
                                    "median_steps": med, "b_crit": crit[0],
                                    "b_simple": simple[0]}))
        rates = [float(f"{x:.3g}") for x in sweep.learning_rates]
        lines.append(f"target {target:g}: B_crit = {_g(crit[0])} [{_g(crit[1])}, {_g(crit[2])}] "
                     f"(R^2 {_g(fit_r2)}), B_simple = {_g(simple[0])} (seeds {_g(simple[1])}.."
                     f"{_g(simple[2])}), ratio {_g(crit[0] / simple[0])}; best rates per B "
                     f"{rates}, median steps {[float(f'{x:.3g}') for x in med]}")
    bc, bs = np.array(bc), np.array(bs)
    verdict = verdict_same_order(bc, bs, np.array(r2), cfg.same_order, cfg.r2_min)
    ours = "; ".join(f"loss {t:g}: B_crit {_g(c[0])} [{_g(c[1])}, {_g(c[2])}] vs B_simple "
                     f"{_g(s[0])}" for t, c, s in zip(cfg.targets, bc, bs, strict=True))
    row = Row("2b. B_crit is of the order of B_simple (digits)", "B_crit ~ B_simple within an "
              "order of magnitude; both grow as the target loss falls", ours, verdict,
              cfg.rules()["2b"])
    tables = [_save_csv(out, "critical_batch.csv", pd.concat(frames, ignore_index=True))]
    figs = [_save_fig(out, "critical_batch.png", rplots.bcrit_vs_bsimple(
        np.array(cfg.targets), bc, bs, cfg.same_order))] if np.isfinite(bc[:, 0]).any() else []
    unbracketed = {t: e for t, e in edges.items() if e}
    note = ("B_crit against B_simple (digits), one `sweep_batch_size` per target training "
            "loss, the rate tuned per B and per target: " + "; ".join(lines) + ". Best rate at "
            "the edge of the grid (the optimum may lie beyond): "
            + ("; ".join(f"target {t:g}: B = {e}" for t, e in unbracketed.items())
               if unbracketed else "none: the grid brackets every B at every target") + ".")
    return row, [note], tables, figs


# ============================================================================ claim 3


def claim_regimes(cfg: RegimesConfig, out: Path) -> ClaimResult:
    """Claim 3 (Shallue et al. 2019)."""
    problem = _mlp(cfg.dataset, cfg.hidden)
    opt = gdlab.TrainConfig(optimizer="momentum", momentum=cfg.momentum,
                            learning_rate=cfg.rates[0], steps=cfg.steps)
    sweep = gdlab.sweep_batch_size(problem, opt, list(cfg.batch_sizes), cfg.target_test_loss,
                                   seeds=cfg.seeds, learning_rates=list(cfg.rates),
                                   eval_data=problem.test_data, resolution=cfg.resolution,
                                   timing=False, progress=False)
    header, table = sweep.table()
    tables = [_save_csv(out, "regimes.csv", pd.DataFrame(table, columns=header))]
    med = sweep.median("steps")
    grid_lo, grid_hi = sweep.rate_grid.min(axis=1), sweep.rate_grid.max(axis=1)
    at_edge = at_grid_edge(sweep)
    rules = cfg.rules()
    try:
        fit = sweep.fit()
    except gdlab.InputError as err:
        fit = None
        note = f"no fit: {err}"
    b = sweep.batch_sizes.astype(float)
    ok = np.isfinite(med[:, 0])
    rows, notes, figures = [], [markdown_table(header, table)], []
    if fit is not None:
        bo, so = b[ok], med[ok, 0]
        small = log_slope(bo[:2], so[:2]) if len(bo) >= 2 else math.nan
        large = log_slope(bo[-2:], so[-2:]) if len(bo) >= 2 else math.nan
        verdict = verdict_regimes(fit.r2_steps, fit.b_crit_ci, (b.min(), b.max()), small, large,
                                  len(sweep.increases()), cfg)
        lo_r, hi_r = fit.regimes
        rows.append(Row("3a. three regimes of data parallelism", "perfect scaling, then "
                        "diminishing returns, then maximal data parallelism, on every "
                        "workload (boundaries depend on the workload)",
                        f"fit S_min = {_g(fit.s_min)}, B_crit = {_g(fit.b_crit)} "
                        f"[{_g(fit.b_crit_ci[0])}, {_g(fit.b_crit_ci[1])}], R^2 = "
                        f"{fit.r2_steps:.3f}; perfect scaling below B ~ {_g(lo_r)}, maximal "
                        f"parallelism above B ~ {_g(hi_r)}; slopes {small:.2f} (smallest B) and "
                        f"{large:.2f} (largest B)", verdict, rules["3a"]))
        first = ok & (b <= fit.b_crit)
        lin, slope = verdict_linear_scaling(b[first], sweep.learning_rates[first],
                                            at_edge[first], cfg)
        rows.append(Row("3b. best rate grows linearly with B in the first regime",
                        "the optimal rate scales about linearly with B in the perfect-scaling "
                        "regime (Goyal et al.'s rule), less beyond",
                        f"slope of log(best rate) on log(B) over B <= B_crit "
                        f"({[int(x) for x in b[first]]}): {_g(slope)}", lin, rules["3b"]))
        figures.append(_save_fig(out, "regimes_steps.png", plots_batch.steps_to_target(
            {"momentum SGD, rate tuned per B": sweep}, fit,
            title=f"{cfg.dataset} MLP {list(cfg.hidden)}: steps to test loss "
                  f"{cfg.target_test_loss:g}")))
        figures.append(_save_fig(out, "regimes_rates.png", rplots.best_rate_vs_batch(
            b, sweep.learning_rates, grid_lo, grid_hi, lo_r)))
    else:
        rows += [Row("3a. three regimes of data parallelism", "three regimes", note,
                     "inconclusive", rules["3a"]),
                 Row("3b. best rate grows linearly with B in the first regime", "linear",
                     note, "inconclusive", rules["3b"])]
    notes.append(f"The rate grid steps by a factor {cfg.rates[1] / cfg.rates[0]:g}: each best "
                 "rate is known to within that factor, so the fitted slope of 3b is coarse "
                 "(with B stepping by 4x and the rate by 2x, a slope of 1 means two grid steps "
                 "per batch size). With momentum 0.9 the effective rate is 10x the rate shown.")
    edges = [int(x) for x in b[at_edge]]
    notes.append("Best rate at the edge of the grid (the optimum may lie beyond): "
                 + (f"B = {edges}." if edges else "none: the grid brackets every B."))
    return ClaimResult(
        "regimes", "Three regimes of data parallelism",
        "Shallue, Lee, Antognini et al., Measuring the effects of data parallelism on neural "
        "network training, JMLR 2019",
        paper_setting="Steps to a target out-of-sample error against batch size on many "
        "workloads, learning rate and momentum retuned per batch size (quasi-random search), "
        "the best trial per B; curves show perfect scaling, diminishing returns, maximal data "
        "parallelism.",
        our_setting=f"{cfg.dataset} MLP {list(cfg.hidden)} relu; momentum SGD (momentum fixed at "
        f"{cfg.momentum:g}: `sweep_batch_size` tunes only the rate), rate tuned per B over "
        f"{len(cfg.rates)} values {cfg.rates[0]:.3g}..{cfg.rates[-1]:.3g} (factor 2); "
        f"B in {list(cfg.batch_sizes)}, {cfg.seeds} seeds, budget {cfg.steps} steps. The "
        f"target is a test *loss* of {cfg.target_test_loss:g} (eval_data = test set): "
        "`sweep_batch_size` targets a loss, not a metric, so test error cannot be targeted.",
        rows=rows, notes=notes, figures=figures, tables=tables)


# ============================================================================ claim 4


def _sharp_group(problem: gdlab.Problem, cfg: SharpnessConfig, batch: int, steps: int,
                 eval_every: int) -> tuple[dict, gdlab.Runs]:
    """Train one group (Adam, `cfg.seeds` seeds) and measure its minima's sharpness."""
    tc = gdlab.TrainConfig(optimizer="adam", learning_rate=cfg.learning_rate, steps=steps,
                           batch_size=None if batch >= problem.num_data else batch,
                           eval_every=eval_every)
    runs = gdlab.train(problem, tc, seeds=cfg.seeds, key=0, progress=False)
    top = np.asarray(gdlab.curvature.top_eigenvalues(problem, runs.params, k=1))[:, 0]
    eps = gdlab.landscape.epsilon_sharpness(problem, runs.params, key=1,
                                            epsilon=cfg.epsilon)["epsilon_sharpness"]
    return {"batch": batch, "steps": steps, "top": top, "eps": np.asarray(eps),
            "test_acc": runs.final("test/accuracy"), "train_acc": runs.final("train/accuracy"),
            "loss": runs.final_loss}, runs


def _sharper(lb: dict, sb: dict, reps: int) -> tuple[tuple, tuple, str]:
    """Ratios of medians large/small (top eigenvalue, epsilon-sharpness) and rule 4a."""
    top = bootstrap(lb["top"], sb["top"], _ratio_of_medians, reps)
    eps = bootstrap(lb["eps"], sb["eps"], _ratio_of_medians, reps, seed=1)
    return top, eps, interval_verdict(min(top[1], eps[1]), min(top[2], eps[2]), 1.0)


def claim_sharpness(cfg: SharpnessConfig, out: Path) -> ClaimResult:
    """Claim 4 (Keskar et al. 2017)."""
    problem = _mlp("digits", cfg.hidden)
    groups, frames = {}, []
    every = min(cfg.match_every, cfg.steps)
    for label, b in (("small batch", cfg.small_batch), ("large batch", cfg.large_batch)):
        groups[label], runs = _sharp_group(problem, cfg, b, cfg.steps,
                                           cfg.steps if label == "small batch" else every)
        if label == "large batch":
            history, eval_steps = runs.loss_history, runs.eval_steps
    # control 4c: the large batch where its median loss first reaches the small batch's
    target = float(np.median(groups["small batch"]["loss"]))
    below = np.nonzero(np.median(history, axis=0) <= target)[0]
    stop = int(eval_steps[below[0]]) if below.size else cfg.steps
    if 0 < stop < cfg.steps:
        groups["large batch, matched loss"], _ = _sharp_group(problem, cfg, cfg.large_batch,
                                                              stop, stop)
    else:
        groups["large batch, matched loss"] = dict(groups["large batch"], steps=cfg.steps)
    for label, g in groups.items():
        frames.append(pd.DataFrame({"group": label, "batch_size": g["batch"],
                                    "steps": g["steps"], "seed": np.arange(cfg.seeds),
                                    "top_eigenvalue": g["top"], "epsilon_sharpness": g["eps"],
                                    "train_loss": g["loss"], "train_accuracy": g["train_acc"],
                                    "test_accuracy": g["test_acc"]}))
    sb, lb, mb = (groups[k] for k in ("small batch", "large batch",
                                      "large batch, matched loss"))
    top, eps, sharp = _sharper(lb, sb, cfg.bootstrap)
    mtop, meps, msharp = _sharper(mb, sb, cfg.bootstrap)
    gap = bootstrap(sb["test_acc"], lb["test_acc"], _difference_of_means, cfg.bootstrap, seed=2)
    rules = cfg.rules()
    rows = [Row("4a. large batches find sharper minima", "epsilon-sharpness of large-batch "
                "minima several times that of small-batch ones (from memory)",
                f"large/small median top eigenvalue {_g(top[0])} [{_g(top[1])}, {_g(top[2])}], "
                f"epsilon-sharpness {_g(eps[0])} [{_g(eps[1])}, {_g(eps[2])}]", sharp,
                rules["4a"]),
            Row("4b. ... and generalise worse", "large-batch test accuracy lower by a few "
                "points at similar training accuracy (from memory)",
                f"test accuracy small - large {_pct(gap[0], 2)} [{_pct(gap[1], 2)}, "
                f"{_pct(gap[2], 2)}] (small {_pct(np.mean(sb['test_acc']))}, large "
                f"{_pct(np.mean(lb['test_acc']))}; training accuracy "
                f"{_pct(np.mean(sb['train_acc']))} vs {_pct(np.mean(lb['train_acc']))})",
                interval_verdict(gap[1], gap[2], 0.0), rules["4b"]),
            Row("4c. (control) ... at matched training loss", "compared at similar training "
                "accuracy (the paper)",
                f"large batch stopped at step {mb['steps']} (median loss "
                f"{_g(np.median(mb['loss']))} vs small batch {_g(target)}): large/small median "
                "top eigenvalue "
                f"{_g(mtop[0])} [{_g(mtop[1])}, {_g(mtop[2])}], epsilon-sharpness {_g(meps[0])} "
                f"[{_g(meps[1])}, {_g(meps[2])}]", msharp, rules["4c"])]
    names = {"small batch": f"B={cfg.small_batch}\n{cfg.steps} steps",
             "large batch": f"B={cfg.large_batch}\n{cfg.steps} steps",
             "large batch, matched loss": f"B={cfg.large_batch}\n{mb['steps']} steps\n"
                                          "(matched loss)"}
    fig = rplots.two_groups({q: {names[k]: g[f] for k, g in groups.items()}
                             for q, f in (("top Hessian eigenvalue", "top"),
                                          ("epsilon-sharpness", "eps"),
                                          ("training loss", "loss"),
                                          ("test accuracy", "test_acc"))},
                            f"digits MLP {list(cfg.hidden)}, Adam: small vs large batch")
    return ClaimResult(
        "sharpness", "Large batches find sharper minima",
        "Keskar, Mudigere, Nocedal, Smelyanskiy, Tang, On large-batch training for deep "
        "learning: generalization gap and sharp minima, ICLR 2017",
        paper_setting="Six networks (MLPs and CNNs on MNIST, TIMIT, CIFAR), Adam, small batch "
        "256 against large batch 10% of the data, trained to similar training accuracy; "
        "epsilon-sharpness (box 1e-3, L-BFGS-B) and test accuracy.",
        our_setting=f"digits MLP {list(cfg.hidden)} relu, Adam rate {cfg.learning_rate:g}, "
        f"{cfg.steps} steps, batch {cfg.small_batch} against {cfg.large_batch} (full batch: "
        f"larger than the paper's 10%), {cfg.seeds} seeds each (the same seed ids: the same "
        "inits); top Hessian eigenvalue "
        "(`gdlab.curvature.top_eigenvalues`, Lanczos) and epsilon-sharpness "
        f"(`gdlab.landscape.epsilon_sharpness`, box {cfg.epsilon:g}, projected sign-gradient "
        "ascent instead of L-BFGS-B) on the training set.",
        rows=rows, figures=[_save_fig(out, "sharpness.png", fig)],
        tables=[_save_csv(out, "sharpness.csv", pd.concat(frames, ignore_index=True))],
        notes=[_sharpness_note(sb, lb, mb)])


def _sharpness_note(sb: dict, lb: dict, mb: dict) -> str:
    ls, ll = np.median(sb["loss"]), np.median(lb["loss"])
    return (f"Final training loss: small batch median {_g(ls)}, large batch {_g(ll)} "
            f"({_g(ls / ll)}x lower); training accuracy {_pct(np.mean(sb['train_acc']))} and "
            f"{_pct(np.mean(lb['train_acc']))}. Both groups ran the same number of steps "
            "(so the large batch saw many more epochs). The paper compares at similar training "
            "accuracy; at different training losses the comparison is confounded: with "
            "cross-entropy the Hessian shrinks as the loss approaches 0 (the softmax "
            "saturates), so part of a lower-loss minimum's flatness may come from its loss "
            "rather than from its batch size. Control 4c stops the large batch where its "
            f"median loss first reaches the small batch's (step {mb['steps']}; test accuracy "
            f"there {_pct(np.mean(mb['test_acc']))}); its verdict does not replace 4a's.")


# ============================================================================ claim 5


def claim_connectivity(cfg: ConnectivityConfig, out: Path) -> ClaimResult:
    """Claim 5 (Entezari et al. 2022; Ainsworth et al. 2023)."""
    naive, aligned, frames = [], [], []
    for width in cfg.widths:
        problem = _mlp("digits", (width,))
        tc = gdlab.TrainConfig(optimizer="adam", learning_rate=cfg.learning_rate,
                               steps=cfg.steps, batch_size=cfg.batch_size, eval_every=cfg.steps)
        runs = gdlab.train(problem, tc, seeds=2 * cfg.pairs, key=0, progress=False)
        a = jax.tree.map(lambda x: x[0::2], runs.params)
        b = jax.tree.map(lambda x: x[1::2], runs.params)
        naive.append(np.asarray(gdlab.landscape.barrier(problem, a, b, align=False)))
        aligned.append(np.asarray(gdlab.landscape.barrier(problem, a, b, align=True)))
        frames.append(pd.DataFrame({"width": width, "pair": np.arange(cfg.pairs),
                                    "naive_barrier": naive[-1], "aligned_barrier": aligned[-1],
                                    "end_loss_a": runs.final_loss[0::2],
                                    "end_loss_b": runs.final_loss[1::2]}))
        print(f"    width {width}: naive {np.median(naive[-1]):.3g}, aligned "
              f"{np.median(aligned[-1]):.3g}")
    naive, aligned = np.array(naive), np.array(aligned)
    ours = "; ".join(f"width {w}: naive {_g(np.median(n))}, aligned {_g(np.median(a))}"
                     for w, n, a in zip(cfg.widths, naive, aligned, strict=True))
    rows = [Row("5. aligned barrier -> 0 with width, naive does not", "after permutation "
                "(weight matching) the loss barrier falls to about 0 for wide enough MLPs; "
                "without it, barriers stay large", ours + " (medians over pairs)",
                verdict_barriers(naive, aligned, cfg.fall_factor), cfg.rules()["5"])]
    fig = rplots.barriers_vs_width(np.array(cfg.widths), {"naive": naive,
                                                          "weight-matched": aligned})
    ratio = lambda x, y: float(np.median(x)) / max(float(np.median(y)), 1e-12)
    notes = [f"From width {cfg.widths[0]} to {cfg.widths[-1]} the naive barrier falls "
             f"{ratio(naive[0], naive[-1]):.3g}x and the aligned one "
             f"{ratio(aligned[0], aligned[-1]):.3g}x; at width {cfg.widths[-1]} the aligned "
             f"barrier is {ratio(naive[-1], aligned[-1]):.3g}x below the naive one. Where the "
             "naive barrier also falls with width, the claim's 'the naive one does not' holds "
             "only relative to the aligned barrier."]
    return ClaimResult(
        "connectivity", "Linear mode connectivity after permutation",
        "Entezari, Sedghi, Saukh, Neyshabur, The role of permutation invariance in linear mode "
        "connectivity, ICLR 2022; Ainsworth, Hayase, Srinivasa, Git Re-Basin, ICLR 2023",
        paper_setting="Independently trained networks (MLPs on MNIST, CIFAR; VGG, ResNet), "
        "loss barrier on the straight path, naive and after weight matching, against width: "
        "the matched barrier approaches 0 as width grows.",
        our_setting=f"digits MLPs with one hidden relu layer of width {list(cfg.widths)}, Adam "
        f"rate {cfg.learning_rate:g}, batch {cfg.batch_size}, {cfg.steps} steps, {cfg.pairs} "
        "independent pairs per width; training-loss barrier (`gdlab.landscape.barrier`, 25 "
        "points) naive and with align=True (`gdlab.symmetry.align`, weight matching).",
        rows=rows, figures=[_save_fig(out, "barriers_width.png", fig)], notes=notes,
        tables=[_save_csv(out, "barriers_width.csv", pd.concat(frames, ignore_index=True))])


# ============================================================================ claim 6


def claim_stability(cfg: StabilityConfig, out: Path) -> ClaimResult:
    """Claim 6 (Frankle et al. 2020)."""
    problem = _mlp("digits", cfg.hidden)
    tc = gdlab.TrainConfig(optimizer=cfg.optimizer, learning_rate=cfg.learning_rate,
                           momentum=cfg.momentum, steps=cfg.steps, batch_size=cfg.batch_size,
                           eval_every=cfg.steps)
    s = 2 * cfg.pairs
    # pair p: two copies of init p (each pair its own init, so the interval over pairs
    # samples inits too), each copy its own batch order
    same = gdlab.train(problem, tc, seeds=s, key=0, init_seeds=[i // 2 for i in range(s)],
                       data_seeds=list(range(s)), progress=False)
    other = gdlab.train(problem, tc, seeds=list(range(100, 100 + s)), key=0, progress=False)
    results, curves, frames = {}, {}, []
    for label, runs in (("same init", same), ("different init", other)):
        a = jax.tree.map(lambda x: x[0::2], runs.params)
        b = jax.tree.map(lambda x: x[1::2], runs.params)
        alphas, err = gdlab.landscape.path_values(problem, a, b, data=problem.test_data,
                                                  metric="error")
        barrier = gdlab.landscape.barriers.path_barrier(err)
        results[label], curves[label] = barrier, err
        frames.append(pd.DataFrame({"pairs": label, "pair": np.arange(cfg.pairs),
                                    "test_error_barrier": barrier,
                                    "end_error_a": err[:, 0], "end_error_b": err[:, -1]}))
    med, lo, hi = median_ci(results["same init"])
    omed = np.median(results["different init"])
    rows = [Row("6. stable to SGD noise from initialisation", "small networks (LeNet on "
                "MNIST) have error barrier ~0 between copies from the same init (stable: < "
                "2%), from initialisation on",
                f"median test-error barrier, same init {_pct(med, 2)} [{_pct(lo, 2)}, "
                f"{_pct(hi, 2)}] over {cfg.pairs} pairs (different inits: {_pct(omed, 2)})",
                interval_verdict(lo, hi, cfg.stable_below, above=False), cfg.rules()["6"])]
    ends = float(np.median(curves["same init"][:, [0, -1]]))
    fig = rplots.paths(alphas, curves, "test error", ends + cfg.stable_below,
                       f"same-init ends + {cfg.stable_below:.0%} (stability threshold)",
                       f"digits MLP {list(cfg.hidden)}: test error on the path between copies")
    return ClaimResult(
        "stability", "Stability to SGD noise",
        "Frankle, Dziugaite, Roy, Carbin, Linear mode connectivity and the lottery ticket "
        "hypothesis, ICML 2020",
        paper_setting="Two copies of a network from the same initialisation trained with "
        "different SGD noise (batch order, augmentation); the test-error barrier on the "
        "straight path; LeNet on MNIST is stable (barrier ~0) from initialisation, larger "
        "networks only after some training.",
        our_setting=f"digits MLP {list(cfg.hidden)} relu, {cfg.optimizer} rate "
        f"{cfg.learning_rate:g} (momentum {cfg.momentum:g}), batch {cfg.batch_size}, {cfg.steps} "
        f"steps; {cfg.pairs} pairs, each of two copies of its own init (`gdlab.train(..., "
        "init_seeds=[0, 0, 1, 1, ...], data_seeds=[0, 1, 2, 3, ...])`: within a pair only the "
        "batch order differs; no augmentation); test-error "
        "barrier (`gdlab.landscape.path_values`, metric='error', 25 points); control: pairs "
        "from different inits.",
        rows=rows, figures=[_save_fig(out, "stability_paths.png", fig)],
        tables=[_save_csv(out, "stability.csv", pd.concat(frames, ignore_index=True))])


# ============================================================================ driver


# The gdlab names each claim needs (being built alongside this study): a claim whose
# names are missing is reported "not run" instead of failing the study.
NEEDS = {"spurious": ("problems.relu_population", "landscape.curvature.hessian_extremes"),
         "noise": ("track_noise_scale", "sweep_batch_size"),
         "regimes": ("sweep_batch_size",),
         "sharpness": ("curvature.top_eigenvalues", "landscape.epsilon_sharpness"),
         "connectivity": ("landscape.barrier", "symmetry.align"),
         "stability": ("landscape.path_values", "landscape.barriers.path_barrier")}
RUNNERS = {"spurious": (claim_spurious, "spurious"), "noise": (claim_noise, "noise"),
           "regimes": (claim_regimes, "regimes"), "sharpness": (claim_sharpness, "sharpness"),
           "connectivity": (claim_connectivity, "connectivity"),
           "stability": (claim_stability, "stability")}


def missing_api(names: Sequence[str]) -> list[str]:
    """The dotted gdlab names that do not exist (yet)."""
    gone = []
    for name in names:
        obj = gdlab
        for part in name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                gone.append(f"gdlab.{name}")
                break
    return gone


def _not_run(key: str, why: str) -> ClaimResult:
    return ClaimResult(key, key, "-", "-", "-", [Row(key, "-", why, "not run", why)])


def run_claim(key: str, config: Config, out: Path) -> ClaimResult:
    """One claim, or a "not run" result when its API is missing."""
    gone = missing_api(NEEDS[key])
    if gone:
        return _not_run(key, f"needs {', '.join(gone)}, which does not exist yet")
    fn, field = RUNNERS[key]
    start = time.perf_counter()
    result = fn(getattr(config, field), out)
    result.seconds = time.perf_counter() - start
    return result


def run(config: Config, out=None) -> Path:
    """Run every claim of `config.claims` and write the report; returns the directory."""
    out = study_dir("reproductions", out)
    start = time.perf_counter()
    results = []
    for key in CLAIMS:
        if key not in config.claims:
            results.append(_not_run(key, "left out of the smoke run (tests/test_reproductions"
                                    ".py runs it)" if config.smoke else
                                    "left out of this run (`Config.claims`)"))
            continue
        print(f"  claim {key} ...", flush=True)
        try:
            results.append(run_claim(key, config, out))
        except (AttributeError, ImportError, TypeError) as err:  # an API still changing
            if config.smoke:  # the tests: a bug, not a missing API
                raise
            traceback.print_exc()
            results.append(_not_run(key, f"the API raised {type(err).__name__}: {err}"))
        print(f"  claim {key}: " + ", ".join(f"{r.claim.split('.')[0]} {r.verdict}"
                                             for r in results[-1].rows)
              + f" ({results[-1].seconds:.0f} s)", flush=True)
    rows = [r for res in results for r in res.rows]
    _save_fig(out, "verdicts.png", rplots.verdict_bars([r.claim for r in rows],
                                                       [r.verdict for r in rows]))
    _save_csv(out, "verdicts.csv", pd.DataFrame([dataclasses.asdict(r) for r in rows]))
    write_text(out / "report.md", _report(config, results, time.perf_counter() - start))
    print(f"reproductions study written to {out}")
    return out


def _report(config: Config, results: list[ClaimResult], seconds: float) -> str:
    rows = [r for res in results for r in res.rows]
    parts = [
        "# Reproductions of published claims" + (" (smoke)" if config.smoke else ""),
        "Each claim is checked in gdlab's own (smaller) setting, with many seeds. The verdict "
        "of each claim follows a rule fixed in the study's config before the run (listed "
        "below with each claim and in `get_config`): *agrees*, *disagrees* or "
        "*inconclusive*. A disagreement is a result, reported as it came out. Quotes marked "
        "(abstract) were checked against Safran & Shamir's abstract; every other number or "
        "statement of a paper is quoted from memory and was not checked against it here.",
        markdown_table(["claim", "paper", "gdlab", "verdict"],
                       [[r.claim, r.paper, r.ours, f"**{r.verdict}**"] for r in rows]),
        f"Total time: {seconds / 60:.1f} min (load average {os.getloadavg()[0]:.1f} at the "
        "end, on a machine others share). Tidy data: `verdicts.csv` and one CSV per claim; "
        "`verdicts.png` summarises.",
    ]
    for res in results:
        parts += _section(res)
    return "\n\n".join(parts) + "\n"


def _section(res: ClaimResult) -> list[str]:
    if res.rows and res.rows[0].verdict == "not run":
        return [f"## {res.title}: not run", res.rows[0].rule]
    out = [f"## {res.title}", f"*{res.citation}.* ({res.seconds:.0f} s)",
           f"**Paper's setting.** {res.paper_setting}",
           f"**gdlab's setting (how it differs).** {res.our_setting}"]
    for r in res.rows:
        out.append(f"**{r.claim}** — paper: {r.paper}. gdlab: {r.ours}. Rule (fixed before "
                   f"the run): {r.rule} Verdict: **{r.verdict}**.")
    out += res.notes
    if res.figures:
        out.append("Figures: " + ", ".join(f"`{f}`" for f in res.figures)
                   + ("; data: " + ", ".join(f"`{t}`" for t in res.tables) if res.tables
                      else "") + ".")
    return out


if __name__ == "__main__":
    study_main("reproductions", __doc__, get_config, run)
