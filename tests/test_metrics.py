"""Metric functions against hand-computed masks and every empty-mask convention."""

import math
import sys

import numpy as np
import pytest

from eval.scoring import metrics
from tests.support import binary

GT = binary(["0110",
             "0110",
             "0000"])  # 4 pixels, box rows 0-1, cols 1-2
PRED = binary(["0011",
               "0011",
               "0011"])  # 6 pixels, overlap 2


def test_hand_computed_iou_precision_recall():
    s = metrics.score_masks(GT, PRED)
    assert s.counts == metrics.PixelCounts(true_positive=2, predicted=6, ground_truth=4)
    assert s.mask_iou == pytest.approx(2 / 8)  # union = 4 + 6 - 2
    assert s.precision == pytest.approx(2 / 6)
    assert s.recall == pytest.approx(2 / 4)


def test_bbox_iou_is_derived_from_mask_boxes():
    # GT box rows 0-1 x cols 1-2 (4 px); prediction box rows 0-2 x cols 2-3 (6 px); overlap rows 0-1 x col 2.
    assert metrics.bounding_box(GT) == (0, 1, 2, 3)
    assert metrics.score_masks(GT, PRED).bbox_iou == pytest.approx(2 / 8)


def test_bbox_iou_can_exceed_mask_iou():
    ring = binary(["111", "101", "111"])
    full = binary(["111", "111", "111"])
    s = metrics.score_masks(ring, full)
    assert s.mask_iou == pytest.approx(8 / 9)
    assert s.bbox_iou == 1.0


def test_perfect_prediction():
    s = metrics.score_masks(GT, GT.copy())
    assert (s.mask_iou, s.precision, s.recall, s.bbox_iou) == (1.0, 1.0, 1.0, 1.0)


EMPTY = np.zeros((3, 4), dtype=bool)


@pytest.mark.parametrize("truth, prediction, expected", [
    (EMPTY, EMPTY, (1.0, 1.0, 1.0, 1.0)),  # nothing to find, nothing found
    (GT, EMPTY, (0.0, 0.0, 0.0, 0.0)),  # missed the object entirely: precision is not rewarded
    (EMPTY, PRED, (0.0, 0.0, 0.0, 0.0)),  # hallucinated an object where there is none
])
def test_empty_mask_conventions(truth, prediction, expected):
    s = metrics.score_masks(truth, prediction)
    values = (s.mask_iou, s.precision, s.recall, s.bbox_iou)
    assert values == expected
    assert not any(math.isnan(v) for v in values)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.pixel_counts(GT, np.zeros((4, 4), dtype=bool))


def test_distribution_uses_linear_percentiles():
    d = metrics.distribution([0.0, 0.5, 1.0, 1.0, 0.25])
    assert d["mean"] == pytest.approx(0.55)
    assert d["median"] == pytest.approx(0.5)
    # sorted 0, .25, .5, 1, 1: p10 at rank 0.4 -> 0.1; p90 at rank 3.6 -> 1.0
    assert d["p10"] == pytest.approx(0.1)
    assert d["p90"] == pytest.approx(1.0)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
