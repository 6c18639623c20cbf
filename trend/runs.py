"""One gate run as the trend report sees it, read through the gate's report loader.

A run is a report folder (its metrics.json, and timings.json when the gate wrote one) or a metrics.json
file alone (no timings: what a committed, reproducible example is built from). eval.report.artifacts checks
it (manifest digests, the schema of its version, a decision that follows from its criteria); this module
only arranges it for comparison. Fields added in later schema versions (Boundary IoU, intervals, the
incumbent, timings) are read as absent from a run that lacks them.
"""

import dataclasses
import pathlib

from eval.measures import MEAN, interval_metrics, value_name
from eval.report.artifacts import load_report

METRICS = interval_metrics()  # the metrics whose means, with intervals, every run records: mask and Boundary IoU


@dataclasses.dataclass(frozen=True)
class Stat:
    """A mean with its interval when the run recorded one."""

    mean: float
    low: float | None = None
    high: float | None = None


@dataclasses.dataclass(frozen=True)
class Run:
    source: pathlib.Path  # the metrics.json read
    schema: str
    recommendation: str
    deciding_id: str
    deciding_summary: str
    provenance: dict
    aggregates: dict  # (backend, corpus, class) -> {metric: Stat, "n_images": int}
    criteria: dict  # id -> (status, observed)
    per_image: dict  # (backend, corpus, image_id) -> {"mask_iou", "boundary_iou"?, "classes", "truth_pixels"}
    timings: dict | None  # timings.json as written, or None

    @property
    def checkpoint(self):
        return self.provenance["checkpoint"]

    @property
    def dataset(self):
        return self.provenance["dataset"]


def _stat(row, metric):
    """A Stat of an aggregate's metric mean, with the interval schema v2 records in `intervals.<metric>_mean`
    ({"lower", "upper", "level", "method"}); None when the run has no such metric."""
    if metric not in row:
        return None
    interval = row.get("intervals", {}).get(value_name(metric, MEAN))
    if interval:
        return Stat(float(row[metric]["mean"]), float(interval["lower"]), float(interval["upper"]))
    return Stat(float(row[metric]["mean"]))


def _aggregates(document):
    table = {}
    for row in document["aggregates"]:
        entry = {"n_images": row["n_images"]}
        entry.update({metric: _stat(row, metric) for metric in METRICS if metric in row})
        table[row["source_backend"], row["corpus"], row["failure_class"]] = entry
    return table


def _per_image(document):
    table = {}
    for row in document["per_image"]:
        entry = {"mask_iou": float(row["mask_iou"]), "classes": tuple(row["failure_classes"]),
                 "truth_pixels": row["ground_truth_pixels"]}
        if "boundary_iou" in row:
            entry["boundary_iou"] = float(row["boundary_iou"])
        table[row["source_backend"], row["corpus"], row["image_id"]] = entry
    return table


def load_run(spec):
    """The run at `spec` (a report folder or a metrics.json); raises GateInputError naming the file."""
    report = load_report(spec)
    document = report.metrics
    deciding = document["deciding_criterion"]
    criteria = {r["id"]: (r["status"], r["observed"]) for r in document["criteria_results"]}
    return Run(report.source, document["schema"], document["recommendation"], deciding["id"],
               deciding["summary"], document["provenance"], _aggregates(document), criteria,
               _per_image(document), report.timings)
