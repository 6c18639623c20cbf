"""Interval estimates against scipy on known data, and their conventions (n = 0, n = 1, no spread, ties)."""

import itertools
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from eval.decision import statistics as st
from tests.support import REPO

LEVEL = 0.95


def scipy_paired_bounds(columns, level, seed, n_resamples):
    """scipy.stats.bootstrap's percentile interval at the expanded tail, drawing as the fast path does."""
    n = columns.shape[-1]
    tail = st.expanded_alpha(1 - level, n)
    result = stats.bootstrap((np.arange(n),), lambda i, axis=-1: columns[:, i].mean(axis=-1), vectorized=True,
                             method="percentile", confidence_level=1 - 2 * tail, n_resamples=n_resamples,
                             batch=st.chunk_rows(n), rng=np.random.default_rng(seed))
    return result.confidence_interval


@pytest.mark.parametrize("n", [2, 5, 24, 300])
def test_paired_bootstrap_equals_scipy(n):
    rng = np.random.default_rng(n)
    rembg, candidate = rng.random(n), rng.random(n)
    columns = np.stack([rembg - candidate, candidate])
    ours = st.bootstrap_mean_bounds(columns, LEVEL, seed=7, n_resamples=3000)
    low, high = scipy_paired_bounds(columns, LEVEL, 7, 3000)
    for k, interval in enumerate(ours):
        assert (interval.lower, interval.upper) == pytest.approx((low[k], high[k]), abs=1e-12)
        assert (interval.level, interval.method) == (LEVEL, st.BOOTSTRAP)


def test_small_samples_use_the_exact_bootstrap_distribution():
    """n <= EXACT_MAX_N: every resample enumerated; equal to brute force over all n^n index tuples, and to
    scipy's Monte Carlo bootstrap up to its Monte Carlo error."""
    x = np.array([0.91, 0.62, 0.97, 0.88, 0.75])
    tail = st.expanded_alpha(1 - LEVEL, 5)
    ours = st.bootstrap_mean_bounds(x, LEVEL, seed=0)[0]
    brute = np.sort([x[list(t)].mean() for t in itertools.product(range(5), repeat=5)])
    k = math.ceil(tail * len(brute)) - 1  # inverse CDF from each side
    assert (ours.lower, ours.upper) == pytest.approx((brute[k], brute[::-1][k]), abs=1e-12)
    assert ours == st.bootstrap_mean_bounds(x, LEVEL, seed=99)[0]  # no Monte Carlo: the seed is irrelevant
    y = np.random.default_rng(4).random(st.EXACT_MAX_N)
    exact = st.bootstrap_mean_bounds(y, LEVEL, seed=0)[0]
    low, high = scipy_paired_bounds(y[None], LEVEL, 1, 200_000)
    assert (exact.lower, exact.upper) == pytest.approx((low[0], high[0]), abs=3e-3)


def test_pairing_one_resample_serves_both_backends():
    """The difference's bounds come from the same draws as each backend's mean: a shared shift cancels."""
    rng = np.random.default_rng(3)
    base = rng.random(40)
    paired = st.bootstrap_mean_bounds(np.stack([base - (base - 0.1)]), LEVEL, seed=1)[0]
    assert (paired.lower, paired.upper) == pytest.approx((0.1, 0.1), abs=1e-12)  # zero spread in the pairs


def test_expanded_alpha_gives_t_width_and_tends_to_alpha():
    assert st.expanded_alpha(0.05, 5) == pytest.approx(stats.norm.cdf(math.sqrt(5 / 4) * stats.t.ppf(0.05, 4)))
    assert st.expanded_alpha(0.05, 5) < 0.01
    assert st.expanded_alpha(0.05, 10_000) == pytest.approx(0.05, abs=1e-4)


def test_bounds_cover_the_mean_with_t_like_width():
    """Against Student's t on symmetric data: the expanded bootstrap is about as wide (within 10%)."""
    x = np.linspace(0.8, 1.0, 25)
    interval = st.bootstrap_mean_bounds(x, LEVEL, seed=11)[0]
    t_half = stats.t.ppf(LEVEL, 24) * x.std(ddof=1) / 5
    assert interval.lower < x.mean() < interval.upper
    assert (interval.upper - interval.lower) / 2 == pytest.approx(t_half, rel=0.1)


