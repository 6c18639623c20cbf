"""Boundary IoU against hand-computed masks, its conventions, and the paper's reference algorithm.

The reference (Cheng et al., CVPR 2021; boundary-iou-api's mask_to_boundary) is reimplemented with OpenCV
as published in bench/boundary_reference.py (the benchmark times it too). The gate's implementation must
give the same number on real masks: the demo's ground-truth PNGs and the demo checkpoint's predictions.
"""

import math
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bench.boundary_reference import boundary_iou as reference_boundary_iou
from eval.inputs import images
from eval.inputs.checkpoint import resolve_checkpoint
from eval.scoring import metrics
from tests.support import DEMO_CHECKPOINT, DEMO_SNAPSHOT, binary


def square(shape, row0, col0, row1, col1):
    mask = np.zeros(shape, dtype=bool)
    mask[row0:row1, col0:col1] = True
    return mask


def test_band_width_is_two_percent_of_the_diagonal_rounded_like_the_reference():
    assert metrics.boundary_width((10, 10)) == 1  # 0.28 rounds to 0; at least 1
    assert metrics.boundary_width((192, 256)) == 6  # diagonal 320 -> 6.4
    assert metrics.boundary_width((3000, 4000)) == 100
    # Python's round: halves go to the even neighbour, as in the reference.
    assert metrics.boundary_width((75, 100)) == 2  # 2.5
    assert metrics.boundary_width((105, 140)) == 4  # 3.5


def test_hand_computed_shifted_square():
    # 10x10 image, d = 1: each 6x6 square's band is its 1-pixel ring (20 px). Shifted by one column the
    # rings share only their top and bottom rows over columns 3-7 (2 x 5 px): 10 / (20 + 20 - 10).
    truth, prediction = square((10, 10), 2, 2, 8, 8), square((10, 10), 2, 3, 8, 9)
    assert metrics.boundary_iou(truth, prediction) == pytest.approx(1 / 3)
    assert metrics.score_masks(truth, prediction).mask_iou == pytest.approx(30 / 42)  # far more lenient


def test_hand_computed_wider_band():
    # 80x80 image: d = round(0.02 * 113.1) = 2. A 20x20 square's band: 400 - 16*16 = 144 px. A 20x18
    # prediction (two columns cut off the right) has band 360 - 16*14 = 136 px.
    # Shared: the top and bottom bands over the prediction's 18 columns (4 rows x 18 = 72) and the left
    # band over the 16 inner rows (16 x 2 = 32); the right bands (columns 48-49 vs 46-47) miss each other.
    truth, prediction = square((80, 80), 30, 30, 50, 50), square((80, 80), 30, 30, 50, 48)
    assert metrics.boundary_width(truth.shape) == 2
    inter = 72 + 32
    assert metrics.boundary_iou(truth, prediction) == pytest.approx(inter / (144 + 136 - inter))


def test_cut_off_handle_moves_boundary_iou_more_than_mask_iou():
    body = square((100, 100), 20, 20, 80, 70)
    with_handle = body | square((100, 100), 40, 70, 60, 78)  # a thin 'handle' on the right
    s = metrics.score_masks(with_handle, body)
    assert s.mask_iou > 0.9
    assert s.boundary_iou < s.mask_iou - 0.1


@pytest.mark.parametrize("truth, prediction, expected", [
    (np.zeros((5, 5), bool), np.zeros((5, 5), bool), 1.0),  # nothing to find, nothing found
    (square((5, 5), 1, 1, 3, 3), np.zeros((5, 5), bool), 0.0),  # missed entirely
    (np.zeros((5, 5), bool), square((5, 5), 1, 1, 3, 3), 0.0),  # hallucinated
])
def test_empty_mask_conventions(truth, prediction, expected):
    value = metrics.boundary_iou(truth, prediction)
    assert value == expected and not math.isnan(value)
    assert metrics.score_masks(truth, prediction).boundary_iou == expected


def test_masks_thinner_than_the_band_are_all_band():
    # d = 1 on 10x10; two-pixel-thick bars are all band, so Boundary IoU equals mask IoU (10 / 30).
    truth, prediction = square((10, 10), 4, 0, 6, 10), square((10, 10), 5, 0, 7, 10)
    assert metrics.boundary_iou(truth, prediction) == pytest.approx(1 / 3)
    assert metrics.score_masks(truth, prediction).mask_iou == pytest.approx(1 / 3)
    dot = square((10, 10), 4, 4, 5, 5)
    assert metrics.boundary_iou(dot, dot) == 1.0


