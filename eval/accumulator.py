"""The one shape of everything the gate accumulates over images and merges across shards (torchmetrics'
Metric: update / merge_state / compute).

An accumulator has `update(...)` (add one observation), `merge(other)` (add another accumulator's state,
in place, returning self) and `result()` (what it computed). Merging is associative and order-free, so a
sharded run (the Modal app) gets the same result as a single process by merging its shards' accumulators:
eval.gate.Scored (scores, failures and gallery picks), eval.report.gallery.GalleryPicker and
eval.timings.Meter follow it.
"""

import functools
import typing


class Accumulator(typing.Protocol):
    def update(self, *observation): ...

    def merge(self, other): ...

    def result(self): ...


def merged(empty, parts):
    """`empty` (a fresh accumulator) with every one of `parts` merged into it; `parts` are left as they were."""
    return functools.reduce(lambda into, part: into.merge(part), parts, empty)