def test_wilson_is_scipys_one_sided_bounds():
    interval = st.wilson_bounds(3, 5, LEVEL)
    ci = stats.binomtest(3, 5).proportion_ci(confidence_level=0.90, method="wilson")
    assert (interval.lower, interval.upper) == (ci.low, ci.high)
    assert interval.method == st.WILSON
    every = st.wilson_bounds(5, 5, LEVEL)
    assert every.upper == 1.0 and 0.5 < every.lower < 1.0  # all passed: still not certain


def test_conventions_empty_single_and_constant():
    assert st.bootstrap_mean_bounds(np.empty((2, 0)), LEVEL, seed=0) == [None, None]
    assert st.wilson_bounds(0, 0, LEVEL) is None
    single = st.bootstrap_mean_bounds(np.array([[0.3], [0.9]]), LEVEL, 0, support=[(-1, 1), (0, 1)])
    assert [(i.lower, i.upper) for i in single] == [(-1.0, 1.0), (0.0, 1.0)]  # one image: no spread known
    constant = st.bootstrap_mean_bounds(np.full(6, 0.7), LEVEL, seed=0)[0]
    assert constant.lower == constant.upper == 0.7
    with_ties = st.bootstrap_mean_bounds(np.array([0.5, 0.5, 0.5, 1.0]), LEVEL, seed=0)[0]
    assert 0.5 <= with_ties.lower < with_ties.upper <= 1.0  # never outside the sample's range


def test_deterministic_per_seed_and_independent_of_other_columns():
    x = np.random.default_rng(5).random(30)
    first = st.bootstrap_mean_bounds(x, LEVEL, seed=st.seed_for("run", "test", "all"))
    again = st.bootstrap_mean_bounds(x, LEVEL, seed=st.seed_for("run", "test", "all"))
    other = st.bootstrap_mean_bounds(x, LEVEL, seed=st.seed_for("run2", "test", "all"))
    assert first == again
    assert first != other
    assert st.seed_for("a", "b") != st.seed_for("ab") and st.seed_for("a", "b") == st.seed_for("a", "b")


def test_resample_count_meets_the_monte_carlo_target():
    """B follows the spread (cost ~ spread^2 whatever n) and its bounds agree across seeds to ~1e-4."""
    assert st.resample_count(0.0, 10, 0.05) == st.MIN_RESAMPLES
    assert st.resample_count(0.3, 5, 0.01) == st.MAX_RESAMPLES
    assert st.resample_count(0.05, 1000, 0.05) < st.resample_count(0.05, 10, 0.05)
    x = np.random.default_rng(8).normal(0.05, 0.04, 20)
    lowers = [st.bootstrap_mean_bounds(x, LEVEL, seed=s)[0].lower for s in range(4)]
    assert np.ptp(lowers) < 3e-4


def test_miss_p_value_reads_a_normal_standard_error_off_the_interval():
    bound = 0.1 - stats.norm.ppf(LEVEL) * 0.01  # s.e. 0.01
    assert st.miss_p_value(0.1, bound, LEVEL, 0.08) == pytest.approx(stats.norm.sf(2.0))
    assert st.miss_p_value(0.1, 0.1, LEVEL, 0.08) == 0.0 and st.miss_p_value(0.1, 0.1, LEVEL, 0.1) == 1.0


def test_same_bounds_whatever_the_thread_settings():
    """Resampling is gathers and sums (no BLAS): thread counts cannot change a bound."""
    code = ("import numpy as np; from eval.decision import statistics as st; "
            "x = np.random.default_rng(2).random((3, 500)); "
            "print(repr(st.bootstrap_mean_bounds(x, 0.95, seed=st.seed_for('k', 'test', 'all'))))")
    outputs = set()
    for threads in ("1", "2", "4"):
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
               "MKL_NUM_THREADS": threads}
        outputs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True).stdout)
    assert len(outputs) == 1


@pytest.mark.parametrize("n, observed, bound, threshold, expected", [
    (10, 0.04, 0.06, 0.05, 40),   # bound twice as far as the threshold: 4x the images
    (10, 0.06, 0.04, 0.05, 40),   # the same on the other side (could fail with more images)
    (10, 0.05, 0.07, 0.05, None),  # on the threshold: no number of images decides it
    (10, 0.0, 0.01, 0.05, 11),    # already decidable by this estimate: at least one more image
])
def test_images_to_decide(n, observed, bound, threshold, expected):
    assert st.images_to_decide(n, observed, bound, threshold) == expected


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
