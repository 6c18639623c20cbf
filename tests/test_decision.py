"""The decision step: go only when every criterion passes, and the right criterion is cited."""

import dataclasses
import sys

import pytest

from eval.decision import decide as decision
from eval.decision.intervals import with_intervals
from eval.inputs.criteria import CONFIDENCE, Criterion, DecisionRule, SuccessCriteria
from eval.decision.statistics import Interval
from eval.measures import LEGACY_KINDS, MAX, Measure, legacy_measure
from eval.scoring.scores import ImageScore, aggregate, image_score
from tests.support import binary

FULL = binary(["1111", "1111"])
HALF = binary(["1100", "1100"])  # IoU 0.5 against FULL
# On 6x6 (d = 1), a 4x4 square's band is its 12-px ring; the same square missing its right column has a
# 10-px ring sharing 8 of them: Boundary IoU 8 / 14 = 0.571429, while mask IoU is 12 / 16 = 0.75.
BIG = binary(["000000", "011110", "011110", "011110", "011110", "000000"])
CUT = binary(["000000", "011100", "011100", "011100", "011100", "000000"])


def criteria(*items, min_images=2, threshold=0.75):
    return SuccessCriteria("c.yaml", "0" * 64, False, threshold, min_images, (), tuple(items))


def scores(candidate_masks, baseline_masks, corpus="test", classes=()):
    out = []
    for i, (cand, base) in enumerate(zip(candidate_masks, baseline_masks)):
        out.append(image_score("candidate", corpus, f"i{i}", classes, FULL, cand, 0.75))
        out.append(image_score("rembg", corpus, f"i{i}", classes, FULL, base, 0.75))
    return aggregate(out)


MEAN_IOU = Criterion.of_kind("mean_iou", "min_mean_iou", "test", "all", 0.8)
PASS_RATE = Criterion.of_kind("pass_rate", "min_pass_rate", "test", "all", 0.5)
REGRESSION = Criterion.of_kind("regression", "max_mean_iou_regression", "test", "all", 0.1)


def test_go_cites_the_files_first_criterion():
    aggs = scores([FULL, FULL, HALF], [FULL, FULL, HALF])  # mean IoU 5/6, pass rate 2/3, no regression
    d = decision.decide(criteria(PASS_RATE, MEAN_IOU, REGRESSION), aggs, 0)
    assert d.recommendation == "go" and all(r.passed for r in d.results)
    assert d.deciding.id == "pass_rate"  # not mean_iou, whose margin 0.0333 is the smallest number


def test_regression_a_miss_is_not_cited_by_comparing_margins_across_units():
    """Regression: the deciding criterion was the most negative margin, a pass rate's (-0.5) against an
    IoU's (-0.05); now the most serious status, then the file's order."""
    aggs = scores([HALF, HALF], [FULL, FULL])  # mean IoU 0.5, pass rate 0, regression 0.5
    strict = Criterion.of_kind("strict_mean", "min_mean_iou", "test", "all", 0.55)
    d = decision.decide(criteria(strict, PASS_RATE), aggs, 0)
    assert [r.margin for r in d.results[1:]] == pytest.approx([-0.05, -0.5])
    assert d.deciding.id == "strict_mean"
    assert [r.id for r in d.by_relevance] == ["strict_mean", "pass_rate", "evaluation_complete"]


def test_no_go_on_mean_iou_below_threshold():
    d = decision.decide(criteria(MEAN_IOU), scores([HALF, HALF], [FULL, FULL]), 0)
    assert d.recommendation == "no-go"
    assert (d.deciding.id, d.deciding.status, d.deciding.observed) == ("mean_iou", "fail", 0.5)


def test_no_go_on_pass_rate():
    d = decision.decide(criteria(PASS_RATE), scores([HALF, HALF, FULL], [FULL] * 3), 0)
    assert d.recommendation == "no-go"
    assert d.deciding.observed == pytest.approx(1 / 3)


