"""Interval estimates for the decision: arrays in, numbers out (pure; no gate types, no random numbers).

Every interval here is a pair of ONE-SIDED bounds at `level`: `lower` is a `level` lower confidence bound
and `upper` a `level` upper bound, so [lower, upper] is a two-sided interval of coverage 2*level - 1 (a
0.95 level gives a 90% interval). That is what a one-sided test at 1 - level needs (the TOST convention).

- Means (mean IoU, a mean-IoU difference) use STUDENT'S t AT A CALIBRATED TAIL: the bound is
  mean -/+ t_{1 - alpha/CALIBRATION, n-1} * s / sqrt(n), alpha = 1 - level. Per-image IoU differences are
  skewed and heavy-tailed (a few images fail badly), so a t or bootstrap bound at the nominal tail covers
  less than `level`: bench:decision_quality measured P(go | true regression = margin) of 0.10-0.21 for the
  expanded percentile bootstrap and Student's t at alpha between n = 5 and 25 on the demo's test corpus.
  Dividing the tail by CALIBRATION = 10 brings each bound's coverage there to the level from n = 5 on
  (the benchmark prints every candidate method's table; see bench/README.md), and costs little power:
  a candidate with no true regression still gets a go 95% of the time at n = 25. It is analytic: no resampling, so
  no Monte Carlo error (the bounds are identical for every seed and run key) and 10,000 images cost microseconds.
  No data-driven bound can promise `level` for every population: a rare catastrophic miss that the sample
  happens not to contain is invisible to it. eval.measures.MIN_IMAGES says from how many images a
  criterion on a mean can pass at all.
- Proportions (pass rates) use the Clopper-Pearson (exact binomial) bounds,
  `scipy.stats.binomtest(...).proportion_ci(method="exact")`: coverage at least `level` at every n and
  every true rate (tested by enumerating the binomial), which the Wilson score interval does not give.

Conventions (tested): n = 0 gives no interval (None; there is nothing to estimate and the criterion is
insufficient data). n = 1, and a mean whose values are all equal, give the whole range of the statistic
(`support`): a sample without spread says nothing about the spread, and a tail of rare misses is exactly
what such a sample cannot show. Bounds are clipped to `support`. Ties between a bound and a threshold are
the caller's: the decision counts a bound equal to the threshold as within it, like the point rule's
inclusive thresholds. No NaN is ever returned.
"""

import dataclasses
import math

import numpy as np
from scipy import stats

STUDENT = "student t, calibrated tail"
EXACT_BINOMIAL = "clopper-pearson"
# The mean's tail is alpha / CALIBRATION (0.005 at level 0.95): measured, not derived (module docstring).
CALIBRATION = 10.0


@dataclasses.dataclass(frozen=True)
class Interval:
    lower: float
    upper: float
    level: float  # confidence of each one-sided bound
    method: str


def mean_bounds(columns, level, support=(0.0, 1.0)):
    """One-sided `level` bounds on the mean of each row of `columns` (k, n): a list of k Interval.

    None for every column when n == 0; `support` (one (low, high) or one per column) for a column with
    n == 1 or no spread. Columns are independent: a bound depends on its own values only.

    Example:
        >>> [round(b, 4) for b in dataclasses.astuple(mean_bounds([[0.9456, 0.9215]], 0.95)[0])[:2]]
        [0.1665, 1.0]
    """
    columns = np.atleast_2d(np.asarray(columns, dtype=np.float64))
    k, n = columns.shape
    if n == 0:
        return [None] * k
    support = np.broadcast_to(np.asarray(support, dtype=np.float64), (k, 2))
    if n == 1:
        return [Interval(float(lo), float(hi), level, STUDENT) for lo, hi in support]
    mean, sd = columns.mean(axis=-1), columns.std(axis=-1, ddof=1)
    half = stats.t.ppf(1 - (1 - level) / CALIBRATION, n - 1) * sd / math.sqrt(n)
    spread = columns.max(axis=-1) > columns.min(axis=-1)  # exact: float noise in sd cannot fake a spread
    lower = np.where(spread, np.maximum(mean - half, support[:, 0]), support[:, 0])
    upper = np.where(spread, np.minimum(mean + half, support[:, 1]), support[:, 1])
    return [Interval(float(lo), float(hi), level, STUDENT) for lo, hi in zip(lower, upper)]


def proportion_bounds(successes, n, level):
    """One-sided `level` Clopper-Pearson bounds on a proportion; None when n == 0."""
    if n == 0:
        return None
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=2 * level - 1, method="exact")
    return Interval(float(ci.low), float(ci.high), level, EXACT_BINOMIAL)


def images_to_decide(n, observed, bound, threshold):
    """About how many images would put `bound` (now on the threshold's side of `observed`) past `threshold`.

    At the observed spread a bound's distance from the mean shrinks like 1/sqrt(n), so n' = n * (distance
    of the bound / distance of the threshold)^2 (slightly high for tiny n, where t quantiles also shrink).
    None when the observed value sits on the threshold (no number of images separates them).
    """
    gap = abs(threshold - observed)
    if gap == 0:
        return None
    return max(n + 1, math.ceil(n * (abs(bound - observed) / gap) ** 2 - 1e-9))  # 1e-9: float noise


def miss_p_value(observed, bound, level, threshold):
    """One-sided p-value that the true value is beyond `threshold`, on the side where `observed` lies.

    Normal approximation read off the interval: the standard error is the distance from `observed` to
    `bound` (the bound on the threshold's side) over z_level. Used to order verdicts for Holm's correction.
    A zero-width interval gives 0 when `observed` is strictly beyond the threshold, else 1.
    """
    se = abs(observed - bound) / stats.norm.ppf(level)
    gap = abs(observed - threshold)
    if se == 0:
        return 0.0 if gap > 0 else 1.0
    return float(stats.norm.sf(gap / se))
