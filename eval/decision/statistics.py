"""Interval estimates for the decision: arrays in, numbers out (pure; no gate types).

Every interval here is a pair of ONE-SIDED bounds at `level`: `lower` is a `level` lower confidence bound
and `upper` a `level` upper bound, so [lower, upper] is a two-sided interval of coverage 2*level - 1 (a
0.95 level gives a 90% interval). That is what a one-sided test at 1 - level needs (the TOST convention).

- Means (mean IoU, a mean-IoU difference) use the EXPANDED PERCENTILE bootstrap (Hesterberg 2015, "What
  teachers should know about the bootstrap", section 6): a percentile bootstrap whose tail probability is
  narrowed from alpha to alpha' = Phi(sqrt(n/(n-1)) * t_{alpha, n-1}). The plain percentile interval is
  too narrow for small n (a 0.95 bound from 5 images covers about 89% of the time); the expansion gives
  it the width of Student's t interval while keeping the bootstrap's skewness. Up to EXACT_MAX_N images
  the bootstrap distribution is enumerated exactly (no Monte Carlo error); above, `bootstrap_mean_bounds`
  is exactly `scipy.stats.bootstrap(..., paired=True, method="percentile", confidence_level=1 - 2*alpha',
  batch=chunk_rows(n))` with the same generator (tested), vectorised over several columns that share one
  resample of image ids (a paired bootstrap: rembg and candidate values of an image stay together).
- Proportions (pass rates) use the Wilson score interval, `scipy.stats.binomtest(...).proportion_ci`.

Conventions (tested): n = 0 gives no interval (None; there is nothing to estimate and the criterion is
insufficient data). n = 1 gives the whole range of the statistic (`support`): one image says nothing about
spread. All-equal values give a zero-width interval at that value (a bootstrap cannot see spread that the
sample does not show; the criteria's min_images is the guard against tiny samples). Ties between a bound
and a threshold are the caller's: the decision counts a bound equal to the threshold as within it, like
the point rule's inclusive thresholds. No NaN is ever returned.
"""

import dataclasses
import functools
import hashlib
import itertools
import math

import numpy as np
from scipy import special, stats

BOOTSTRAP = "expanded percentile bootstrap"
WILSON = "wilson score"
# Resample count: enough that each bound's Monte Carlo standard error is at most MC_TARGET (half a unit of
# the 4th decimal), from the usual quantile-error approximation; clamped to [MIN, MAX] resamples.
MC_TARGET = 5e-5
_SKEW_ALLOWANCE = 2.0  # the normal approximation underestimates the error of skewed IoU data ~2x (measured)
MIN_RESAMPLES = 2_000
MAX_RESAMPLES = 1_000_000
MAX_DRAWS = 10_000_000  # resamples x images per group: ~0.1 s; very large, very spread groups trade MC error for time
EXACT_MAX_N = 10  # up to here the bootstrap distribution is enumerated exactly (C(19, 10) = 92,378 resamples)
CHUNK_ELEMENTS = 1 << 20  # image draws per chunk: memory stays ~8 MB per column whatever n is


@dataclasses.dataclass(frozen=True)
class Interval:
    lower: float
    upper: float
    level: float  # confidence of each one-sided bound
    method: str


def seed_for(run_key, *labels):
    """A resampling seed from the run key and what is resampled: same run, same numbers, on any machine.

    Each group gets its own stream, so an interval does not depend on which other groups exist or on
    the order they are computed in (shardings, classes added to the taxonomy).
    """
    text = "\x1f".join((str(run_key), *map(str, labels)))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def expanded_alpha(alpha, n):
    """Hesterberg's expanded tail probability for a percentile bootstrap of a mean of n values (n >= 2)."""
    return float(special.ndtr(math.sqrt(n / (n - 1)) * stats.t.ppf(alpha, n - 1)))


