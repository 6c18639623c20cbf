"""What the gate measures and what a success criterion may bound: the one registry of metrics x statistics x
bound x reference, read by the criteria schema (eval.inputs.criteria), the verdicts and intervals
(eval.decision), the report (eval.report.render) and the trend report (trend.runs).

A criterion bounds a Measure: a `statistic` of a per-image `metric` over a corpus and failure class, from
below (`bound: min`, the value must reach the threshold) or from above (`max`, it must not exceed it). With
`vs` naming a reference backend (rembg or the incumbent) it is a regression instead: the reference's
statistic minus the candidate's on the same images, positive when the candidate is worse, and only ever
bounded from above. Which statistics a criterion may bound depends on the decision rule: the point rule
compares the observed value, so any statistic the aggregates record will do; the confidence rule tests an
interval, so only statistics with a valid one: a mean (Student's t at a calibrated tail over images, paired
for a regression) and the pass rate (Clopper-Pearson; there is no interval on a pass-rate regression).
Quantiles (median, p10, p90) have none: no interval on a sample quantile is reliable at the sizes the gate
sees. Under the confidence rule a criterion also needs `min_images_to_pass` images: below it no bound at
the rule's level can clear the threshold honestly (eval.decision.statistics states the conventions).

Adding a metric is one METRICS row (its Aggregate field must exist); a criterion on it is then one YAML entry.

The criteria files of schema_version 1 and 2 name a measure by `kind`; LEGACY_KINDS maps each onto it.
"""

import dataclasses
import math

from eval.roles import BASELINE

POINT, CONFIDENCE = "point", "confidence"  # the decision rules (eval.inputs.criteria.DecisionRule.kind)
MIN, MAX = "min", "max"  # the bounds: observed must reach the threshold / must not exceed it
MEAN, RATE, MEDIAN, P10, P90 = "mean", "rate", "median", "p10", "p90"
STATISTICS = (MEAN, RATE, MEDIAN, P10, P90)
_DISTRIBUTION = (MEAN, MEDIAN, P10, P90)  # eval.scoring.metrics.distribution's keys


@dataclasses.dataclass(frozen=True)
class Metric:
    """A per-image metric as the aggregates record it.

    `field` is the eval.scoring.scores.Aggregate field holding it: a dict {statistic: value} for a
    distribution, else the value of its only statistic. `reported`: every run computes its intervals (the
    report's columns show them); the others get intervals only when a criterion reads them.
    """

    label: str
    field: str
    statistics: tuple
    reported: bool = False


METRICS = {
    "mask_iou": Metric("IoU", "mask_iou", _DISTRIBUTION, reported=True),
    "boundary_iou": Metric("Boundary IoU", "boundary_iou", _DISTRIBUTION, reported=True),
    "precision": Metric("pixel precision", "precision_mean", (MEAN,)),
    "recall": Metric("pixel recall", "recall_mean", (MEAN,)),
    "bbox_iou_secondary": Metric("bbox IoU (secondary)", "bbox_iou_secondary_mean", (MEAN,)),
    "passed": Metric("pass", "pass_rate", (RATE,), reported=True),  # an image passes at iou_pass_threshold
}
# The statistics each decision rule can bound, and the (statistic, is a regression) pairs with an interval.
RULE_STATISTICS = {POINT: STATISTICS, CONFIDENCE: (MEAN, RATE)}
_INTERVALS = {(MEAN, False), (MEAN, True), (RATE, False)}