def test_the_image_border_counts_as_background():
    # A mask filling the image has a band along the border (the reference pads with zeros), so it
    # shares no band pixel with an 8x8 square one pixel inside: Boundary IoU 0 where mask IoU is 0.64.
    full, inner = np.ones((10, 10), bool), square((10, 10), 1, 1, 9, 9)
    assert metrics.score_masks(full, inner).mask_iou == pytest.approx(0.64)
    assert metrics.boundary_iou(full, inner) == 0.0
    assert metrics.boundary_iou(full, full) == 1.0
    # Masks on three borders, d = 1: 4 columns x 8 rows keep an interior of 6 x 2, band 20 px; 3 columns
    # keep 6 x 1, band 18 px. Shared: rows 0 and 7 over 3 columns (6) and column 0 in rows 1-6 (6).
    left_half, narrower = binary(["11110000"] * 8), binary(["11100000"] * 8)
    assert metrics.boundary_iou(left_half, narrower) == pytest.approx(12 / (20 + 18 - 12))
    assert reference_boundary_iou(left_half, narrower) == pytest.approx(12 / 26)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.boundary_iou(np.zeros((3, 3), bool), np.zeros((3, 4), bool))


def _demo_truths():
    folder = DEMO_SNAPSHOT / "test" / "masks"
    return {p.stem: images.load_mask(p, images.image_size(images.load_rgb(DEMO_SNAPSHOT / "test" / "images" /
                                                                          f"{p.stem}.jpg")))
            for p in sorted(folder.glob("*.png"))[:6]}


@pytest.fixture(scope="module")
def demo_truths():
    return _demo_truths()


def _variants(mask):
    """Realistic disagreements: shifted, eroded, dilated, a bite taken out, cropped at the border."""
    kernel = np.ones((5, 5), np.uint8)
    bitten = mask.copy()
    rows, cols = np.nonzero(mask)
    bitten[rows.min():rows.min() + 12, cols.min():cols.max() // 2] = False
    cut = np.zeros_like(mask)  # moved right until 10 columns of the object fall off the image
    shift = mask.shape[1] - cols.max() + 9
    cut[:, shift:] = mask[:, :-shift]
    return {
        "shifted": np.roll(mask, (3, -4), axis=(0, 1)),
        "eroded": cv2.erode(mask.astype(np.uint8), kernel).astype(bool),
        "dilated": cv2.dilate(mask.astype(np.uint8), kernel).astype(bool),
        "bitten": bitten,
        "cut_by_the_border": cut,
    }


def test_matches_the_reference_on_demo_ground_truths(demo_truths):
    checked = 0
    for name, truth in demo_truths.items():
        for variant, other in _variants(truth).items():
            ours, theirs = metrics.boundary_iou(truth, other), reference_boundary_iou(truth, other)
            assert ours == pytest.approx(theirs, abs=1e-12), (name, variant)
            checked += 1
    assert checked == 30


def test_matches_the_reference_on_demo_candidate_predictions(demo_truths):
    from eval.backends.yolo_backend import YoloSegBackend

    backend = YoloSegBackend(resolve_checkpoint(str(DEMO_CHECKPOINT)), torch_threads=1)
    stems = list(demo_truths)[:4]
    photos = [images.load_rgb(DEMO_SNAPSHOT / "test" / "images" / f"{s}.jpg") for s in stems]
    predictions = [backend.predict([photo])[0] for photo in photos]
    values = []
    for stem, prediction in zip(stems, predictions):
        truth = demo_truths[stem]
        assert prediction.any() and not np.array_equal(prediction, truth), stem  # a real, imperfect mask
        ours = metrics.boundary_iou(truth, prediction)
        assert ours == pytest.approx(reference_boundary_iou(truth, prediction), abs=1e-12), stem
        values.append(ours)
    assert all(0.0 < v < 1.0 for v in values)


_MASKS = st.integers(1, 40).flatmap(lambda h: st.integers(1, 40).flatmap(
    lambda w: st.tuples(hnp.arrays(bool, (h, w)), hnp.arrays(bool, (h, w)))))


@settings(max_examples=150)
@given(_MASKS)
def test_matches_the_reference_on_arbitrary_masks(pair):
    truth, prediction = pair
    if not truth.any() and not prediction.any():
        return  # the reference divides 0 by 0 there; the gate's convention is tested above
    assert metrics.boundary_iou(truth, prediction) == pytest.approx(reference_boundary_iou(truth, prediction),
                                                                    abs=1e-12)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