def test_no_go_on_regression_against_the_baseline():
    d = decision.decide(criteria(REGRESSION), scores([FULL, HALF], [FULL, FULL]), 0)
    assert d.recommendation == "no-go"
    assert d.deciding.observed == pytest.approx(0.25)  # rembg 1.0, candidate 0.75
    assert "regression" in d.deciding.summary


def boundary_scores(candidate_masks, baseline_masks):
    out = []
    for i, (cand, base) in enumerate(zip(candidate_masks, baseline_masks)):
        out.append(image_score("candidate", "test", f"i{i}", (), BIG, cand, 0.75))
        out.append(image_score("rembg", "test", f"i{i}", (), BIG, base, 0.75))
    return aggregate(out)


def test_min_mean_boundary_iou():
    aggs = boundary_scores([CUT, BIG], [BIG, BIG])  # candidate Boundary IoU 8/14 and 1: mean 11/14
    assert [a.boundary_iou["mean"] for a in aggs if a.source_backend == "candidate"] == [pytest.approx(11 / 14)]
    low = Criterion.of_kind("edges", "min_mean_boundary_iou", "test", "all", 0.8)
    d = decision.decide(criteria(low), aggs, 0)
    assert (d.recommendation, d.deciding.id, d.deciding.observed) == ("no-go", "edges", pytest.approx(11 / 14))
    assert d.deciding.margin == pytest.approx(11 / 14 - 0.8)
    assert "Boundary IoU" in d.deciding.summary
    at_threshold = dataclasses.replace(low, threshold=11 / 14)
    assert decision.decide(criteria(at_threshold), aggs, 0).recommendation == "go"


def test_max_mean_boundary_iou_regression_fails_where_mask_iou_does_not():
    aggs = boundary_scores([CUT, BIG], [BIG, BIG])  # rembg 1.0; candidate mask IoU 0.875, boundary 11/14
    mask = Criterion.of_kind("mask", "max_mean_iou_regression", "test", "all", 0.2)
    edges = Criterion.of_kind("edges", "max_mean_boundary_iou_regression", "test", "all", 0.2)
    d = decision.decide(criteria(mask, edges), aggs, 0)
    assert [r.status for r in d.results[1:]] == ["pass", "fail"]
    assert (d.deciding.id, d.deciding.observed) == ("edges", pytest.approx(3 / 14))
    assert "(candidate 0.7857 vs rembg 1.0000)" in d.deciding.summary


def test_threshold_is_inclusive():
    at_threshold = Criterion.of_kind("mean_iou", "min_mean_iou", "test", "all", 0.75)
    d = decision.decide(criteria(at_threshold), scores([FULL, HALF], [FULL, FULL]), 0)
    assert d.recommendation == "go"
    assert d.deciding.margin == 0.0


def test_too_few_images_is_insufficient_data_and_fails():
    d = decision.decide(criteria(MEAN_IOU, min_images=3), scores([FULL, FULL], [FULL, FULL]), 0)
    assert d.recommendation == "no-go"
    assert d.deciding.status == decision.INSUFFICIENT


def test_an_empty_class_never_passes():
    each = Criterion.of_kind("per_class", "max_mean_iou_regression", "flagged", "each", 0.1)
    spec = dataclasses.replace(criteria(each), failure_classes=(type("C", (), {"id": "gloss"})(),))
    d = decision.decide(spec, scores([FULL] * 3, [FULL] * 3, corpus="flagged", classes=("other",)), 0)
    assert d.recommendation == "no-go"
    assert d.deciding.id == "per_class[gloss]"
    assert d.deciding.n_images == 0


def test_incomplete_evaluation_is_never_go_and_is_cited_first():
    d = decision.decide(criteria(MEAN_IOU), scores([FULL, HALF], [FULL, FULL]), 1)
    assert d.recommendation == "no-go"
    assert d.deciding.id == decision.COMPLETENESS_ID
    assert len(d.failed) == 2


