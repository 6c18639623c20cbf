"""Loading one gate run for the trend report: any metrics.json schema the gate has written, validated.

A run is a report folder (its metrics.json, and timings.json when the gate wrote one) or a metrics.json
file alone (no timings: what a committed, reproducible example is built from). Fields every schema version has are required (a missing one is an error naming the file and the
key); fields added later (Boundary IoU, intervals, the incumbent, timings) are optional and read as absent.
"""

import dataclasses
import json
import math
import pathlib

from eval.errors import GateInputError
from eval.measures import MEAN, interval_metrics, value_name

SCHEMAS = ("pottery-gate-metrics/v1", "pottery-gate-metrics/v2")
TIMINGS_SCHEMA_PREFIX = "pottery-gate-timings/"
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


def _get(document, path, source, kind=None):
    value = document
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise GateInputError(source, f"not a gate metrics file: missing {'.'.join(path)}")
        value = value[key]
    if kind is not None and not isinstance(value, kind):
        raise GateInputError(source, f"{'.'.join(path)} has the wrong type ({type(value).__name__})")
    return value


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _stat(row, metric):
    """A Stat of an aggregate's metric mean, with the interval schema v2 records in `intervals.<metric>_mean`
    ({"lower", "upper", "level", "method"}); None when the run has no such metric."""
    value = row.get(metric)
    if not (isinstance(value, dict) and _number(value.get("mean"))):
        return None
    interval = (row.get("intervals") or {}).get(value_name(metric, MEAN)) or {}
    if _number(interval.get("lower")) and _number(interval.get("upper")):
        return Stat(float(value["mean"]), float(interval["lower"]), float(interval["upper"]))
    return Stat(float(value["mean"]))


def _aggregates(document, source):
    table = {}
    for index, row in enumerate(_get(document, ("aggregates",), source, list)):
        where = ("aggregates", str(index))
        key = tuple(_get(row, (k,), source, str) for k in ("source_backend", "corpus", "failure_class"))
        entry = {"n_images": _get(row, ("n_images",), source, int)}
        for metric in METRICS:
            stat = _stat(row, metric)
            if metric == "mask_iou" and stat is None:
                raise GateInputError(source, f"{'.'.join(where)}.mask_iou has no mean")
            if stat is not None:
                entry[metric] = stat
        table[key] = entry
    return table


def _per_image(document, source):
    table = {}
    for row in _get(document, ("per_image",), source, list):
        key = tuple(_get(row, (k,), source, str) for k in ("source_backend", "corpus", "image_id"))
        entry = {"mask_iou": float(_get(row, ("mask_iou",), source, (int, float))),
                 "classes": tuple(_get(row, ("failure_classes",), source, list)),
                 "truth_pixels": row.get("ground_truth_pixels")}
        if _number(row.get("boundary_iou")):
            entry["boundary_iou"] = float(row["boundary_iou"])
        table[key] = entry
    return table


def _read_json(path, what):
    try:
        document = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise GateInputError(path, f"cannot read {what} ({err.strerror})") from None
    except (UnicodeDecodeError, ValueError) as err:
        raise GateInputError(path, f"{what} is not valid JSON ({err})") from None
    if not isinstance(document, dict):
        raise GateInputError(path, f"{what} is not a JSON object")
    return document


def _timings(folder):
    path = folder / "timings.json"
    if not path.is_file():
        return None
    document = _read_json(path, "timings.json")
    if not str(document.get("schema", "")).startswith(TIMINGS_SCHEMA_PREFIX):
        raise GateInputError(path, "not a gate timings file (no pottery-gate-timings schema)")
    return document


def load_run(spec):
    """The run at `spec` (a report folder or a metrics.json); raises GateInputError naming the file."""
    path = pathlib.Path(spec)
    source = path / "metrics.json" if path.is_dir() else path
    if not source.is_file():
        raise GateInputError(spec, "no metrics.json here: pass a gate report folder or its metrics.json")
    document = _read_json(source, "metrics.json")
    schema = document.get("schema")
    if schema not in SCHEMAS:
        raise GateInputError(source, f"unknown metrics schema {schema!r}; this trend reader knows "
                                     f"{', '.join(SCHEMAS)}")
    provenance = _get(document, ("provenance",), source, dict)
    for path_ in (("checkpoint", "name"), ("checkpoint", "sha256"), ("dataset", "version"),
                  ("dataset", "sha256"), ("criteria", "sha256"), ("baseline_config", "sha256")):
        _get(provenance, path_, source, str)
    deciding = _get(document, ("deciding_criterion",), source, dict)
    criteria = {_get(r, ("id",), source, str): (_get(r, ("status",), source, str), r.get("observed"))
                for r in _get(document, ("criteria_results",), source, list)}
    return Run(source, schema, _get(document, ("recommendation",), source, str),
               _get(deciding, ("id",), source, str), str(deciding.get("summary", "")), provenance,
               _aggregates(document, source), criteria, _per_image(document, source),
               _timings(path) if path.is_dir() else None)