@dataclasses.dataclass(frozen=True)
class Measure:
    """What one criterion bounds (see the module docstring); `vs` None measures the candidate alone."""

    metric: str
    statistic: str
    bound: str
    vs: str | None = None

    @property
    def label(self):
        """How summaries name it: "candidate mean IoU", "candidate pass rate", "mean-IoU regression vs rembg"."""
        label = METRICS[self.metric].label
        words = f"{label} {self.statistic}" if self.statistic == RATE else f"{self.statistic} {label}"
        return f"{'-'.join(words.split())} regression vs {self.vs}" if self.vs else f"candidate {words}"

    @property
    def interval_name(self):
        """The candidate Aggregate's interval on this quantity (eval.decision.intervals); None: there is none."""
        if (self.statistic, self.vs is not None) not in _INTERVALS:
            return None
        if self.vs:
            return regression_name(self.metric, self.vs)
        return value_name(self.metric, self.statistic)

    def value(self, aggregate):
        """The statistic of `aggregate` (an eval.scoring.scores.Aggregate) this measure reads."""
        held = getattr(aggregate, METRICS[self.metric].field)
        return held[self.statistic] if isinstance(held, dict) else held

    def problem(self, rule):
        """Why this measure cannot be a criterion under decision rule `rule`, or None."""
        metric = METRICS[self.metric]
        if self.statistic not in metric.statistics:
            return (f"statistic {self.statistic!r} of metric {self.metric!r} is not recorded; it has "
                    f"{', '.join(metric.statistics)}")
        if self.vs and self.bound != MAX:
            return f"a regression (vs {self.vs}) is the drop below the reference: its bound must be {MAX!r}"
        if rule == CONFIDENCE and self.interval_name is None:
            what = f"a {self.statistic} regression" if self.vs else f"the {self.statistic}"
            return (f"the confidence rule needs an interval and {what} has none (it can bound "
                    f"{' or '.join(RULE_STATISTICS[CONFIDENCE])}, a regression on a mean only); use the point rule")
        return None


# Under the confidence rule, the fewest images from which a bound on a mean may pass: with fewer, the
# spread (and a skewed tail) is too poorly seen for Student's t, and bench:decision_quality's bimodal and
# flagged populations give P(go | true regression = margin) of 0.15-0.35 at n = 2-4.
MIN_IMAGES_MEAN = 5


def min_images_to_pass(statistic, bound, threshold, level):
    """The smallest n from which a criterion on `statistic` can pass under the confidence rule at `level`.

    A mean: MIN_IMAGES_MEAN. A pass rate bounded from below: the smallest n whose Clopper-Pearson lower
    bound with every image passing, (1 - level)^(1/n), reaches the threshold; from above (or a threshold
    of 0), one image.

    Example:
        >>> min_images_to_pass(RATE, MIN, 0.6, 0.95), min_images_to_pass(MEAN, MIN, 0.85, 0.95)
        (6, 5)
    """
    if statistic != RATE:
        return MIN_IMAGES_MEAN
    if bound == MAX or threshold <= 0:
        return 1
    if threshold >= 1:
        return None  # a lower bound below 1 never reaches 1: such a criterion can never pass
    return max(1, math.ceil(math.log(1 - level) / math.log(threshold) - 1e-9))


def value_name(metric, statistic):
    """The name of an Aggregate's `statistic` of `metric`, and of the interval on it: "mask_iou_mean",
    "precision_mean", "pass_rate"."""
    field = METRICS[metric].field
    return f"{field}_{statistic}" if len(METRICS[metric].statistics) > 1 else field


def regression_name(metric, reference):
    """Interval name of a backend's drop in mean `metric` below `reference` (reference mean - backend mean)."""
    return f"{metric}_regression_vs_{reference}"


# schema_version 1 and 2 criterion kinds: kind -> (metric, statistic, bound, is a regression vs `vs`).
LEGACY_KINDS = {
    "min_pass_rate": ("passed", RATE, MIN, False),
    "min_mean_iou": ("mask_iou", MEAN, MIN, False),
    "max_mean_iou_regression": ("mask_iou", MEAN, MAX, True),
    "min_mean_boundary_iou": ("boundary_iou", MEAN, MIN, False),
    "max_mean_boundary_iou_regression": ("boundary_iou", MEAN, MAX, True),
}


def legacy_measure(kind, vs=BASELINE):
    """The Measure a schema_version 1 or 2 `kind` names (`vs`: a regression kind's reference)."""
    metric, statistic, bound, regression = LEGACY_KINDS[kind]
    return Measure(metric, statistic, bound, vs if regression else None)


def interval_metrics(measures=()):
    """Metrics whose mean intervals a run computes: the reported ones, then those `measures` read, in
    METRICS order."""
    read = {m.metric for m in measures if m.statistic == MEAN}
    return tuple(name for name, metric in METRICS.items()
                 if MEAN in metric.statistics and (metric.reported or name in read))