EMPTY = binary(["0000", "0000"])


def truth_scores(truths, predictions, corpus="test"):
    """Both backends predict `predictions` against per-image `truths`."""
    out = []
    for i, (truth, pred) in enumerate(zip(truths, predictions)):
        out += [image_score(b, corpus, f"i{i}", (), truth, pred, 0.75) for b in ("candidate", "rembg")]
    return aggregate(out)


def test_empty_ground_truth_everywhere_is_never_a_go():
    """Issue 8.1: all-empty masks and a candidate that predicts nothing score IoU 1 everywhere."""
    aggs = truth_scores([EMPTY] * 5, [EMPTY] * 5)
    assert aggs[0].mask_iou["mean"] == 1.0 and aggs[0].n_empty_truth == 5
    d = decision.decide(criteria(MEAN_IOU, PASS_RATE, REGRESSION), aggs, 0)
    assert d.recommendation == "no-go"
    assert {r.status for r in d.results[1:]} == {decision.INSUFFICIENT}
    assert "0 image(s) with a non-empty ground truth (5 measured, 5 empty)" in d.deciding.summary
    assert d.deciding.n_empty_truth == 5


def test_empty_truth_images_do_not_count_toward_min_images():
    aggs = truth_scores([FULL, FULL, EMPTY], [FULL, FULL, EMPTY])
    spec = dataclasses.replace(criteria(MEAN_IOU, min_images=3), max_empty_truth_share=1.0)
    d = decision.decide(spec, aggs, 0)
    assert (d.recommendation, d.deciding.status) == ("no-go", decision.INSUFFICIENT)
    assert "2 image(s) with a non-empty ground truth (3 measured, 1 empty)" in d.deciding.summary


@pytest.mark.parametrize("n_full, n_empty, share, status", [
    (9, 1, 0.1, "pass"),  # exactly the allowed share
    (8, 1, 0.1, decision.INSUFFICIENT),  # 1/9 > 0.1
    (27, 3, 0.1, "pass"),  # 3/30 == 0.1 exactly, not 0.30000000000000004 of 3
    (3, 0, 0.0, "pass"),
    (3, 1, 0.0, decision.INSUFFICIENT),
    (2, 2, 0.5, "pass"),
])
def test_max_empty_truth_share_bounds_the_empty_evidence(n_full, n_empty, share, status):
    aggs = truth_scores([FULL] * n_full + [EMPTY] * n_empty, [FULL] * n_full + [EMPTY] * n_empty)
    spec = dataclasses.replace(criteria(MEAN_IOU), max_empty_truth_share=share)
    result = decision.decide(spec, aggs, 0).results[1]
    assert result.status == status, result.summary
    assert result.n_empty_truth == n_empty
    if status == "pass" and n_empty:
        assert f"{n_empty} with empty ground truth" in result.summary


def test_default_share_is_fail_closed():
    """Without the key, one no-pot photo in three blocks: the file must opt in to more empty evidence."""
    aggs = truth_scores([FULL, FULL, EMPTY], [FULL, FULL, EMPTY])
    d = decision.decide(criteria(MEAN_IOU), aggs, 0)
    assert d.deciding.status == decision.INSUFFICIENT
    assert "1 of 3 image(s) have an empty ground truth, more than the max_empty_truth_share 0.1" in d.deciding.summary


def test_a_false_foreground_on_a_no_pot_photo_still_counts_against_the_candidate():
    aggs = truth_scores([FULL] * 9 + [EMPTY], [FULL] * 9 + [FULL])
    d = decision.decide(criteria(PASS_RATE), aggs, 0)
    assert d.results[1].status == "pass" and d.results[1].observed == 0.9


