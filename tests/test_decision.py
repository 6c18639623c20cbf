"""The decision step: go only when every criterion passes, and the right criterion is cited."""

import dataclasses
import sys

import pytest

from eval.decision import decide as decision
from eval.inputs.criteria import KINDS, Criterion, SuccessCriteria
from eval.scoring.scores import aggregate, image_score
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


MEAN_IOU = Criterion("mean_iou", "min_mean_iou", "test", "all", 0.8)
PASS_RATE = Criterion("pass_rate", "min_pass_rate", "test", "all", 0.5)
REGRESSION = Criterion("regression", "max_mean_iou_regression", "test", "all", 0.1)


def test_go_when_all_pass_cites_the_tightest_margin():
    aggs = scores([FULL, FULL, HALF], [FULL, FULL, HALF])  # mean IoU 5/6, pass rate 2/3, no regression
    d = decision.decide(criteria(MEAN_IOU, PASS_RATE, REGRESSION), aggs, 0)
    assert d.recommendation == "go"
    assert d.deciding.id == "mean_iou"  # margin 0.8333 - 0.8 = 0.0333 is the tightest
    assert d.deciding.margin == pytest.approx(0.033333)
    assert all(r.passed for r in d.results)


def test_no_go_on_mean_iou_below_threshold():
    d = decision.decide(criteria(MEAN_IOU), scores([HALF, HALF], [FULL, FULL]), 0)
    assert d.recommendation == "no-go"
    assert (d.deciding.id, d.deciding.status, d.deciding.observed) == ("mean_iou", "fail", 0.5)


def test_no_go_on_pass_rate():
    d = decision.decide(criteria(PASS_RATE), scores([HALF, HALF, FULL], [FULL] * 3), 0)
    assert d.recommendation == "no-go"
    assert d.deciding.observed == pytest.approx(0.333333)


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


def test_every_criteria_kind_has_a_row_in_the_decision_table():
    assert set(decision.KINDS) == set(KINDS)


def test_min_mean_boundary_iou():
    aggs = boundary_scores([CUT, BIG], [BIG, BIG])  # candidate Boundary IoU 8/14 and 1: mean 11/14
    assert {a.boundary_iou["mean"] for a in aggs if a.source_backend == "candidate"} == {0.785714}
    low = Criterion("edges", "min_mean_boundary_iou", "test", "all", 0.8)
    d = decision.decide(criteria(low), aggs, 0)
    assert (d.recommendation, d.deciding.id, d.deciding.observed) == ("no-go", "edges", 0.785714)
    assert d.deciding.margin == pytest.approx(-0.014286)
    assert "Boundary IoU" in d.deciding.summary
    at_threshold = dataclasses.replace(low, threshold=0.785714)
    assert decision.decide(criteria(at_threshold), aggs, 0).recommendation == "go"


def test_max_mean_boundary_iou_regression_fails_where_mask_iou_does_not():
    aggs = boundary_scores([CUT, BIG], [BIG, BIG])  # rembg 1.0; candidate mask IoU 0.875, boundary 11/14
    mask = Criterion("mask", "max_mean_iou_regression", "test", "all", 0.2)
    edges = Criterion("edges", "max_mean_boundary_iou_regression", "test", "all", 0.2)
    d = decision.decide(criteria(mask, edges), aggs, 0)
    assert [r.status for r in d.results[1:]] == ["pass", "fail"]
    assert (d.deciding.id, d.deciding.observed) == ("edges", 0.214286)
    assert "(candidate 0.7857 vs rembg 1.0000)" in d.deciding.summary


def test_threshold_is_inclusive():
    at_threshold = Criterion("mean_iou", "min_mean_iou", "test", "all", 0.75)
    d = decision.decide(criteria(at_threshold), scores([FULL, HALF], [FULL, FULL]), 0)
    assert d.recommendation == "go"
    assert d.deciding.margin == 0.0


def test_too_few_images_is_insufficient_data_and_fails():
    d = decision.decide(criteria(MEAN_IOU, min_images=3), scores([FULL, FULL], [FULL, FULL]), 0)
    assert d.recommendation == "no-go"
    assert d.deciding.status == decision.INSUFFICIENT


def test_an_empty_class_never_passes():
    each = Criterion("per_class", "max_mean_iou_regression", "flagged", "each", 0.1)
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


def test_largest_miss_is_cited():
    d = decision.decide(criteria(MEAN_IOU, PASS_RATE), scores([HALF, HALF], [FULL, FULL]), 0)
    assert d.deciding.id == "pass_rate"  # pass rate misses by 0.5, mean IoU by 0.3


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
    each = Criterion("per_class", "max_mean_iou_regression", "flagged", "each", 0.1)
    d = decision.decide(criteria(each), scores([FULL] * 3, [FULL] * 3, corpus="flagged"), 0)
    assert d.recommendation == "no-go"
    assert [r.id for r in d.results] == [decision.COMPLETENESS_ID, "per_class[each]"]
    assert d.deciding.status == decision.INSUFFICIENT


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
