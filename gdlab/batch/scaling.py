"""The steps-to-target model of McCandlish et al. (2018) and medians with intervals.

`fit_scaling` fits S = S_min (1 + B_noise / B) (equivalently E = E_min (1 + B / B_noise)) to
measured steps; B_crit = E_min / S_min. `median_ci` gives a distribution-free interval for
a median of censored values (never reached = +inf).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import optimize

from gdlab._checks import InputError

# A regime boundary is where S(B) is within 25% of one of its asymptotes (S_min B_noise / B
# for small B, S_min for large B): B = B_crit / 4 and B = 4 B_crit.
REGIME_FACTOR = 4.0


@dataclasses.dataclass(frozen=True, eq=False)
class ScalingFit:
    """S(B) = S_min (1 + B_noise / B), E(B) = B S(B) = E_min (1 + B / B_noise), fitted.

    In log space the two models have the same residuals (log E = log B + log S), so one
    least-squares fit of log S gives both; B_crit = E_min / S_min = B_noise.

    Attributes:
      s_min, e_min, b_crit: fitted minimum steps, minimum examples, critical batch size.
      s_min_ci, e_min_ci, b_crit_ci: their confidence intervals (t-based, in log space).
      r2_steps, r2_examples: R^2 of log S and of log E against the fit.
      confidence: the intervals' confidence level.
      batch_sizes: (K,) the batch sizes fitted; steps: (K,) the steps fitted.
    """

    s_min: float
    e_min: float
    b_crit: float
    s_min_ci: tuple[float, float]
    e_min_ci: tuple[float, float]
    b_crit_ci: tuple[float, float]
    r2_steps: float
    r2_examples: float
    confidence: float
    batch_sizes: np.ndarray
    steps: np.ndarray

    def steps_at(self, batch_size: Any) -> np.ndarray:
        """Predicted steps to target at `batch_size`."""
        return self.s_min * (1 + self.b_crit / np.asarray(batch_size, np.float64))

    def examples_at(self, batch_size: Any) -> np.ndarray:
        """Predicted examples to target at `batch_size`."""
        return self.e_min * (1 + np.asarray(batch_size, np.float64) / self.b_crit)

    @property
    def regimes(self) -> tuple[float, float]:
        """(B_crit / 4, 4 B_crit): perfect scaling below, maximal data parallelism above."""
        return self.b_crit / REGIME_FACTOR, self.b_crit * REGIME_FACTOR

    def summary(self) -> dict[str, Any]:
        ci = lambda x: [float(x[0]), float(x[1])]
        return {"s_min": self.s_min, "s_min_ci": ci(self.s_min_ci), "e_min": self.e_min,
                "e_min_ci": ci(self.e_min_ci), "b_crit": self.b_crit,
                "b_crit_ci": ci(self.b_crit_ci), "r2_steps": self.r2_steps,
                "r2_examples": self.r2_examples, "confidence": self.confidence}


def fit_scaling(batch_sizes: Any, steps: Any, confidence: float = 0.95) -> ScalingFit:
    """Fit S = S_min (1 + B_noise / B) to measured steps-to-target (least squares in log S).

    Args:
      batch_sizes: (K,) batch sizes.
      steps: (K,) steps to target at each (e.g. the median over seeds); points that are
        not finite and positive are left out.
      confidence: level of the parameter intervals (t distribution, K - 2 dof).

    Returns:
      A `ScalingFit`; S_min, E_min and B_crit = E_min / S_min with intervals, and R^2.

    Example:
      >>> fit = fit_scaling([1, 4, 16, 64, 256], [1010, 260, 72, 25, 12])
      >>> round(fit.s_min, 1), round(fit.b_crit), round(fit.r2_steps, 3)
      (8.3, 123, 1.0)
    """
    b, s = np.asarray(batch_sizes, np.float64), np.asarray(steps, np.float64)
    if b.shape != s.shape or b.ndim != 1:
        raise InputError(f"batch_sizes and steps must be 1-D of the same length, got shapes "
                         f"{b.shape} and {s.shape}")
    keep = np.isfinite(s) & (s > 0) & (b > 0)
    if keep.sum() < 3:
        raise InputError(f"fit_scaling needs at least 3 batch sizes with finite, positive steps "
                         f"to target; got {int(keep.sum())} (steps {s.tolist()})")
    b, s = b[keep], s[keep]
    model = lambda bb, log_s_min, log_b_noise: log_s_min + np.log1p(np.exp(log_b_noise) / bb)
    p0 = _initial_guess(b, s)
    bounds = ([-np.inf, math.log(b.min()) - 12], [np.inf, math.log(b.max()) + 12])
    theta, cov = optimize.curve_fit(model, b, np.log(s), p0=p0, bounds=bounds)
    resid = np.log(s) - model(b, *theta)
    dof = len(b) - 2
    from scipy import stats as sps  # here: importing it takes about a second
    half = sps.t.ppf(0.5 + confidence / 2, dof) if dof > 0 else np.inf
    se = np.sqrt(np.clip(np.diag(cov), 0, np.inf)) if np.all(np.isfinite(cov)) \
        else np.full(2, np.inf)
    se_e = math.sqrt(max(cov[0, 0] + cov[1, 1] + 2 * cov[0, 1], 0.0)) \
        if np.all(np.isfinite(cov)) else np.inf
    interval = lambda centre, err: (float(np.exp(centre - half * err)),
                                    float(np.exp(centre + half * err)))
    r2 = lambda y: 1.0 - float(np.sum(resid**2) / max(np.sum((y - y.mean()) ** 2), 1e-300))
    return ScalingFit(
        s_min=float(np.exp(theta[0])), e_min=float(np.exp(theta[0] + theta[1])),
        b_crit=float(np.exp(theta[1])), s_min_ci=interval(theta[0], se[0]),
        e_min_ci=interval(theta[0] + theta[1], se_e), b_crit_ci=interval(theta[1], se[1]),
        r2_steps=r2(np.log(s)), r2_examples=r2(np.log(s * b)), confidence=confidence,
        batch_sizes=b, steps=s)


def _initial_guess(b: np.ndarray, s: np.ndarray) -> list[float]:
    """Start from the linear fit S = a + c / B (a = S_min, c = S_min B_noise)."""
    a, c = np.linalg.lstsq(np.stack([np.ones_like(b), 1 / b], axis=1), s, rcond=None)[0]
    if a > 0 and c > 0:
        return [math.log(a), math.log(c / a)]
    return [math.log(s.min()), math.log(np.sqrt(b.min() * b.max()))]


def median_ci(values_S: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): distribution-free order-statistic interval for the median.

    Works with censored values (never reached = +inf). With few values the interval is
    the full range.
    """
    x = np.sort(np.asarray(values_S, np.float64))
    n = len(x)
    from scipy import stats as sps
    k = int(sps.binom.ppf((1 - confidence) / 2, n, 0.5))  # x[k] .. x[n-1-k] covers
    k = min(max(k - 1, 0), (n - 1) // 2)
    return float(np.median(x)), float(x[k]), float(x[n - 1 - k])