def test_each_over_no_class_is_a_row_not_a_vanished_criterion_or_a_traceback():
    """Issue 8.3: load_criteria refuses this; decide() alone still never drops the criterion."""
    each = Criterion.of_kind("per_class", "max_mean_iou_regression", "flagged", "each", 0.1)
    d = decision.decide(criteria(each), scores([FULL] * 3, [FULL] * 3, corpus="flagged"), 0)
    assert d.recommendation == "no-go"
    assert [r.id for r in d.results] == [decision.COMPLETENESS_ID, "per_class[each]"]
    assert d.deciding.status == decision.INSUFFICIENT


# --- the confidence rule (schema_version 2) -------------------------------------------------------------

RULE = DecisionRule(CONFIDENCE, 0.95)


def test_a_mean_just_below_the_threshold_does_not_meet_it():
    """Regression: means were rounded to 6 decimals before they were compared, so 0.8499996 met 0.85."""
    rows = [ImageScore(backend, "test", f"i{i}", (), mask_iou=0.8499996, precision=1.0, recall=1.0,
                       bbox_iou_secondary=1.0, boundary_iou=1.0, passed=False, true_positive_pixels=0,
                       predicted_pixels=0, ground_truth_pixels=1)
            for i in range(3) for backend in ("candidate", "rembg")]
    d = decision.decide(criteria(dataclasses.replace(MEAN_IOU, threshold=0.85)), aggregate(rows), 0)
    assert (d.recommendation, d.deciding.id, d.deciding.status) == ("no-go", "mean_iou", "fail")
    assert d.deciding.margin == pytest.approx(-4e-7)


def from_ious(candidate, baseline, corpus="test", threshold=0.75, incumbent=None):
    """Aggregates with intervals, as the gate computes them, from per-image IoUs."""
    out = []
    for i, (cand, base) in enumerate(zip(candidate, baseline)):
        ious = (("candidate", cand), ("rembg", base)) + ((("incumbent", incumbent[i]),) if incumbent else ())
        for backend, iou in ious:
            out.append(ImageScore(backend, corpus, f"i{i:03d}", (), mask_iou=round(iou, 6), precision=1.0,
                                  recall=1.0, bbox_iou_secondary=1.0, boundary_iou=round(iou, 6),
                                  passed=iou >= threshold, true_positive_pixels=0, predicted_pixels=0,
                                  ground_truth_pixels=1))
    return with_intervals(aggregate(out), out, 0.95)


def confident(*items, min_images=2):
    return dataclasses.replace(criteria(*items, min_images=min_images), decision_rule=RULE)


REGRESSION_05 = Criterion.of_kind("regression", "max_mean_iou_regression", "test", "all", 0.05)


def decide_regression(drops, base=0.95):
    aggs = from_ious([base - d for d in drops], [base] * len(drops))
    return decision.decide(confident(REGRESSION_05), aggs, 0).results[1]


def test_every_kind_reads_an_interval_the_gate_computes():
    """The confidence rule applies to every kind of the table, boundary kinds included."""
    candidate = next(a for a in from_ious([0.9, 0.8, 0.85], [0.9] * 3) if a.source_backend == "candidate")
    for kind in LEGACY_KINDS:
        assert legacy_measure(kind).interval_name in candidate.intervals, kind
    boundary = Criterion.of_kind("b", "max_mean_boundary_iou_regression", "test", "all", 0.05)
    r = decision.decide(confident(boundary), from_ious([0.95 - d for d in [0.2, 0.21, 0.19]], [0.95] * 3), 0)
    assert r.results[1].status == decision.FAIL and r.results[1].interval.lower > 0.05


def test_confidence_clear_pass():
    r = decide_regression([0.01, 0.012, 0.008, 0.011, 0.009, 0.01] * 5)
    assert r.status == decision.PASS and r.interval.upper <= 0.05
    assert r.margin == pytest.approx(0.05 - r.interval.upper)
    assert "clearly within" in r.summary and r.images_needed is None


