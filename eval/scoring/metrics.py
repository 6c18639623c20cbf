"""Mask metrics of one (ground truth, prediction) pair, from a single pass of pixel counts.

Empty-mask conventions (no metric is ever NaN):
- IoU: both masks empty -> 1.0 (nothing to find, nothing found); exactly one empty -> 0.0.
- Precision: empty prediction -> 1.0 if the ground truth is empty too, else 0.0 (missing the object
  entirely is never rewarded as "no false positives").
- Recall: empty ground truth -> 1.0 if the prediction is empty too, else 0.0.
- Bbox IoU (secondary, derived from the masks' tight boxes): same rules as IoU.
- Boundary IoU (secondary; see `boundary_iou`): same rules as IoU.
"""

import dataclasses
import math

import cv2
import numpy as np

BOUNDARY_RATIO = 0.02  # band width as a fraction of the image diagonal (Cheng et al., CVPR 2021)


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


def boundary_width(shape, ratio=BOUNDARY_RATIO):
    """Band width d in pixels for an image of `shape`: round(ratio * diagonal), at least 1.

    Computed and rounded exactly as the reference (boundary-iou-api's mask_to_boundary) does, so the
    same image gets the same d: Python's round, i.e. halves to even.
    """
    height, width = shape[:2]
    return max(1, int(round(ratio * math.sqrt(height ** 2 + width ** 2))))


def _band(mask, box, width):
    """The inner boundary band of `mask` inside its bounding box `box` (bool array of the box's shape).

    A foreground pixel is in the band when some background pixel, or the outside of the image, is
    within chessboard distance `width` of it: the reference's `width` erosions by a 3x3 square, done as
    one erosion by a (2*width+1) square. Cropping to the box is exact because everything outside it is
    background, which the constant zero border reproduces.
    """
    row0, col0, row1, col1 = box
    crop = np.ascontiguousarray(mask[row0:row1, col0:col1]).view(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * width + 1, 2 * width + 1))
    eroded = cv2.erode(crop, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return crop.view(bool) & ~eroded.view(bool)


def _overlap(band_a, box_a, band_b, box_b):
    """Pixels set in both bands, given each band's box in image coordinates."""
    row0, col0 = max(box_a[0], box_b[0]), max(box_a[1], box_b[1])
    row1, col1 = min(box_a[2], box_b[2]), min(box_a[3], box_b[3])
    if row0 >= row1 or col0 >= col1:
        return 0
    a = band_a[row0 - box_a[0]:row1 - box_a[0], col0 - box_a[1]:col1 - box_a[1]]
    b = band_b[row0 - box_b[0]:row1 - box_b[0], col0 - box_b[1]:col1 - box_b[1]]
    return int(np.count_nonzero(a & b))


def _boundary_iou(ground_truth, prediction, truth_box, predicted_box, ratio):
    if truth_box is None or predicted_box is None:
        return 1.0 if truth_box is predicted_box else 0.0
    width = boundary_width(ground_truth.shape, ratio)
    truth_band = _band(ground_truth, truth_box, width)
    predicted_band = _band(prediction, predicted_box, width)
    inter = _overlap(truth_band, truth_box, predicted_band, predicted_box)
    return inter / (int(np.count_nonzero(truth_band)) + int(np.count_nonzero(predicted_band)) - inter)


def boundary_iou(ground_truth, prediction, ratio=BOUNDARY_RATIO):
    """Boundary IoU (Cheng et al., CVPR 2021): IoU of the two masks' inner boundary bands.

    A mask's band is its foreground within d = `boundary_width` pixels (chessboard distance) of its
    background; the image border counts as background (the reference pads with zeros), so a mask that
    touches the border has a band along it. Conventions, as for mask IoU: both masks empty -> 1.0;
    exactly one empty -> 0.0 (a non-empty mask always has a non-empty band); never NaN. A mask no
    thicker than 2*d is all band, so on thin parts Boundary IoU equals mask IoU. Same results as the
    reference's mask_to_boundary, cheaper: one erosion per mask, cropped to the mask's bounding box.
    """
    ground_truth, prediction = np.asarray(ground_truth, dtype=bool), np.asarray(prediction, dtype=bool)
    if ground_truth.shape != prediction.shape:
        raise ValueError(f"mask shapes differ: {ground_truth.shape} vs {prediction.shape}")
    return _boundary_iou(ground_truth, prediction, bounding_box(ground_truth), bounding_box(prediction), ratio)


@dataclasses.dataclass(frozen=True)
class MaskScores:
    mask_iou: float
    precision: float
    recall: float
    bbox_iou: float
    boundary_iou: float
    counts: PixelCounts


def score_masks(ground_truth, prediction):
    """All per-image metrics of a prediction against its ground truth (same shape, bool)."""
    counts = pixel_counts(ground_truth, prediction)
    truth_box, predicted_box = bounding_box(ground_truth), bounding_box(prediction)
    return MaskScores(mask_iou(counts), precision(counts), recall(counts), box_iou(truth_box, predicted_box),
                      _boundary_iou(ground_truth, prediction, truth_box, predicted_box, BOUNDARY_RATIO), counts)


def distribution(values):
    """mean, median, p10, p90 (linear interpolation) of a non-empty sequence."""
    array = np.asarray(values, dtype=np.float64)
    p10, median, p90 = np.percentile(array, [10, 50, 90])
    return {"mean": float(array.mean()), "median": float(median), "p10": float(p10), "p90": float(p90)}
