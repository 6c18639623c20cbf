"""Boundary IoU speed: the gate's eval.scoring.metrics.boundary_iou against the paper's reference algorithm.

The gate scores every image with both backends, so Boundary IoU runs twice per image. For photos from
demo size to 12 Mpixel this times, on the same (truth, prediction) pair of a pot with a handle (truth)
and a shifted, swollen, handle-less prediction: the gate's implementation (one erosion by a (2d+1) square,
cropped to each mask's bounding box), the reference (bench/boundary_reference.py: pad, d erosions by a
3x3 square, full image) and, for scale, the rest of the gate's per-image metrics (score_masks without
Boundary IoU). It checks that both Boundary IoUs agree, prints a table and writes a figure.

    bazel run //bench:boundary_iou_benchmark -- --out=boundary_iou_speed.png
"""

import functools
import math
import os
import pathlib
import sys
import time

from absl import app, flags

_REPO = pathlib.Path(__file__).absolute().parent.parent
if str(_REPO) not in sys.path:  # `python bench/boundary_iou_benchmark.py` from anywhere
    sys.path.insert(0, str(_REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench import boundary_reference  # noqa: E402
from eval.runtime import user_path  # noqa: E402
from eval.scoring import metrics  # noqa: E402

_SIZES = ((192, 256), (480, 640), (768, 1024), (1536, 2048), (3000, 4000))
_OUT = flags.DEFINE_string("out", "boundary_iou_speed.png", "Where to write the figure (PNG).")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timing repeats per size; the fastest is reported.", lower_bound=1)
_THREADS = flags.DEFINE_integer("cv2_threads", 1, "OpenCV threads for both implementations (the gate sets "
                                "none; 1 is what a single-core scoring worker sees).", lower_bound=0)


def pot_masks(height, width):
    """(truth, prediction): a pot body with a handle, and a shifted, swollen prediction without the handle."""
    truth = np.zeros((height, width), np.uint8)
    cx, cy, rx, ry = width // 2, height // 2, width // 5, height // 3
    cv2.ellipse(truth, (cx, cy), (rx, ry), 0, 0, 360, 1, -1)
    body = truth.copy()
    cv2.ellipse(truth, (cx + rx, cy), (rx // 3, ry // 3), 0, 0, 360, 1, max(2, width // 100))
    shift = np.float32([[1, 0, width / 100], [0, 1, height / 120]])
    prediction = cv2.warpAffine(cv2.dilate(body, np.ones((5, 5), np.uint8)), shift, (width, height),
                                flags=cv2.INTER_NEAREST)
    return truth.astype(bool), prediction.astype(bool)


def _fastest(fn, repeats):
    loops = 1
    while True:  # enough loops for ~50 ms per repeat, so the clock's resolution does not matter
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - start > 0.05 or loops >= 1 << 12:
            break
        loops *= 2
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - start) / loops)
    return best


def _without_boundary(truth, prediction):
    counts = metrics.pixel_counts(truth, prediction)
    return (metrics.mask_iou(counts), metrics.precision(counts), metrics.recall(counts),
            metrics.box_iou(metrics.bounding_box(truth), metrics.bounding_box(prediction)))


def measure(repeats):
    rows = []
    for height, width in _SIZES:
        truth, prediction = pot_masks(height, width)
        ours = metrics.boundary_iou(truth, prediction)
        theirs = boundary_reference.boundary_iou(truth, prediction)
        if abs(ours - theirs) > 1e-12:
            raise SystemExit(f"{height}x{width}: Boundary IoU {ours} differs from the reference {theirs}")
        rows.append({
            "size": f"{width}x{height}", "mpix": height * width / 1e6, "d": metrics.boundary_width(truth.shape),
            "boundary_iou": ours, "mask_iou": metrics.score_masks(truth, prediction).mask_iou,
            "ours": _fastest(functools.partial(metrics.boundary_iou, truth, prediction), repeats),
            "reference": _fastest(functools.partial(boundary_reference.boundary_iou, truth, prediction), repeats),
            "other_metrics": _fastest(functools.partial(_without_boundary, truth, prediction), repeats),
        })
    return rows


def figure(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    mpix = [r["mpix"] for r in rows]
    fig, (left, right) = pyplot.subplots(1, 2, figsize=(10, 4), dpi=100)
    for key, label in (("reference", "reference (pad + d x 3x3 erosions, full image)"),
                       ("ours", "gate (one (2d+1) erosion, bounding box)"),
                       ("other_metrics", "gate's other metrics (IoU, precision, recall, bbox)")):
        left.plot(mpix, [r[key] * 1e3 for r in rows], marker="o", label=label)
    left.set(xscale="log", yscale="log", xlabel="image size (Mpixel)", ylabel="ms per image pair (fastest)",
             title="Boundary IoU, one (truth, prediction) pair")
    left.legend(fontsize=7)
    right.bar([r["size"] for r in rows], [r["reference"] / r["ours"] for r in rows])
    right.axhline(1.0, color="black", linewidth=0.8)
    right.set(ylabel="reference time / gate time", title="speed-up of the gate's implementation")
    right.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})  # no version/date metadata: same bytes
    pyplot.close(fig)


def main(argv):
    del argv
    cv2.setNumThreads(_THREADS.value)
    rows = measure(_REPEATS.value)
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} thread(s); fastest of {_REPEATS.value} repeats")
    print(f"{'size':>10} {'Mpix':>6} {'d':>4} {'mask IoU':>9} {'bnd IoU':>8} {'gate ms':>9} {'ref ms':>9} "
          f"{'speed-up':>9} {'other ms':>9}")
    for r in rows:
        print(f"{r['size']:>10} {r['mpix']:6.2f} {r['d']:4d} {r['mask_iou']:9.4f} {r['boundary_iou']:8.4f} "
              f"{r['ours'] * 1e3:9.3f} {r['reference'] * 1e3:9.3f} {r['reference'] / r['ours']:8.2f}x "
              f"{r['other_metrics'] * 1e3:9.3f}")
    out = pathlib.Path(user_path(_OUT.value))
    figure(rows, out)
    print(f"figure: {out}")


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    app.run(main)