def test_confidence_clear_fail():
    r = decide_regression([0.2, 0.21, 0.19, 0.2, 0.22])
    assert r.status == decision.FAIL and r.interval.lower > 0.05
    assert "clearly beyond" in r.summary


def test_confidence_inconclusive_says_so_and_estimates_the_images_needed():
    drops = [0.0, 0.1, 0.02, 0.08, 0.03]  # mean 0.046: within 0.05 by point, not with confidence
    r = decide_regression(drops)
    assert r.observed == pytest.approx(0.046)
    assert r.interval.lower < 0.05 < r.interval.upper
    assert r.status == decision.INCONCLUSIVE
    assert r.images_needed > len(drops)
    assert "inconclusive, which is never a go" in r.summary and f"about {r.images_needed} images" in r.summary
    d = decision.decide(confident(REGRESSION_05), from_ious([0.95 - x for x in drops], [0.95] * 5), 0)
    assert d.recommendation == "no-go" and d.deciding.status == decision.INCONCLUSIVE
    point = decision.decide(criteria(REGRESSION_05), from_ious([0.95 - x for x in drops], [0.95] * 5), 0)
    assert point.recommendation == "go"  # the point rule would have promoted on noise


def test_confidence_bound_on_the_threshold_is_within_it():
    interval = Interval(0.03, 0.05, 0.95, "test")
    assert decision._confidence_verdict(MAX, 0.04, interval, 0.05, 10) == (decision.PASS, 0.0, None)


def test_regression_no_spread_is_no_evidence():
    """Regression: every image dropping exactly 0.05 gave a zero-width interval and a pass; a sample with
    no spread cannot show a rare catastrophic miss, so its interval is the whole range."""
    r = decide_regression([0.05] * 8)
    assert (r.interval.lower, r.interval.upper) == (-1.0, 1.0) and r.status == decision.INCONCLUSIVE


def test_below_the_floor_a_bound_cannot_pass():
    """Four images whose regression bound clears the threshold are still insufficient data (a mean needs
    eval.measures.MIN_IMAGES_MEAN), while a clear miss on as few stands."""
    r = decide_regression([0.001, 0.0012, 0.0008, 0.0011])
    assert r.interval.upper <= 0.05 and r.status == decision.INSUFFICIENT
    assert "only from 5 images on" in r.summary
    assert decide_regression([0.001, 0.0012, 0.0008, 0.0011, 0.001]).status == decision.PASS
    assert decide_regression([0.2, 0.21, 0.19]).status == decision.FAIL


def test_confidence_on_pass_rate_and_mean_iou():
    rate = Criterion.of_kind("rate", "min_pass_rate", "test", "all", 0.6)
    mean = Criterion.of_kind("mean", "min_mean_iou", "test", "all", 0.8)
    clear = from_ious([0.9, 0.92, 0.88] * 10, [0.9] * 30)
    assert [r.status for r in decision.decide(confident(rate, mean), clear, 0).results[1:]] == ["pass", "pass"]
    few = from_ious([0.9, 0.9, 0.9, 0.5, 0.5] * 2, [0.9] * 10)  # pass rate 0.6 and mean 0.74 on 10 images
    statuses = {r.id: r.status for r in decision.decide(confident(rate, mean), few, 0).results[1:]}
    assert statuses == {"rate": "inconclusive", "mean": "inconclusive"}
    five = decision.decide(confident(rate), from_ious([0.9] * 5, [0.9] * 5), 0).results[1]
    assert five.status == "insufficient_data" and "only from 6 images on" in five.summary  # 0.05^(1/5) < 0.6
    bad = from_ious([0.5, 0.52, 0.48] * 10, [0.9] * 30)
    assert [r.status for r in decision.decide(confident(rate, mean), bad, 0).results[1:]] == ["fail", "fail"]


