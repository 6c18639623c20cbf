"""Intervals on the aggregates the decision uses, from the per-image scores (pure).

Per (corpus, failure class), ONE bootstrap resample of image ids serves the candidate's and rembg's
columns, so the candidate's mean IoU and its regression against rembg are computed on the same draws (a
paired bootstrap); the incumbent's columns get their own resample from the same seed, and so do the
columns of metrics only a criterion reads (_group_intervals). Intervals are computed from the full-precision
per-image values (rounded only when written), with a seed derived from the run key and the group, so anyone
can recompute them from `per_image` (to its rounding), and a sharded run (the Modal app) gets the same numbers
as a single process. Their names come from eval.measures.
"""

import collections
import dataclasses

import numpy as np

from eval.decision import statistics
from eval.inputs.criteria import ALL
from eval.measures import MEAN, METRICS, RATE, REFERENCES, interval_metrics, regression_name, value_name
from eval.scoring.scores import BASELINE, CANDIDATE

# The backends every run has: resampled apart from the optional incumbent, which so never changes their intervals.
CORE_BACKENDS = (CANDIDATE, BASELINE)


def _group_intervals(rows, level, seed, metrics):
    """{backend: {name: Interval}} for one group; `rows` maps backend -> image id -> ImageScore.

    The CORE_BACKENDS' columns of the reported metrics share one resample; the optional backends' columns
    and the columns of metrics only a criterion reads get others (same seed, each with the resample count
    its own spread needs): neither an incumbent nor a criterion on another metric changes the
    candidate-vs-rembg bounds, and their own bounds meet the same Monte Carlo target.
    """
    backends = sorted(rows)
    ids = sorted(rows[backends[0]])
    columns = collections.defaultdict(list)  # (is core, is reported) -> [(backend, name, values, support)]
    for metric in metrics:  # ImageScore fields, as eval.measures.METRICS names them
        reported = METRICS[metric].reported
        values = {b: np.array([getattr(rows[b][i], metric) for i in ids]) for b in backends}
        for b in backends:
            columns[b in CORE_BACKENDS, reported].append((b, value_name(metric, MEAN), values[b], (0.0, 1.0)))
            for reference in REFERENCES:
                if reference in rows and b not in (reference, BASELINE):
                    core = b in CORE_BACKENDS and reference in CORE_BACKENDS
                    columns[core, reported].append((b, regression_name(metric, reference),
                                                    values[reference] - values[b], (-1.0, 1.0)))
    out = {b: {} for b in backends}
    for key in sorted(columns, reverse=True):
        group = columns[key]
        bounds = statistics.bootstrap_mean_bounds(np.stack([c[2] for c in group]), level, seed, [c[3] for c in group])
        for (b, name, _, _), interval in zip(group, bounds):
            out[b][name] = interval
    for b in backends:
        passed = sum(rows[b][i].passed for i in ids)
        out[b][value_name("passed", RATE)] = statistics.wilson_bounds(passed, len(ids), level)
    return out


def with_intervals(aggregates, scores, run_key, level, measures=()):
    """`aggregates` with their `intervals` filled: every backend's mean of each reported metric and of each
    metric `measures` (the criteria's eval.measures.Measure) read (bootstrap), its regression of those vs
    each reference present (paired bootstrap), and its pass rate (Wilson)."""
    metrics = interval_metrics(measures)
    groups = collections.defaultdict(lambda: collections.defaultdict(dict))
    for s in scores:
        for failure_class in (ALL, *s.failure_classes):
            groups[(s.corpus, failure_class)][s.source_backend][s.image_id] = s
    intervals = {key: _group_intervals(rows, level, statistics.seed_for(run_key, *key), metrics)
                 for key, rows in groups.items()}
    return tuple(dataclasses.replace(a, intervals=intervals[(a.corpus, a.failure_class)][a.source_backend])
                 for a in aggregates)
