"""Comparing gate runs in order (pure): what differs, series per corpus and class, status changes, movers.

Runs on the same inputs (dataset content, criteria, baseline config) are compared on their recorded
aggregates, intervals included. Otherwise a number is comparable only on the images the runs share, so
every mean is recomputed from the per-image rows of the images present in every run (same corpus, id and
ground-truth pixel count; for a failure class, in that class in every run) and intervals, which were
computed on other image sets, are not shown. Either way the report says which inputs differ.
"""

import dataclasses
import statistics

from eval.roles import CANDIDATE
from trend.runs import METRICS, Stat

ALL = "all"
# Inputs whose difference makes recorded aggregates incomparable, and the other settings worth naming.
_INPUTS = (("dataset content", ("dataset", "sha256")), ("criteria", ("criteria", "sha256")),
           ("baseline config", ("baseline_config", "sha256")))
_NOTED = (("dataset version", ("dataset", "version")), ("metrics schema", None),
          ("IoU pass threshold", ("iou_pass_threshold",)), ("harness version", ("harness_version",)),
          ("candidate conf", ("backends", "candidate", "conf")),
          ("candidate imgsz", ("backends", "candidate", "imgsz")),
          ("candidate device", ("backends", "candidate", "device")),
          ("incumbent checkpoint", ("backends", "incumbent", "checkpoint_sha256")))


def _lookup(run, path):
    if path is None:
        return run.schema
    value = run.provenance
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


@dataclasses.dataclass(frozen=True)
class Difference:
    after_run: int  # index of the later run of the consecutive pair
    what: str
    before: object
    after: object


def differences(runs):
    """Inputs and settings that differ between consecutive runs, in run order."""
    found = []
    for i in range(1, len(runs)):
        for what, path in _INPUTS + _NOTED:
            before, after = _lookup(runs[i - 1], path), _lookup(runs[i], path)
            if before != after:
                found.append(Difference(i, what, before, after))
    return tuple(found)


def same_inputs(runs):
    """True when every run scored the same images against the same criteria and baseline config."""
    return all(len({str(_lookup(r, path)) for r in runs}) == 1 for _, path in _INPUTS)


def _image_key(key, row):
    _, corpus, image_id = key
    return corpus, image_id, row["truth_pixels"]


def shared_images(runs):
    """(corpus, image_id, truth pixels) scored by the candidate in every run: the common ground."""
    sets = [{_image_key(k, row) for k, row in run.per_image.items() if k[0] == "candidate"} for run in runs]
    return set.intersection(*sets) if sets else set()


@dataclasses.dataclass(frozen=True)
class Series:
    backend: str
    corpus: str
    failure_class: str
    metric: str
    points: tuple  # per run: Stat or None (the run has no such number)
    n_images: tuple  # per run: images behind the point (0 where None)


def _recorded(runs, backend, corpus, failure_class, metric):
    entries = [run.aggregates.get((backend, corpus, failure_class), {}) for run in runs]
    return tuple(e.get(metric) for e in entries), tuple(e.get("n_images", 0) if e.get(metric) else 0 for e in entries)


def _recomputed(runs, shared, backend, corpus, failure_class, metric):
    """Means over the shared images that are in `failure_class` in every run (`all`: every shared image)."""
    rows_per_run = []
    for run in runs:
        rows = {}
        for key, row in run.per_image.items():
            image = _image_key(key, row)
            if key[0] == backend and key[1] == corpus and image in shared:
                rows[image] = row
        rows_per_run.append(rows)
    members = set.intersection(*(set(rows) for rows in rows_per_run)) if rows_per_run else set()
    if failure_class != ALL:
        members = {m for m in members if all(failure_class in rows[m]["classes"] for rows in rows_per_run)}
    points, counts = [], []
    for rows in rows_per_run:
        values = [rows[m][metric] for m in sorted(members) if metric in rows[m]]
        complete = values and len(values) == len(members)
        points.append(Stat(round(statistics.fmean(values), 6)) if complete else None)
        counts.append(len(values) if complete else 0)
    return tuple(points), tuple(counts)


def series(runs):
    """Every (backend, corpus, class, metric) series any run has, sorted; recomputed on shared images
    when the runs' inputs differ."""
    keys = sorted({k for run in runs for k in run.aggregates})
    backends = sorted({k[0] for k in keys}, key=lambda b: (b != CANDIDATE, b))  # the candidate first
    comparable = same_inputs(runs)
    shared = None if comparable else shared_images(runs)
    found = []
    for corpus, failure_class in sorted({(k[1], k[2]) for k in keys}, key=lambda k: (k[0], k[1] != ALL, k[1])):
        for metric in METRICS:
            for backend in backends:
                if comparable:
                    points, counts = _recorded(runs, backend, corpus, failure_class, metric)
                else:
                    points, counts = _recomputed(runs, shared, backend, corpus, failure_class, metric)
                if any(p is not None for p in points):
                    found.append(Series(backend, corpus, failure_class, metric, points, counts))
    return tuple(found)


@dataclasses.dataclass(frozen=True)
class StatusChange:
    after_run: int
    criterion: str
    before: tuple | None  # (status, observed), None where the earlier run had no such criterion
    after: tuple | None


def status_changes(runs):
    """Criteria whose status changed (or that appeared or disappeared) between consecutive runs."""
    changes = []
    for i in range(1, len(runs)):
        before, after = runs[i - 1].criteria, runs[i].criteria
        for criterion in sorted(set(before) | set(after)):
            b, a = before.get(criterion), after.get(criterion)
            if (b and b[0]) != (a and a[0]):
                changes.append(StatusChange(i, criterion, b, a))
    return tuple(changes)


@dataclasses.dataclass(frozen=True)
class Mover:
    after_run: int
    corpus: str
    image_id: str
    before: float
    after: float

    @property
    def delta(self):
        return round(self.after - self.before, 6)


def movers(runs, count):
    """Per consecutive pair, the `count` shared images whose candidate mask IoU moved most (ties by id)."""
    found = []
    for i in range(1, len(runs)):
        pair = runs[i - 1:i + 1]
        shared = shared_images(pair)
        ious = [{(c, n): row["mask_iou"] for (b, c, n), row in run.per_image.items()
                 if b == "candidate" and _image_key((b, c, n), row) in shared} for run in pair]
        moved = [Mover(i, c, n, ious[0][(c, n)], ious[1][(c, n)]) for (c, n) in sorted(ious[0])]
        moved = [m for m in moved if m.delta != 0]
        moved.sort(key=lambda m: (-abs(m.delta), m.corpus, m.image_id))
        found.extend(moved[:count])
    return tuple(found)


def shared_counts(runs):
    """Per consecutive pair: (images the earlier run scored, the later, both)."""
    counts = []
    for i in range(1, len(runs)):
        sets = [{_image_key(k, row) for k, row in run.per_image.items() if k[0] == "candidate"}
                for run in runs[i - 1:i + 1]]
        counts.append((len(sets[0]), len(sets[1]), len(sets[0] & sets[1])))
    return tuple(counts)