def test_clear_miss_is_cited_before_inconclusive_before_insufficient():
    rate = Criterion.of_kind("rate", "min_pass_rate", "test", "all", 0.6)
    fails = Criterion.of_kind("mean", "min_mean_iou", "test", "all", 0.99)
    aggs = from_ious([0.9, 0.9, 0.9, 0.5, 0.5] * 2, [0.9] * 10)
    d = decision.decide(confident(rate, fails), aggs, 0)
    assert (d.deciding.id, d.deciding.status) == ("mean", "fail")
    assert decision.decide(confident(rate, min_images=11), aggs, 0).deciding.status == decision.INSUFFICIENT


def test_holm_turns_marginal_misses_into_inconclusive_but_keeps_clear_ones():
    tests = [Criterion.of_kind(f"r{k}", "max_mean_iou_regression", "test", "all", t) for k, t in enumerate(
        [0.137, 0.05, 0.3, 0.3, 0.3, 0.3])]  # r0: a marginal miss, r1: a clear one, r2..r5 pass
    drops = [0.1, 0.2, 0.15, 0.17, 0.13, 0.19, 0.16, 0.18] * 3
    aggs = from_ious([0.95 - d for d in drops], [0.95] * 24)
    plain = {r.id: r.status for r in decision.decide(confident(*tests), aggs, 0).results[1:]}
    holm_rule = dataclasses.replace(confident(*tests), decision_rule=DecisionRule(CONFIDENCE, 0.95, True))
    holm = {r.id: r for r in decision.decide(holm_rule, aggs, 0).results[1:]}
    assert plain["r0"] == "fail" and holm["r0"].status == decision.INCONCLUSIVE
    assert "Holm" in holm["r0"].summary
    assert plain["r1"] == holm["r1"].status == "fail"
    assert [holm[f"r{k}"].status for k in range(2, 6)] == ["pass"] * 4


def test_point_rule_keeps_the_v1_outcome_with_intervals_present():
    """Intervals are computed and shown under the point rule too, but do not change what it decides."""
    aggs = from_ious([0.9, 0.88, 0.5], [0.9, 0.9, 0.9])
    d = decision.decide(criteria(MEAN_IOU, PASS_RATE, REGRESSION), aggs, 0)
    assert [r.status for r in d.results] == ["pass", "fail", "pass", "fail"]
    assert [(r.observed, r.margin) for r in d.results] == [
        (0.0, 0.0), pytest.approx((0.76, -0.04)), pytest.approx((2 / 3, 1 / 6)), pytest.approx((0.14, -0.04))]
    assert all(r.interval is not None for r in d.results[1:])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))


def test_a_regression_vs_the_incumbent_is_tested_on_its_own_interval():
    """`vs: incumbent` reads the candidate's paired interval against the incumbent, not against rembg."""
    n = 30
    rembg = [0.95 - 0.001 * (i % 7) for i in range(n)]
    candidate = [r - 0.01 for r in rembg]  # clearly within 0.05 of rembg
    incumbent = [c + 0.2 + 0.001 * (i % 3) for i, c in enumerate(candidate)]  # clearly better than the candidate
    aggs = from_ious(candidate, rembg, incumbent=incumbent)
    vs_rembg = REGRESSION_05
    vs_incumbent = Criterion.of_kind("regression_vs_incumbent", "max_mean_iou_regression", "test", "all", 0.05,
                                    vs="incumbent")
    d = decision.decide(confident(vs_rembg, vs_incumbent), aggs, 0)
    by_id = {r.id: r for r in d.results}
    assert by_id["regression"].status == decision.PASS and by_id["regression"].vs == "rembg"
    inc = by_id["regression_vs_incumbent"]
    assert inc.status == decision.FAIL and inc.vs == "incumbent" and inc.interval.lower > 0.05
    assert "vs incumbent" in inc.summary
    cand = next(a for a in aggs if a.source_backend == "candidate")
    assert inc.interval == cand.intervals["mask_iou_regression_vs_incumbent"]
    assert "mask_iou_regression_vs_incumbent" not in next(
        a for a in aggs if a.source_backend == "rembg").intervals  # the baseline is measured against nothing


