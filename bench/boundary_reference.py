"""The Boundary IoU reference algorithm as published, reimplemented with OpenCV, to check and time ours against.

Cheng et al., "Boundary IoU: Improving Object-Centric Image Segmentation Evaluation", CVPR 2021;
boundary-iou-api, boundary_iou/utils/boundary_utils.py: pad by one zero pixel, erode `dilation` times
with a 3x3 square, subtract. Used by tests/test_boundary_iou.py and bench/boundary_iou_benchmark.py.
"""

import cv2
import numpy as np


def mask_to_boundary(mask, dilation_ratio=0.02):
    """The mask's inner boundary band (uint8 0/1), as the reference computes it."""
    mask = mask.astype(np.uint8)
    h, w = mask.shape
    img_diag = np.sqrt(h ** 2 + w ** 2)
    dilation = int(round(dilation_ratio * img_diag))
    if dilation < 1:
        dilation = 1
    new_mask = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    kernel = np.ones((3, 3), dtype=np.uint8)
    new_mask_erode = cv2.erode(new_mask, kernel, iterations=dilation)
    return mask - new_mask_erode[1:h + 1, 1:w + 1]


def boundary_iou(gt, dt, dilation_ratio=0.02):
    """The reference's Boundary IoU (NaN when both masks are empty: the gate defines that case itself)."""
    gt_boundary = mask_to_boundary(gt, dilation_ratio)
    dt_boundary = mask_to_boundary(dt, dilation_ratio)
    intersection = ((gt_boundary * dt_boundary) > 0).sum()
    union = ((gt_boundary + dt_boundary) > 0).sum()
    return intersection / union
