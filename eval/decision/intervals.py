"""Intervals on the aggregates the decision uses, from the per-image scores (pure).

Per (corpus, failure class), ONE bootstrap resample of image ids serves the candidate's and rembg's
columns, so the candidate's mean IoU and its regression against rembg are computed on the same draws (a
paired bootstrap); the incumbent's columns get their own resample from the same seed (_group_intervals). Intervals are computed from the per-image values as metrics.json records them (rounded), with
a seed derived from the run key and the group, so anyone can recompute them from `per_image`, and a
sharded run (the Modal app) gets the same numbers as a single process.
"""

import collections
import dataclasses

import numpy as np

from eval.decision import statistics
from eval.inputs.criteria import ALL
from eval.scoring.scores import BASELINE, CANDIDATE, INCUMBENT, round_metric

METRICS = ("mask_iou", "boundary_iou")  # per-image ImageScore fields whose means get intervals
PASS_RATE = "pass_rate"
REFERENCES = (BASELINE, INCUMBENT)  # what backends are regressed against; the first, the baseline, against nothing
# The backends every run has: resampled apart from the optional incumbent, which so never changes their intervals.
CORE_BACKENDS = (CANDIDATE, BASELINE)


def mean_name(metric):
    """Interval name of a backend's mean `metric`."""
    return f"{metric}_mean"


def regression_name(metric, reference):
    """Interval name of a backend's drop in mean `metric` below `reference` (reference mean - backend mean)."""
    return f"{metric}_regression_vs_{reference}"


def _rounded(interval):
    return dataclasses.replace(interval, lower=round_metric(interval.lower), upper=round_metric(interval.upper))


def _group_intervals(rows, level, seed):
    """{backend: {name: Interval}} for one group; `rows` maps backend -> image id -> ImageScore.

    The CORE_BACKENDS' columns share one resample, the optional backends' columns another (same seed,
    each with the resample count its own spread needs): an incumbent never changes the candidate-vs-rembg
    bounds, and its own bounds meet the same Monte Carlo target.
    """
    backends = sorted(rows)
    ids = sorted(rows[backends[0]])
    columns = {True: [], False: []}  # is core -> [(backend, name, values, support)]
    for metric in METRICS:
        values = {b: np.array([getattr(rows[b][i], metric) for i in ids]) for b in backends}
        for b in backends:
            columns[b in CORE_BACKENDS].append((b, mean_name(metric), values[b], (0.0, 1.0)))
            for reference in REFERENCES:
                if reference in rows and b not in (reference, BASELINE):
                    core = b in CORE_BACKENDS and reference in CORE_BACKENDS
                    columns[core].append((b, regression_name(metric, reference), values[reference] - values[b],
                                          (-1.0, 1.0)))
    out = {b: {} for b in backends}
    for group in (columns[True], columns[False]):
        if not group:
            continue
        bounds = statistics.bootstrap_mean_bounds(np.stack([c[2] for c in group]), level, seed, [c[3] for c in group])
        for (b, name, _, _), interval in zip(group, bounds):
            out[b][name] = _rounded(interval)
    for b in backends:
        passed = sum(rows[b][i].passed for i in ids)
        out[b][PASS_RATE] = _rounded(statistics.wilson_bounds(passed, len(ids), level))
    return out


def with_intervals(aggregates, scores, run_key, level):
    """`aggregates` with their `intervals` filled: every backend's mean mask and Boundary IoU (bootstrap)
    and pass rate (Wilson), and its regression of both vs each reference present (paired bootstrap)."""
    groups = collections.defaultdict(lambda: collections.defaultdict(dict))
    for s in scores:
        for failure_class in (ALL, *s.failure_classes):
            groups[(s.corpus, failure_class)][s.source_backend][s.image_id] = s
    intervals = {key: _group_intervals(rows, level, statistics.seed_for(run_key, *key))
                 for key, rows in groups.items()}
    return tuple(dataclasses.replace(a, intervals=intervals[(a.corpus, a.failure_class)][a.source_backend])
                 for a in aggregates)
