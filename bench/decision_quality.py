"""Decision-quality benchmark: how often each decision rule says go when the truth is known.

`bazel run //bench:decision_quality` (flags: --help). From the per-image rows of a metrics.json (the
committed demo's by default) it takes the (rembg - candidate) mask-IoU differences of one corpus and class,
centres them and shifts them so the true mean regression is exactly delta, then draws corpora of n images
from that population and decides the regression criterion (margin = its threshold in the criteria file)
under the point rule and under the confidence rule, with the gate's own interval code. It prints P(go) and
the go <-> no-go flip rate when a corpus is resampled, the targets as PASS/MISS, the Monte Carlo error of
the gate's interval bounds on the demo, and the time to compute every interval for 10,000 images.
"""

import os
import pathlib
import sys
import time

import numpy as np
from absl import app, flags

from eval.decision import statistics
from eval.decision.decide import BASELINE, CANDIDATE
from eval.decision.intervals import with_intervals
from eval.inputs.criteria import ALL, load_criteria
from eval.measures import legacy_measure
from eval.report.artifacts import load_report
from eval.scoring.scores import ImageScore, aggregate

_ROOT = pathlib.Path(__file__).absolute().parent.parent
_METRICS = flags.DEFINE_string("metrics", str(_ROOT / "reports" / "pottery-seg-demo-demo-v1" / "metrics.json"),
                               "metrics.json whose per-image rows are the population.")
_CRITERIA = flags.DEFINE_string("criteria", str(_ROOT / "configs" / "success_criteria.yaml"),
                                "Criteria file: the regression criterion's threshold is the margin; its "
                                "decision_rule's level is the confidence rule's level.")
_CORPUS = flags.DEFINE_enum("corpus", "test", ["test", "flagged"], "Corpus whose images form the population.")
_CLASS = flags.DEFINE_string("failure_class", ALL, "Failure class of the population (`all` = the whole corpus).")
_SIZES = flags.DEFINE_list("sizes", ["5", "10", "25", "50", "100", "400"], "Corpus sizes n to simulate.")
_REPLICATES = flags.DEFINE_integer("replicates", 4000, "Simulated corpora per (n, delta).", lower_bound=100)
_RESAMPLES = flags.DEFINE_integer("resamples", 2000, "Bootstrap resamples per simulated decision (the gate "
                                  "chooses its own count; this keeps the simulation fast).", lower_bound=100)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the simulation.")
_TIMING_IMAGES = flags.DEFINE_integer("timing_images", 10_000, "Images (per backend) for the interval timing.")
_POWER = 0.8


def population(metrics, corpus, failure_class):
    """Per-image (rembg - candidate) mask-IoU differences of one corpus and class."""
    rows = [r for r in metrics["per_image"] if r["corpus"] == corpus
            and (failure_class == ALL or failure_class in r["failure_classes"])]
    iou = {(r["source_backend"], r["image_id"]): r["mask_iou"] for r in rows}
    ids = sorted({r["image_id"] for r in rows})
    return np.array([iou[(BASELINE, i)] - iou[(CANDIDATE, i)] for i in ids])


def decisions(samples, deltas, margin, level, resamples, seed):
    """(point go, confidence go), each (len(deltas), replicates), for centred samples (replicates, n)
    shifted by each delta. A shift moves the mean and every bootstrap bound by the same amount."""
    means = samples.mean(axis=1)
    bounds = statistics.bootstrap_mean_bounds(samples, level, seed, support=(-1.0, 1.0), n_resamples=resamples)
    upper = np.array([b.upper for b in bounds])
    deltas = np.asarray(deltas)[:, None]
    return means + deltas <= margin, upper + deltas <= margin


def simulate(diffs, sizes, deltas, margin, level, replicates, resamples, seed):
    """{n: (P(go) point, P(go) confidence, flip point, flip confidence)}, each an array over deltas."""
    centred = diffs - diffs.mean()
    rng = np.random.default_rng(seed)
    out = {}
    for n in sizes:
        samples = centred[rng.integers(0, len(centred), (replicates, n))]
        again = np.take_along_axis(samples, rng.integers(0, n, (replicates, n)), axis=1)  # the corpus resampled
        point, confidence = decisions(samples, deltas, margin, level, resamples, seed + n)
        point2, confidence2 = decisions(again, deltas, margin, level, resamples, seed + n + 1)
        out[n] = (point.mean(axis=1), confidence.mean(axis=1), (point != point2).mean(axis=1),
                  (confidence != confidence2).mean(axis=1))
    return out


def monte_carlo_error(metrics, run_key="benchmark", seeds=6):
    """Largest s.d., over resampling seeds, of any interval bound the gate computes on `metrics`' images."""
    scores = [ImageScore(**{**r, "failure_classes": tuple(r["failure_classes"])}) for r in metrics["per_image"]]
    level = metrics["decision_rule"]["level"]
    runs = []
    for seed in range(seeds):
        aggregates = with_intervals(aggregate(scores), scores, f"{run_key}-{seed}", level)
        runs.append([(i.lower, i.upper) for a in aggregates for _, i in sorted(a.intervals.items())
                     if i.method == statistics.BOOTSTRAP])
    return float(np.array(runs).std(axis=0, ddof=1).max()), len(runs[0])


