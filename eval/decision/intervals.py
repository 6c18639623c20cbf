"""Intervals on the aggregates the decision uses, from the per-image scores (pure).

Per (corpus, failure class), a regression's interval is computed on the per-image differences (reference
minus backend on the same image: paired). Every bound is analytic (eval.decision.statistics: no resampling,
no seed), so an interval depends only on the values it is computed from: adding an incumbent, a criterion
on another metric, a class or a shard never moves it. Intervals are computed from the full-precision
per-image values (rounded only when written), so anyone can recompute them from `per_image` (to its
rounding). Their names come from eval.measures.
"""

import collections
import dataclasses

import numpy as np

from eval.decision import statistics
from eval.inputs.criteria import ALL
from eval import roles
from eval.measures import MEAN, RATE, interval_metrics, regression_name, value_name
from eval.roles import BASELINE


def _group_intervals(rows, level, metrics):
    """{backend: {name: Interval}} for one group; `rows` maps backend -> image id -> ImageScore."""
    backends = sorted(rows)
    ids = sorted(rows[backends[0]])
    columns = []  # (backend, name, values, support)
    for metric in metrics:  # ImageScore fields, as eval.measures.METRICS names them
        values = {b: np.array([getattr(rows[b][i], metric) for i in ids]) for b in backends}
        for b in backends:
            columns.append((b, value_name(metric, MEAN), values[b], (0.0, 1.0)))
            columns.extend((b, regression_name(metric, reference), values[reference] - values[b], (-1.0, 1.0))
                           for reference in roles.references() if reference in rows and b not in (reference, BASELINE))
    bounds = statistics.mean_bounds(np.stack([c[2] for c in columns]), level, [c[3] for c in columns])
    out = {b: {} for b in backends}
    for (b, name, _, _), interval in zip(columns, bounds):
        out[b][name] = interval
    for b in backends:
        passed = sum(rows[b][i].passed for i in ids)
        out[b][value_name("passed", RATE)] = statistics.proportion_bounds(passed, len(ids), level)
    return out


def with_intervals(aggregates, scores, level, measures=()):
    """`aggregates` with their `intervals` filled: every backend's mean of each reported metric and of each
    metric `measures` (the criteria's eval.measures.Measure) read, its regression of those vs each reference
    present (paired), and its pass rate (Clopper-Pearson)."""
    metrics = interval_metrics(measures)
    groups = collections.defaultdict(lambda: collections.defaultdict(dict))
    for s in scores:
        for failure_class in (ALL, *s.failure_classes):
            groups[(s.corpus, failure_class)][s.source_backend][s.image_id] = s
    intervals = {key: _group_intervals(rows, level, metrics) for key, rows in groups.items()}
    return tuple(dataclasses.replace(a, intervals=intervals[(a.corpus, a.failure_class)][a.source_backend])
                 for a in aggregates)
