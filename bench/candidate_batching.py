"""Benchmark of the candidate stage at several batch sizes (issue 9): speed, and whether masks change.

    bazel run //bench:candidate_batching                    the demo snapshot (photos of six sizes)
    bazel run //bench:candidate_batching -- --dataset=DIR --batch_sizes=1,8 --repeats=5

Times two ways of running the candidate on the same photos, each at every batch size:

  plain      as the gate did before issue 9: photos in id order, ultralytics' predict on the whole batch,
             which letterboxes a mixed-shape batch to the full square, a same-shaped one to the minimal
             rectangle
  gate       the gate now: photos in its order (per corpus, like-shaped photos side by side), its backend
             (eval/backends/yolo_backend.py) letterboxing every photo as a one-photo request, one forward
             pass per letterboxed shape

and prints seconds (the fastest of --repeats), images/s, the speed-up of each batch size over batch 1,
and for each way how many photos' mask IoU (against the ground truth) changed from batch 1, and by how
much at most. Exit status 1 when the gate's masks differ between batch sizes, else 0.
"""

import pathlib
import sys
import time

import numpy as np
from absl import app, flags

_REPO = pathlib.Path(__file__).absolute().parent.parent  # runfiles root under `bazel run`, else the checkout
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from eval.runtime import user_path  # noqa: E402

# Runfiles are symlinks, which the snapshot loader refuses: take the directory the manifest really is in.
_DEMO_SNAPSHOT = (_REPO / "demo" / "assets" / "snapshot" / "snapshot.yaml").resolve().parent
_DATASET = flags.DEFINE_string("dataset", str(_DEMO_SNAPSHOT),
                               "Snapshot directory whose photos are run. Default: the demo snapshot.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", str(_REPO / "demo" / "assets" / "pottery-seg-demo.pt"),
                                  "Candidate YOLO-seg checkpoint. Default: the demo checkpoint.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "8"], "Batch sizes to run; the first is the reference.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Runs per configuration; the fastest counts.", lower_bound=1)
_IMGSZ = flags.DEFINE_integer("imgsz", 0, "Candidate image size; 0: the checkpoint's training size.")
_CONF = flags.DEFINE_float("conf", 0.25, "Candidate confidence threshold.")
_TORCH_THREADS = flags.DEFINE_integer("torch_threads", 2, "Torch intra-op threads.", lower_bound=1)


def _plain_predict(model, imgsz, conf, torch_threads):
    """The candidate's predict as it was before issue 9: ultralytics' batch letterbox, one call per batch
    (with the gate's thread count, which ultralytics' set-up had reset: the same threads for both ways)."""
    import torch

    def predict(photos):
        torch.set_num_threads(torch_threads)
        bgr = [np.ascontiguousarray(p[..., ::-1]) for p in photos]
        results = model.predict(bgr, imgsz=imgsz, conf=conf, device="cpu", retina_masks=True, verbose=False,
                                batch=len(bgr))
        return [np.zeros(p.shape[:2], bool) if r.masks is None else (r.masks.data.cpu().numpy() > 0.5).any(axis=0)
                for p, r in zip(photos, results)]

    return predict


def _run_once(predict, corpora, batch_size):
    """(seconds, {(corpus, id): mask IoU}) of one pass of `predict` over every corpus in batches."""
    from eval.scoring.metrics import mask_iou, pixel_counts

    started = time.perf_counter()
    masks = {}
    for decoded in corpora:
        for start in range(0, len(decoded), batch_size):
            chunk = decoded[start:start + batch_size]
            for (key, _, _), mask in zip(chunk, predict([photo for _, photo, _ in chunk])):
                masks[key] = mask
    seconds = time.perf_counter() - started
    return seconds, {key: mask_iou(pixel_counts(truth, masks[key])) for decoded in corpora for key, _, truth in decoded}


def main(argv):
    del argv  # unused
    from eval import gate, runtime
    from eval.backends.yolo_backend import YoloSegBackend, load_yolo
    from eval.inputs.checkpoint import resolve_checkpoint
    from eval.inputs.snapshot import FLAGGED, TEST, load_snapshot

    runtime.prepare(_TORCH_THREADS.value)
    snapshot = load_snapshot(pathlib.Path(user_path(_DATASET.value)))
    checkpoint = resolve_checkpoint(user_path(_CHECKPOINT.value))
    by_id = [[((i.corpus, i.image_id), *gate._decode(i)) for i in snapshot.items if i.corpus == corpus
              and not i.problem] for corpus in (TEST, FLAGGED)]
    order = {i.image_path: gate._batching_order(i) for i in snapshot.items}
    items = {(i.corpus, i.image_id): i.image_path for i in snapshot.items}
    in_gate_order = [sorted(c, key=lambda row: order[items[row[0]]]) for c in by_id]
    n = sum(len(c) for c in by_id)
    sizes = {photo.shape[:2] for c in by_id for _, photo, _ in c}

    backend = YoloSegBackend(checkpoint, _CONF.value, _IMGSZ.value, "cpu", _TORCH_THREADS.value)
    imgsz = backend.provenance()["imgsz"]
    ways = {"plain": (_plain_predict(load_yolo(checkpoint), imgsz, _CONF.value, _TORCH_THREADS.value), by_id),
            "gate": (backend.predict, in_gate_order)}
    batch_sizes = [int(b) for b in _BATCH_SIZES.value]
    print(f"candidate stage: {n} photos in {len(sizes)} sizes, imgsz {imgsz}, {_TORCH_THREADS.value} torch "
          f"threads, fastest of {_REPEATS.value}")
    print(f"{'way':<6} {'batch':>5} {'seconds':>8} {'img/s':>7} {'speed-up':>8}  IoU changed vs batch {batch_sizes[0]}")
    for predict, corpora in ways.values():
        predict([corpora[0][0][1]])  # warm-up: model set-up is not inference
    # Repeats interleaved across configurations, so a busy spell on a shared machine hits them all alike.
    runs = [(way, batch_size) for way in ways for batch_size in batch_sizes]
    seconds, ious = {run: float("inf") for run in runs}, {}
    for _ in range(_REPEATS.value):
        for way, batch_size in runs:
            took, ious[way, batch_size] = _run_once(*ways[way], batch_size)
            seconds[way, batch_size] = min(seconds[way, batch_size], took)
    invariant = True
    for way, batch_size in runs:
        reference, base = ious[way, batch_sizes[0]], seconds[way, batch_sizes[0]]
        changes = [abs(ious[way, batch_size][k] - reference[k]) for k in reference]
        changed = sum(c > 0 for c in changes)
        invariant &= way != "gate" or not changed
        took = seconds[way, batch_size]
        print(f"{way:<6} {batch_size:>5} {took:>8.3f} {n / took:>7.1f} {base / took:>7.2f}x  "
              f"{changed}/{n} (max {max(changes):.4f})")
    print("gate masks identical at every batch size" if invariant else "GATE MASKS DIFFER BETWEEN BATCH SIZES")
    return 0 if invariant else 1


if __name__ == "__main__":
    app.run(main)
