"""Per-image scores and their aggregates, keyed by (source_backend, corpus, failure_class).

Values stay at full precision: the decision compares them unrounded, so a mean of 0.8499996 never meets a
0.85 threshold. They are rounded to DECIMALS (round_metric) only where they are written (eval/report/render.py),
which keeps metrics.json and per_image.csv byte-stable. A value within FLOAT_NOISE of its threshold is on
it: a mean or difference of values that sit exactly on a threshold can land a few ulps either side of it
in float arithmetic, while a real shortfall (0.85 - 0.8499996) is over a million times larger.
"""

import collections
import dataclasses

from eval.inputs.criteria import ALL
from eval.scoring import metrics

DECIMALS = 6
FLOAT_NOISE = 1e-12


def within(margin):
    """Whether a full-precision `margin` (value - threshold, signed so >= 0 passes) meets its threshold."""
    return margin >= -FLOAT_NOISE


def round_metric(value):
    """`value` as the files record it."""
    return round(float(value), DECIMALS)


@dataclasses.dataclass(frozen=True)
class ImageScore:
    source_backend: str
    corpus: str
    image_id: str
    failure_classes: tuple
    mask_iou: float
    precision: float
    recall: float
    bbox_iou_secondary: float
    boundary_iou: float  # secondary, like bbox IoU: no pass/fail of its own unless a criterion names it
    passed: bool
    true_positive_pixels: int
    predicted_pixels: int
    ground_truth_pixels: int


def image_score(backend, corpus, image_id, failure_classes, ground_truth, prediction, iou_threshold):
    """Score one prediction; `passed` means mask IoU >= the locked threshold."""
    s = metrics.score_masks(ground_truth, prediction)
    return ImageScore(backend, corpus, image_id, tuple(failure_classes), float(s.mask_iou), float(s.precision),
                      float(s.recall), float(s.bbox_iou), float(s.boundary_iou), within(s.mask_iou - iou_threshold),
                      s.counts.true_positive, s.counts.predicted, s.counts.ground_truth)


@dataclasses.dataclass(frozen=True)
class Aggregate:
    source_backend: str
    corpus: str
    failure_class: str
    n_images: int
    n_empty_truth: int  # images whose ground truth is empty (no pot): they agree with an empty prediction only
    mask_iou: dict  # mean, median, p10, p90
    precision_mean: float
    recall_mean: float
    pass_rate: float
    bbox_iou_secondary_mean: float
    boundary_iou: dict  # mean, median, p10, p90 (secondary)
    # {statistic name: eval.decision.statistics.Interval}, filled by eval.decision.intervals.with_intervals
    intervals: dict = dataclasses.field(default_factory=dict)

    @property
    def key(self):
        return self.source_backend, self.corpus, self.failure_class


def _aggregate(key, scores):
    def mean(field):
        return sum(getattr(s, field) for s in scores) / len(scores)

    def distribution(field):
        return {k: float(v) for k, v in metrics.distribution([getattr(s, field) for s in scores]).items()}

    empty_truth = sum(s.ground_truth_pixels == 0 for s in scores)
    return Aggregate(*key, len(scores), empty_truth, distribution("mask_iou"), mean("precision"), mean("recall"),
                     sum(s.passed for s in scores) / len(scores), mean("bbox_iou_secondary"),
                     distribution("boundary_iou"))


def aggregate(scores):
    """Aggregates of every (backend, corpus, class) with at least one image, sorted by key; `all` included."""
    groups = collections.defaultdict(list)
    for s in scores:
        for failure_class in (ALL, *s.failure_classes):
            groups[(s.source_backend, s.corpus, failure_class)].append(s)
    return tuple(_aggregate(key, groups[key]) for key in sorted(groups))