def resample_count(spread, n, tail):
    """Resamples so each `tail`-quantile of the bootstrap mean has Monte Carlo s.e. <= MC_TARGET.

    The quantile's standard error is sqrt(p(1-p)/B) / f(q), with f the bootstrap distribution's density at
    the quantile, taken as normal with s.d. spread/sqrt(n). Cost B*n is then about spread^2 / MC_TARGET^2
    whatever n is; it is capped at MAX_DRAWS draws per group (and at least MIN_RESAMPLES resamples), which
    binds only for large, widely spread groups (bench:decision_quality prints the resulting error).
    """
    sd = spread / math.sqrt(n)
    if sd == 0:
        return MIN_RESAMPLES
    factor = math.sqrt(tail * (1 - tail)) / stats.norm.pdf(stats.norm.ppf(tail))
    wanted = math.ceil((_SKEW_ALLOWANCE * factor * sd / MC_TARGET) ** 2 / 1000) * 1000
    return int(max(MIN_RESAMPLES, min(wanted, MAX_RESAMPLES, MAX_DRAWS // n // 1000 * 1000)))


def chunk_rows(n):
    """Resamples drawn per chunk (a function of n only, so the random stream never depends on the machine)."""
    return max(1, CHUNK_ELEMENTS // n)


@functools.lru_cache(maxsize=EXACT_MAX_N)
def _multisets(n):
    """Every distinct bootstrap resample of n positions: (counts (M, n), probabilities (M,)), M = C(2n-1, n)."""
    draws = np.array(list(itertools.combinations_with_replacement(range(n), n)), dtype=np.int64)
    counts = np.zeros((len(draws), n), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(draws)), n), draws.ravel()), 1)
    log_p = special.gammaln(n + 1) - special.gammaln(counts + 1.0).sum(axis=1) - n * math.log(n)
    return counts, np.exp(log_p)


def _lower_quantile(values, probabilities, tail):
    """Smallest value whose cumulative probability reaches `tail` (the inverse CDF)."""
    order = np.argsort(values, kind="stable")
    cdf = np.cumsum(probabilities[order])
    return values[order][min(int(np.searchsorted(cdf, tail * cdf[-1] - 1e-12)), len(values) - 1)]


def exact_bounds(columns, tail):
    """(lower, upper) arrays from the EXACT bootstrap distribution of each column's mean (n <= EXACT_MAX_N).

    Every multiset of n draws with its multinomial probability, so no Monte Carlo error at all; the bounds
    are the `tail` and 1 - `tail` quantiles (inverse CDF from each side, so reflecting the data reflects them).
    """
    counts, probabilities = _multisets(columns.shape[-1])
    lower, upper = [], []
    for column in columns:
        means = (counts * column).sum(axis=1) / columns.shape[-1]  # elementwise, no BLAS: thread-independent
        lower.append(_lower_quantile(means, probabilities, tail))
        upper.append(-_lower_quantile(-means, probabilities, tail))
    return np.array(lower), np.array(upper)


def bootstrap_means(columns, n_resamples, seed):
    """Bootstrap distribution of each column's mean, (k, n_resamples), from ONE resample of the n positions.

    Draws exactly as scipy.stats.bootstrap does with `batch=chunk_rows(n)` (the same generator calls), so
    the two agree to rounding.
    """
    columns = np.asarray(columns, dtype=np.float64)
    n = columns.shape[-1]
    rng = np.random.default_rng(seed)
    rows = chunk_rows(n)
    out = np.empty((columns.shape[0], n_resamples))
    for start in range(0, n_resamples, rows):
        size = min(rows, n_resamples - start)
        draws = rng.integers(0, n, (size, n))
        for row, column in enumerate(columns):  # one 1-D gather per column: ~20x faster than columns[:, draws]
            out[row, start:start + size] = column[draws].mean(axis=-1)
    return out


def bootstrap_mean_bounds(columns, level, seed, support=(0.0, 1.0), n_resamples=None):
    """One-sided `level` bounds on the mean of each row of `columns` (k, n) from a shared (paired) resample.

    Returns a list of k Interval (None for every column when n == 0). Up to EXACT_MAX_N images the
    bootstrap distribution is enumerated exactly (`exact_bounds`); above, `n_resamples` defaults to
    `resample_count` at the largest column spread; `support` is the statistic's range, one (low, high) or
    one per column, returned for n == 1.
    """
    columns = np.atleast_2d(np.asarray(columns, dtype=np.float64))
    k, n = columns.shape
    if n == 0:
        return [None] * k
    if n == 1:
        return [Interval(float(lo), float(hi), level, BOOTSTRAP) for lo, hi in np.broadcast_to(support, (k, 2))]
    tail = expanded_alpha(1 - level, n)
    if n <= EXACT_MAX_N and n_resamples is None:
        bounds = exact_bounds(columns, tail)
    else:
        spread = float(columns.std(axis=-1).max())
        distribution = bootstrap_means(columns, n_resamples or resample_count(spread, n, tail), seed)
        bounds = np.quantile(distribution, [tail, 1 - tail], axis=-1)
    # Clip to the sample's range: an average of sample values cannot leave it (quantile interpolation
    # can, by an ulp), and a zero-spread column then gives exactly its value.
    low, high = columns.min(axis=-1), columns.max(axis=-1)
    lower, upper = np.clip(bounds[0], low, high), np.clip(bounds[1], low, high)
    return [Interval(float(lo), float(hi), level, BOOTSTRAP) for lo, hi in zip(lower, upper)]


def wilson_bounds(successes, n, level):
    """One-sided `level` Wilson score bounds on a proportion; None when n == 0."""
    if n == 0:
        return None
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=2 * level - 1, method="wilson")
    return Interval(float(ci.low), float(ci.high), level, WILSON)


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
