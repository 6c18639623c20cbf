"""Interval estimates against scipy on known data, their coverage at n = 1..6 (exact for the proportion,
simulated for the mean), and their conventions (n = 0, n = 1, no spread, ties)."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from eval.decision import statistics as st
from eval.measures import MAX, MEAN, MIN, RATE, min_images_to_pass
from tests.support import REPO

LEVEL = 0.95


def test_mean_bounds_are_student_t_at_the_calibrated_tail():
    rng = np.random.default_rng(3)
    columns = rng.random((3, 24))
    for x, interval in zip(columns, st.mean_bounds(columns, LEVEL)):
        half = stats.t.ppf(1 - (1 - LEVEL) / st.CALIBRATION, 23) * stats.sem(x)
        assert (interval.lower, interval.upper) == pytest.approx((x.mean() - half, x.mean() + half), abs=1e-12)
        assert (interval.level, interval.method) == (LEVEL, st.STUDENT)


def test_regression_two_images_is_not_a_pass():
    """Regression: two IoUs 0.9456 and 0.9215 gave a 95% lower bound of 0.9215 (the sample minimum) and a
    pass of a 0.92 threshold; Student's t alone gives 0.857, the calibrated tail lower still."""
    interval = st.mean_bounds([[0.9456, 0.9215]], LEVEL)[0]
    assert interval.lower < 0.857 and interval.upper == 1.0


def _demo_differences():
    metrics = json.loads((REPO / "reports" / "pottery-seg-demo-demo-v1" / "metrics.json").read_text())
    iou = {(r["source_backend"], r["image_id"]): r["mask_iou"] for r in metrics["per_image"] if r["corpus"] == "test"}
    ids = sorted({i for _, i in iou})
    return np.array([iou["rembg", i] - iou["candidate", i] for i in ids])


@pytest.mark.parametrize("n", range(1, 7))
def test_mean_coverage_at_small_n(n):
    """Simulated coverage of each one-sided bound at n = 1..6 on the demo's skewed test-corpus differences
    and on normal data: at least the level wherever the bound can pass (n >= MIN_IMAGES_MEAN), and never
    a bound that passes below it (eval.decision.decide turns those into insufficient data)."""
    rng = np.random.default_rng(n)
    for population in (_demo_differences(), rng.normal(0.0, 0.05, 1000)):
        truth = population.mean()
        samples = population[rng.integers(0, len(population), (20_000, n))]
        bounds = st.mean_bounds(samples, LEVEL, (-1.0, 1.0))
        upper, lower = np.array([b.upper for b in bounds]), np.array([b.lower for b in bounds])
        covered = min((upper >= truth).mean(), (lower <= truth).mean())
        assert covered >= LEVEL - 3 * math.sqrt(LEVEL * (1 - LEVEL) / 20_000)
    assert (n >= min_images_to_pass(MEAN, MAX, 0.05, LEVEL)) == (n >= 5)


@pytest.mark.parametrize("n", range(1, 7))
def test_proportion_coverage_is_exact_at_every_rate(n):
    """Clopper-Pearson: the binomial enumerated over a grid of true rates, each bound covers >= level."""
    bounds = [st.proportion_bounds(k, n, LEVEL) for k in range(n + 1)]
    for p in np.linspace(0.001, 0.999, 499):
        weights = stats.binom.pmf(np.arange(n + 1), n, p)
        assert weights @ [b.lower <= p for b in bounds] >= LEVEL - 1e-12
        assert weights @ [b.upper >= p for b in bounds] >= LEVEL - 1e-12
    ci = stats.binomtest(n // 2, n).proportion_ci(confidence_level=0.90, method="exact")
    assert (bounds[n // 2].lower, bounds[n // 2].upper) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_min_images_to_pass():
    """A rate can pass a lower threshold only once (1 - level)^(1/n) reaches it; a mean from 5 images."""
    for threshold in (0.5, 0.6, 0.9):
        n = min_images_to_pass(RATE, MIN, threshold, LEVEL)
        assert st.proportion_bounds(n, n, LEVEL).lower >= threshold > st.proportion_bounds(n - 1, n - 1, LEVEL).lower
    assert min_images_to_pass(RATE, MAX, 0.2, LEVEL) == 1 and min_images_to_pass(RATE, MIN, 1.0, LEVEL) is None
    assert min_images_to_pass(MEAN, MIN, 0.85, 0.99) == 5


def test_conventions_empty_single_and_constant():
    assert st.mean_bounds(np.empty((2, 0)), LEVEL) == [None, None]
    assert st.proportion_bounds(0, 0, LEVEL) is None
    single = st.mean_bounds(np.array([[0.3], [0.9]]), LEVEL, support=[(-1, 1), (0, 1)])
    assert [(i.lower, i.upper) for i in single] == [(-1.0, 1.0), (0.0, 1.0)]  # one image: no spread known
    constant = st.mean_bounds(np.full((1, 30), 0.0), LEVEL, (-1, 1))[0]
    assert (constant.lower, constant.upper) == (-1.0, 1.0)  # no spread seen: a rare miss would not show
    clipped = st.mean_bounds(np.array([[0.99, 1.0, 1.0, 0.98, 1.0]]), LEVEL)[0]
    assert clipped.upper == 1.0 and 0.9 < clipped.lower < 0.99  # never outside the support


def test_bounds_need_no_seed_and_ignore_other_columns():
    x = np.random.default_rng(5).random((1, 30))
    alone = st.mean_bounds(x, LEVEL)
    beside = st.mean_bounds(np.vstack([x, np.random.default_rng(6).random((1, 30)) * 0.1]), LEVEL)
    assert alone == beside[:1] == st.mean_bounds(x, LEVEL)


def test_miss_p_value_reads_a_normal_standard_error_off_the_interval():
    bound = 0.1 - stats.norm.ppf(LEVEL) * 0.01  # s.e. 0.01
    assert st.miss_p_value(0.1, bound, LEVEL, 0.08) == pytest.approx(stats.norm.sf(2.0))
    assert st.miss_p_value(0.1, 0.1, LEVEL, 0.08) == 0.0 and st.miss_p_value(0.1, 0.1, LEVEL, 0.1) == 1.0


@pytest.mark.parametrize("n, observed, bound, threshold, expected", [
    (10, 0.04, 0.06, 0.05, 40),   # bound twice as far as the threshold: 4x the images
    (10, 0.06, 0.04, 0.05, 40),   # the same on the other side (could fail with more images)
    (10, 0.05, 0.07, 0.05, None),  # on the threshold: no number of images decides it
    (10, 0.0, 0.01, 0.05, 11),    # already decidable by this estimate: at least one more image
])
def test_images_to_decide(n, observed, bound, threshold, expected):
    assert st.images_to_decide(n, observed, bound, threshold) == expected


if __name__ == "__main__":
    import sys

    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