def test_an_incumbent_never_changes_the_candidates_intervals():
    """The resample count comes from candidate and rembg alone, so adding the incumbent (with a much wider
    spread) leaves every candidate-vs-rembg bound as it was."""
    n = 40
    rembg = [0.9 - 0.002 * (i % 11) for i in range(n)]
    candidate = [r - 0.01 * (i % 5) for i, r in enumerate(rembg)]
    incumbent = [0.1 if i % 2 else 0.99 for i in range(n)]
    alone = next(a for a in from_ious(candidate, rembg) if a.source_backend == "candidate")
    beside = next(a for a in from_ious(candidate, rembg, incumbent=incumbent) if a.source_backend == "candidate")
    assert {k: v for k, v in beside.intervals.items() if "incumbent" not in k} == alone.intervals


def pixel_scores(candidate, baseline, incumbent=None):
    """Scores from per-image (precision, recall, bbox IoU, Boundary IoU) of each backend; mask IoU 0.9."""
    out = []
    for i, (cand, base) in enumerate(zip(candidate, baseline)):
        rows = (("candidate", cand), ("rembg", base)) + ((("incumbent", incumbent[i]),) if incumbent else ())
        for backend, (precision, recall, bbox, boundary) in rows:
            out.append(ImageScore(backend, "test", f"i{i:03d}", (), mask_iou=0.9, precision=precision,
                                  recall=recall, bbox_iou_secondary=bbox, boundary_iou=boundary, passed=True,
                                  true_positive_pixels=0, predicted_pixels=0, ground_truth_pixels=1))
    return out


def v3(id, metric, statistic, bound, threshold, vs=None):
    return Criterion(id, Measure(metric, statistic, bound, vs), "test", "all", threshold)


PIXELS = pixel_scores([(0.8, 0.9, 0.6, 1.0), (1.0, 0.95, 0.7, 1.0), (0.9, 1.0, 0.8, 1.0)],
                      [(1.0, 1.0, 1.0, 1.0)] * 3)


@pytest.mark.parametrize("criterion, status, observed, margin, label", [
    # candidate precision 0.8, 1.0, 0.9: mean 0.9, on the threshold (inclusive)
    (v3("precision", "precision", "mean", "min", 0.9), "pass", 0.9, 0.0, "candidate mean pixel precision"),
    (v3("precision", "precision", "mean", "min", 0.91), "fail", 0.9, -0.01, "candidate mean pixel precision"),
    # candidate recall 0.9, 0.95, 1.0 (mean 0.95) against rembg's 1.0: a drop of 0.05
    (v3("recall", "recall", "mean", "max", 0.05, vs="rembg"), "pass", 0.05, 0.0,
     "mean-pixel-recall regression vs rembg"),
    (v3("recall", "recall", "mean", "max", 0.04, vs="rembg"), "fail", 0.05, -0.01,
     "mean-pixel-recall regression vs rembg"),
    # candidate bbox IoU 0.6, 0.7, 0.8: mean 0.7; an upper bound on the candidate's own value
    (v3("bbox", "bbox_iou_secondary", "mean", "max", 0.75), "pass", 0.7, 0.05,
     "candidate mean bbox IoU (secondary)"),
])
def test_v3_criteria_on_pixel_metrics_decide_on_hand_computed_means(criterion, status, observed, margin, label):
    r = decision.decide(criteria(criterion), aggregate(PIXELS), 0).results[1]
    assert (r.status, r.observed, r.margin, r.kind) == (status, pytest.approx(observed), pytest.approx(margin), None)
    assert r.summary.startswith(f"{label} {observed:.4f} on test/all (n=3)")
    assert r.measure == criterion.measure and r.vs == criterion.measure.vs


