"""Mask metrics of one (ground truth, prediction) pair, from a single pass of pixel counts.

Empty-mask conventions (no metric is ever NaN):
- IoU: both masks empty -> 1.0 (nothing to find, nothing found); exactly one empty -> 0.0.
- Precision: empty prediction -> 1.0 if the ground truth is empty too, else 0.0 (missing the object
  entirely is never rewarded as "no false positives").
- Recall: empty ground truth -> 1.0 if the prediction is empty too, else 0.0.
- Bbox IoU (secondary, derived from the masks' tight boxes): same rules as IoU.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class PixelCounts:
    true_positive: int
    predicted: int
    ground_truth: int

    @property
    def union(self):
        return self.predicted + self.ground_truth - self.true_positive


def _ratio(numerator, denominator, both_empty):
    return both_empty if denominator == 0 else numerator / denominator


def pixel_counts(ground_truth, prediction):
    """Counts of two same-shape boolean masks."""
    if ground_truth.shape != prediction.shape:
        raise ValueError(f"mask shapes differ: {ground_truth.shape} vs {prediction.shape}")
    return PixelCounts(int(np.count_nonzero(ground_truth & prediction)), int(np.count_nonzero(prediction)),
                       int(np.count_nonzero(ground_truth)))


def mask_iou(counts):
    return _ratio(counts.true_positive, counts.union, 1.0)


def precision(counts):
    return _ratio(counts.true_positive, counts.predicted, 1.0 if counts.ground_truth == 0 else 0.0)


def recall(counts):
    return _ratio(counts.true_positive, counts.ground_truth, 1.0 if counts.predicted == 0 else 0.0)


def bounding_box(mask):
    """(row0, col0, row1, col1), end-exclusive, of the mask's foreground; None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def box_iou(box_a, box_b):
    """IoU of two end-exclusive boxes as returned by bounding_box (None = empty)."""
    if box_a is None or box_b is None:
        return 1.0 if box_a is box_b else 0.0
    height = min(box_a[2], box_b[2]) - max(box_a[0], box_b[0])
    width = min(box_a[3], box_b[3]) - max(box_a[1], box_b[1])
    inter = max(height, 0) * max(width, 0)
    area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
    return inter / (area(box_a) + area(box_b) - inter)


@dataclasses.dataclass(frozen=True)
class MaskScores:
    mask_iou: float
    precision: float
    recall: float
    bbox_iou: float
    counts: PixelCounts


def score_masks(ground_truth, prediction):
    """All per-image metrics of a prediction against its ground truth (same shape, bool)."""
    counts = pixel_counts(ground_truth, prediction)
    return MaskScores(mask_iou(counts), precision(counts), recall(counts),
                      box_iou(bounding_box(ground_truth), bounding_box(prediction)), counts)


def distribution(values):
    """mean, median, p10, p90 (linear interpolation) of a non-empty sequence."""
    array = np.asarray(values, dtype=np.float64)
    p10, median, p90 = np.percentile(array, [10, 50, 90])
    return {"mean": float(array.mean()), "median": float(median), "p10": float(p10), "p90": float(p90)}