def timing_scores(metrics, n_images, seed=0):
    """n_images per backend drawn from `metrics`' images (both corpora, their classes kept)."""
    pairs = {}
    for r in metrics["per_image"]:
        pairs.setdefault((r["corpus"], r["image_id"]), {})[r["source_backend"]] = r
    keys = sorted(pairs)
    picks = np.random.default_rng(seed).integers(0, len(keys), n_images)
    out = []
    for k, pick in enumerate(picks):
        for row in pairs[keys[pick]].values():
            out.append(ImageScore(**{**row, "image_id": f"img-{k:06d}", "failure_classes":
                                     tuple(row["failure_classes"])}))
    return out


def time_intervals(metrics, n_images):
    scores = timing_scores(metrics, n_images)
    aggregates = aggregate(scores)
    start, cpu = time.perf_counter(), time.process_time()
    result = with_intervals(aggregates, scores, "timing", metrics["decision_rule"]["level"])
    return time.perf_counter() - start, time.process_time() - cpu, len(result), len({s.source_backend for s in scores})


def main(argv):
    del argv
    metrics = load_report(_METRICS.value).metrics
    criteria = load_criteria(_CRITERIA.value)
    level = criteria.decision_rule.level
    margin = next((c.threshold for c in criteria.criteria if c.measure == legacy_measure("max_mean_iou_regression")
                   and c.corpus == _CORPUS.value and c.failure_class in (_CLASS.value, "each")), None)
    if margin is None:
        sys.exit(f"{_CRITERIA.value}: no max_mean_iou_regression criterion on {_CORPUS.value}/{_CLASS.value}")
    diffs = population(metrics, _CORPUS.value, _CLASS.value)
    if len(diffs) < 2:
        sys.exit(f"{_METRICS.value}: fewer than 2 images in {_CORPUS.value}/{_CLASS.value}")
    sizes = [int(s) for s in _SIZES.value]
    deltas = [0.0, margin / 2, margin, 2 * margin]
    print(f"population: {len(diffs)} images of {_CORPUS.value}/{_CLASS.value} in {_METRICS.value}; per-image "
          f"regression s.d. {diffs.std(ddof=1):.4f}; margin {margin}; confidence level {level}; "
          f"{_REPLICATES.value} corpora per cell, {_RESAMPLES.value} resamples per decision")
    start = time.perf_counter()
    table = simulate(diffs, sizes, deltas, margin, level, _REPLICATES.value, _RESAMPLES.value, _SEED.value)
    elapsed = time.perf_counter() - start
    se = 0.5 / np.sqrt(_REPLICATES.value)
    print(f"\nP(go) and flip rate (go <-> no-go when the corpus is resampled); Monte Carlo s.e. <= {se:.3f}\n")
    print("| n | true regression δ | P(go) point | P(go) confidence | flip point | flip confidence |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        for k, delta in enumerate(deltas):
            p_point, p_conf, f_point, f_conf = (v[k] for v in table[n])
            print(f"| {n} | {delta:.3f} | {p_point:.3f} | {p_conf:.3f} | {f_point:.3f} | {f_conf:.3f} |")
    print(f"\n(simulation: {elapsed:.1f} s)\n")

    ok = True
    false_go = {n: table[n][1][2] for n in sizes}
    hit = all(p <= 1 - level for p in false_go.values())
    ok &= hit
    print(f"{'PASS' if hit else 'MISS'}  confidence rule: P(go | δ = margin) <= {1 - level:.2f} at every n: "
          + ", ".join(f"n={n}: {p:.3f}" for n, p in false_go.items())
          + "  (point rule: " + ", ".join(f"{table[n][0][2]:.3f}" for n in sizes) + ")")
    power = {n: table[n][1][0] for n in sizes}
    needed = next((n for k, n in enumerate(sizes) if all(power[m] >= _POWER for m in sizes[k:])), None)
    ok &= needed is not None
    print(f"{'PASS' if needed else 'MISS'}  confidence rule: P(go | δ = 0) >= {_POWER} from n = {needed}: "
          + ", ".join(f"n={n}: {p:.3f}" for n, p in power.items())
          + "  (point rule: " + ", ".join(f"{table[n][0][0]:.3f}" for n in sizes) + ")")

    mc, count = monte_carlo_error(metrics)
    stable = mc <= statistics.MC_TARGET * 1.5
    ok &= stable
    print(f"{'PASS' if stable else 'MISS'}  interval bounds stable at the 4th decimal: largest s.d. over 6 "
          f"resampling seeds of the {count} bootstrap bounds on {_METRICS.value}: {mc:.6f} "
          f"(target {statistics.MC_TARGET}, resample count chosen per group by statistics.resample_count)")
    seconds, cpu, n_aggregates, n_backends = time_intervals(metrics, _TIMING_IMAGES.value)
    fast = seconds < 1.0
    ok &= fast
    print(f"{'PASS' if fast else 'MISS'}  every interval for {_TIMING_IMAGES.value} images x {n_backends} backends "
          f"({n_aggregates} aggregates, every class; mask and Boundary IoU, paired): {seconds:.2f} s wall, "
          f"{cpu:.2f} s CPU (target < 1 s; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0 if ok else 1


if __name__ == "__main__":
    app.run(main)