def test_v3_p10_boundary_regression_vs_the_incumbent_under_the_point_rule():
    """p10 of 11 values (linear interpolation) is the second smallest: candidate 0.5, incumbent 0.6."""
    candidate = [(1.0, 1.0, 1.0, b) for b in (0.1, 0.5, *[0.9] * 9)]
    incumbent = [(1.0, 1.0, 1.0, b) for b in (0.2, 0.6, *[0.9] * 9)]
    scores_ = pixel_scores(candidate, [(1.0,) * 4] * 11, incumbent)
    p10 = v3("p10_edges", "boundary_iou", "p10", "max", 0.05, vs="incumbent")
    r = decision.decide(criteria(p10), aggregate(scores_), 0).results[1]
    assert (r.status, r.observed, r.margin) == ("fail", pytest.approx(0.1), pytest.approx(-0.05))
    assert r.summary.startswith("p10-Boundary-IoU regression vs incumbent 0.1000") and r.interval is None


def test_v3_criterion_on_another_metric_gets_its_interval_and_leaves_the_reported_ones_alone():
    n = 30
    rows = pixel_scores([(0.85 + 0.01 * (i % 5), 1.0, 1.0, 0.9 - 0.02 * (i % 3)) for i in range(n)],
                        [(1.0, 1.0, 1.0, 0.9)] * n)
    precision = v3("precision", "precision", "mean", "min", 0.8)
    plain = with_intervals(aggregate(rows), rows, 0.95)
    measured = with_intervals(aggregate(rows), rows, 0.95, [precision.measure])
    cand = next(a for a in measured if a.source_backend == "candidate")
    alone = next(a for a in plain if a.source_backend == "candidate")
    assert "precision_mean" not in alone.intervals and "precision_regression_vs_rembg" in cand.intervals
    assert {k: v for k, v in cand.intervals.items() if not k.startswith("precision")} == alone.intervals
    r = decision.decide(confident(precision), measured, 0).results[1]
    assert r.status == decision.PASS and r.interval == cand.intervals["precision_mean"]
    assert r.margin == pytest.approx(r.interval.lower - 0.8)


@pytest.mark.parametrize("rule", [DecisionRule(), RULE])
@pytest.mark.parametrize("kind, vs, label", [
    ("min_pass_rate", "rembg", "candidate pass rate"),
    ("min_mean_iou", "rembg", "candidate mean IoU"),
    ("max_mean_iou_regression", "rembg", "mean-IoU regression vs rembg"),
    ("max_mean_iou_regression", "incumbent", "mean-IoU regression vs incumbent"),
    ("min_mean_boundary_iou", "rembg", "candidate mean Boundary IoU"),
    ("max_mean_boundary_iou_regression", "incumbent", "mean-Boundary-IoU regression vs incumbent"),
])
def test_every_v1_v2_kind_decides_as_its_v3_measure(rule, kind, vs, label):
    """A schema_version 1/2 kind and the version 3 measure it maps to give the same result, with the
    summary words the kind always had; only `kind` tells them apart."""
    aggs = from_ious([0.9, 0.7, 0.8, 0.85], [0.9, 0.9, 0.85, 0.8], incumbent=[0.95, 0.8, 0.8, 0.9])
    old = Criterion.of_kind("c", kind, "test", "all", 0.1 if kind.endswith("regression") else 0.7, vs=vs)
    new = Criterion("c", legacy_measure(kind, vs), "test", "all", old.threshold)
    items = (SuccessCriteria("c.yaml", "0" * 64, False, 0.75, 2, (), (c,), decision_rule=rule) for c in (old, new))
    r_old, r_new = (decision.decide(c, aggs, 0).results[1] for c in items)
    assert r_old.kind == kind and r_new.kind is None
    assert r_old == dataclasses.replace(r_new, kind=kind) and r_old.summary.startswith(f"{label} ")
    assert r_old.vs == (vs if kind.endswith("regression") else None)
