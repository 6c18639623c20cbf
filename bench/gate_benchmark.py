"""Benchmark of the promotion gate (issue 4): per-stage timings, peak RSS and the issue's ratio targets.

Generates a scaled synthetic corpus (a valid snapshot directory), then measures, each configuration in a
fresh subprocess of its own (so peak RSS is per run, read with os.wait4):

  cold   the gate (eval.pipeline.run_gate) with an empty baseline-mask cache
  warm   the gate again on the same corpus and cache (rembg masks come from the cache)
  naive  the script a user would otherwise write: per image rembg.remove(session=...),
         YOLO(...).predict, numpy IoU, a CSV of the results
  kernel eval.scoring.metrics against torchmetrics' BinaryJaccardIndex and pycocotools' mask IoU, same masks
  4x     (unless --norss_scale_check) a cold gate on a corpus 4x as large, for the peak-RSS target
  scale  the candidate alone on photos of --width x --height and of 640x480 (0.3 Mpixel) at the same imgsz:
         ms per photo at each size, and the model forward pass's share (ultralytics' predictor.inference)

and prints one table of stages (seconds, share of the run and images/s, peak RSS, the machine's load
average when each run started: the machine may be shared), the equality checks (cold and warm metrics.json
byte-identical; the gate's IoUs and pixel counts identical to the naive script's; the three metric
implementations agree), and each target as PASS/MISS with the measured ratio. Exit status: 0 when every
equality check holds (a MISS is a measurement, not a failure), 1 otherwise.

Stage timings of the gate are taken from outside the library: the backends are wrapped in timing
subclasses and the decode, scoring and rendering functions the gate calls are wrapped in place (see
_instrument_gate). Every wrapper counts its calls, and the benchmark refuses to report figures if one of
them did not see every image (the library changed under it).
"""

import collections
import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from absl import app, flags

_REPO = pathlib.Path(__file__).absolute().parent.parent  # runfiles root under `bazel run`, else the checkout
if str(_REPO) not in sys.path:  # `python bench/gate_benchmark.py` from anywhere
    sys.path.insert(0, str(_REPO))

from bench import corpus as corpus_lib  # noqa: E402
from eval.cli import DEFINE_path, parse_flags  # noqa: E402 - light: the heavy eval imports stay in the workers

_DEMO_CHECKPOINT = _REPO / "demo" / "assets" / "pottery-seg-demo.pt"

_IMAGES = flags.DEFINE_integer(
    "images", 500, "Images in the corpus (a quarter of them flagged CropRun rows, the rest the test split).",
    lower_bound=2)
_WIDTH = flags.DEFINE_integer("width", 1024, "Width of every generated photo, pixels.", lower_bound=32)
_HEIGHT = flags.DEFINE_integer("height", 768, "Height of every generated photo, pixels.", lower_bound=32)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the corpus generator (each image draws from (seed, index)).")
_CHECKPOINT = DEFINE_path(
    "checkpoint", None, "Candidate YOLO-seg checkpoint. Default: demo/assets/pottery-seg-demo.pt when present, "
    "else an untrained yolov8n-seg built from ultralytics' model yaml (no download).")
_CRITERIA = DEFINE_path(
    "criteria", str(_REPO / "configs" / "success_criteria.yaml"), "Success criteria the gate runs with.")
_BASELINE_CONFIG = DEFINE_path(
    "baseline_config", str(_REPO / "configs" / "rembg_production.yaml"),
    "Production rembg config; the naive script uses its session settings too, so both compute the same masks.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "The gate's --batch_size (candidate inference).", lower_bound=1)
_TORCH_THREADS = flags.DEFINE_integer(
    "torch_threads", 2, "Torch intra-op threads for the gate and the naive script alike.", lower_bound=1)
_RUNS = flags.DEFINE_integer(
    "runs", 1, "Run cold, warm and naive this many times each, interleaved (a fresh cache per cold run), and "
    "report the fastest of each: on a shared machine a busy spell otherwise lands on one configuration.",
    lower_bound=1)
_KERNEL_REPEATS = flags.DEFINE_integer(
    "kernel_repeats", 5, "Metric-kernel comparison: each implementation runs this many times on every mask pair; "
    "the fastest run of each pair counts.", lower_bound=1)
_RSS_SCALE_CHECK = flags.DEFINE_bool(
    "rss_scale_check", True, "Also run a cold gate on a corpus 4x as large and compare its peak RSS with the "
    "1x cold run's (slow: about 4x the cold run). --norss_scale_check skips it.")
_WORK_DIR = DEFINE_path(
    "work_dir", None, "Where the corpora, caches, reports and per-run results go. Default: a temp dir, removed "
    "at the end unless --keep.")
_KEEP = flags.DEFINE_bool("keep", False, "Keep the default temp work dir (its path is printed).")
_JSON_OUT = DEFINE_path("json_out", None, "Also write every figure and check as JSON to this file.")
_QUIET = flags.DEFINE_bool("quiet", False, "No progress lines from the gate runs on stderr.")
_WORKER = flags.DEFINE_enum(
    "worker", None, ["gate", "naive", "kernel", "scale"], "Internal: run one measured configuration (the benchmark "
    "re-invokes itself with this flag, one subprocess per configuration).")
_WORKER_SPEC = flags.DEFINE_string("worker_spec", None, "Internal: the JSON spec of a --worker run.")

STAGES = ("setup", "decode", "baseline", "baseline_forward", "candidate", "candidate_forward", "scoring",
          "rendering", "other")
STAGE_LABELS = {
    "setup": "setup (inputs, digests, models)",
    "decode": "decode (photo + truth)",
    "baseline": "baseline inference",
    "baseline_forward": "  of which rembg.remove",
    "candidate": "candidate inference",
    "candidate_forward": "  of which model forward",
    "scoring": "scoring",
    "rendering": "rendering",
    "other": "other (loop, unattributed)",
    "total": "total (excl. imports)",
    "imports": "imports (not in total)",
    "cache": "mask cache I/O",
}
TARGET_WARM_SPEEDUP = 5.0
TARGET_COLD_VS_NAIVE = 1.0
TARGET_NON_FORWARD_SHARE = 0.10
TARGET_RSS_GROWTH = 1.10
TARGET_PEAK_RSS_MIB = 2560  # for 12-Mpixel photos at the default settings, everything loaded
TARGET_CANDIDATE_SCALE = 3.0  # candidate ms per photo at --width x --height over ms per 0.3-Mpixel photo
SMALL_SHAPE = (640, 480)
SCALE_PHOTOS = 6  # photos per size in the candidate-scale run (after one warm-up photo)
KERNEL_TOLERANCE = 1e-9
PROJECT_TO = 500  # the corpus size, for the projection printed after a smaller run


# ------------------------------------------------------------------------------------------ stage clock


class StageClock:
    """Wall time per stage as the union of timed intervals (decode runs on several threads at once)."""

    def __init__(self):
        self._intervals = collections.defaultdict(list)
        self.items = collections.Counter()  # images (or calls) seen per stage
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def stage(self, name, items=1):
        start = time.perf_counter()
        try:
            yield
        finally:
            end = time.perf_counter()
            with self._lock:
                self._intervals[name].append((start, end))
                self.items[name] += items

    def wrap(self, name, function):
        def timed(*args, **kwargs):
            with self.stage(name):
                return function(*args, **kwargs)

        timed.__wrapped__ = function
        return timed

    def seconds(self, name):
        total, reach = 0.0, float("-inf")
        for start, end in sorted(self._intervals[name]):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total


def _peak_rss_self_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --------------------------------------------------------------------------------------------- workers


def _prepare_runtime(torch_threads):
    """Offline switches and thread counts (eval.runtime), then the heavy imports; returns their seconds."""
    start = time.perf_counter()
    from eval import runtime

    runtime.prepare(torch_threads)
    import onnxruntime  # noqa: F401
    import rembg  # noqa: F401
    import ultralytics  # noqa: F401

    return time.perf_counter() - start


def _instrument_gate(clock):
    """Wrap what the gate calls so each stage is timed from outside the library.

    baseline  = CachedBackend.predict of rembg (cache lookups and writes, plus rembg on misses)
    baseline_forward = RembgBackend.each_image (the rembg.remove calls, side by side, only)
    candidate = CachedBackend.predict of the candidate (cache lookups and writes, plus YOLO on misses)
    candidate_forward = the candidate's model forward passes (ultralytics' predictor.inference)
    decode = eval.gate._try_decode (on the decode threads)
    scoring   = eval.gate.image_score + eval.report.gallery.make_case + eval.gate.combine (aggregate, decide)
    rendering = eval.report.render.render_all + eval.report.outputs.Destination.publish; evaluate and run_gate
    give the totals.
    """
    from eval import gate, pipeline
    from eval.report import gallery
    from eval.report import outputs
    from eval.report import render as report

    class TimedRembg(pipeline.RembgBackend):
        def each_image(self, predict_one, images):  # what predict and the gate's TimedBackend both call
            with clock.stage("baseline_forward", len(images)):
                return super().each_image(predict_one, images)

    class TimedCached(pipeline.CachedBackend):
        def predict(self, images):
            with clock.stage("baseline" if self.name == "rembg" else self.name, len(images)):
                return super().predict(images)

    class TimedYolo(pipeline.YoloSegBackend):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._predictor.inference = clock.wrap("candidate_forward", self._predictor.inference)

    pipeline.RembgBackend, pipeline.CachedBackend, pipeline.YoloSegBackend = TimedRembg, TimedCached, TimedYolo
    gate._try_decode = clock.wrap("decode", gate._try_decode)
    gate.image_score = clock.wrap("scoring", gate.image_score)
    gallery.make_case = clock.wrap("scoring", gallery.make_case)
    gate.combine = clock.wrap("scoring", gate.combine)
    pipeline.evaluate = clock.wrap("evaluate", pipeline.evaluate)
    report.render_all = clock.wrap("rendering", report.render_all)
    outputs.Destination.publish = clock.wrap("rendering", outputs.Destination.publish)


def _gate_worker(spec):
    imports = _prepare_runtime(spec["torch_threads"])
    from eval.options import GateOptions
    from eval.pipeline import run_gate
    from eval.report.artifacts import load_report
    from eval.timings import SCHEMA as TIMINGS_SCHEMA

    clock = StageClock()
    _instrument_gate(clock)
    options = GateOptions(checkpoint=spec["checkpoint"], dataset=spec["dataset"], criteria=spec["criteria"],
                          baseline_config=spec["baseline_config"], reports_root=spec["output_dir"],
                          output_dir=spec["output_dir"], batch_size=spec["batch_size"],
                          torch_threads=spec["torch_threads"], quiet=spec["quiet"], baseline_cache=True)
    with clock.stage("total"):
        result, output_dir = run_gate(options)
    n = spec["n_images"]
    seen = {"decode": clock.items["decode"], "baseline": clock.items["baseline"],
            "candidate": clock.items["candidate"], "rendering": clock.items["rendering"]}
    expected = {"decode": n, "baseline": n, "candidate": n, "rendering": 2}
    if seen != expected or result.not_evaluated:
        raise RuntimeError(f"stage hooks saw {seen}, expected {expected} (not evaluated: "
                           f"{result.not_evaluated[:3]}); has eval.gate/eval.pipeline changed? see _instrument_gate")
    stages = {name: clock.seconds(name) for name in ("decode", "baseline", "baseline_forward", "candidate",
                                                      "candidate_forward", "scoring", "rendering")}
    evaluate, total = clock.seconds("evaluate"), clock.seconds("total")
    # Everything timed inside evaluate() (combine() included) is subtracted; what is left is the loop itself.
    stages["other"] = evaluate - sum(stages[s] for s in ("decode", "baseline", "candidate", "scoring"))
    stages["setup"] = total - evaluate - stages["rendering"]
    metrics_bytes = (pathlib.Path(output_dir) / "metrics.json").read_bytes()
    timings = load_report(output_dir).timings  # the gate's own account: what each mask cache served
    if timings.get("schema") != TIMINGS_SCHEMA:
        raise RuntimeError(f"timings.json schema {timings.get('schema')!r}, expected {TIMINGS_SCHEMA}")
    return {
        "stages": stages, "total": total, "imports": imports,
        "forward": stages["baseline_forward"] + stages["candidate_forward"],
        "cache": {name: {field: timings["backends"][name]["cache"][field] for field in ("hits", "misses")}
                  for name in ("rembg", "candidate")},
        "gate_stages": timings["stages"],
        "metrics_sha256": hashlib.sha256(metrics_bytes).hexdigest(),
        "recommendation": result.decision.recommendation,
        "ious": [[s.corpus, s.image_id, s.source_backend, s.true_positive_pixels, s.predicted_pixels,
                  s.ground_truth_pixels, s.mask_iou] for s in result.scores],
        "peak_rss_self_mib": _peak_rss_self_mib(),
    }


def _naive_worker(spec):
    """The script a user would write without the gate (timed per stage, nothing else changed)."""
    imports = _prepare_runtime(spec["torch_threads"])  # same offline switches and torch threads as the gate
    import csv

    import numpy as np
    import onnxruntime
    import rembg
    from PIL import Image, ImageOps
    from ultralytics import YOLO

    from eval import sanitise  # every CSV the project writes is guarded against formula injection
    from eval.inputs.baseline_config import load_baseline_config

    clock = StageClock()
    with clock.stage("total"):
        with clock.stage("setup"):
            config = load_baseline_config(spec["baseline_config"])  # the gate's session settings, arena included
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = config.intra_op_num_threads
            options.inter_op_num_threads = config.inter_op_num_threads
            options.enable_cpu_mem_arena = config.enable_cpu_mem_arena
            session = rembg.new_session(config.model, sess_opts=options, providers=list(config.providers))
            remove_kwargs = dict(config.remove_kwargs)
            model = YOLO(spec["checkpoint"])
            rows = []
        for corpus, image_id, photo_path, mask_path in corpus_lib.pairs(spec["dataset"]):
            with clock.stage("decode"):
                photo = ImageOps.exif_transpose(Image.open(photo_path)).convert("RGB")  # phones rotate by EXIF
                truth = np.array(Image.open(mask_path).convert("L")) >= 128
            with clock.stage("baseline"), clock.stage("baseline_forward"):
                cutout = rembg.remove(photo, session=session, **remove_kwargs)
                baseline = np.array(cutout.convert("RGBA"))[..., 3] >= config.alpha_threshold
            with clock.stage("candidate"):
                result = model.predict(photo, conf=0.25, retina_masks=True, verbose=False)[0]
                if result.masks is None:
                    candidate = np.zeros(truth.shape, dtype=bool)
                else:
                    candidate = (result.masks.data.cpu().numpy() > 0.5).any(axis=0)
            with clock.stage("scoring"):
                for backend, mask in (("rembg", baseline), ("candidate", candidate)):
                    intersection = int(np.logical_and(truth, mask).sum())
                    union = int(np.logical_or(truth, mask).sum())
                    iou = intersection / union if union else 1.0
                    rows.append([corpus, image_id, backend, intersection, int(mask.sum()), int(truth.sum()), iou])
        with clock.stage("rendering"):
            out = pathlib.Path(spec["output_dir"])
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "ious.csv", "w", newline="") as handle:
                csv.writer(handle).writerows([["corpus", "image_id", "backend", "tp", "predicted", "truth", "iou"],
                                              *([sanitise.csv_cell(v) for v in row] for row in rows)])
    stages = {name: clock.seconds(name) for name in STAGES if name != "other"}
    total = clock.seconds("total")
    stages["other"] = total - sum(stages[s] for s in stages if not s.endswith("_forward"))
    return {"stages": stages, "total": total, "imports": imports,
            "forward": stages["baseline_forward"] + stages["candidate"], "ious": rows,
            "peak_rss_self_mib": _peak_rss_self_mib()}


def _perturbed(truth, rng):
    """A plausible prediction of `truth`: shifted a few pixels, with a false-positive patch."""
    import numpy as np

    h, w = truth.shape
    prediction = np.roll(truth, (int(rng.integers(-h // 40, h // 40 + 1)), int(rng.integers(-w // 40, w // 40 + 1))),
                         axis=(0, 1))
    top, left = int(rng.integers(0, h - h // 8)), int(rng.integers(0, w - w // 8))
    prediction[top:top + h // 10, left:left + w // 12] = True
    return prediction


def _kernel_worker(spec):
    """Time eval.scoring.metrics, torchmetrics and pycocotools on the same (truth, prediction) pairs, one pair at a
    time."""
    import numpy as np
    import torch
    from PIL import Image
    from pycocotools import mask as coco_mask
    from torchmetrics.classification import BinaryJaccardIndex

    from eval.scoring import metrics

    torch.set_num_threads(spec["torch_threads"])
    jaccard = BinaryJaccardIndex()
    jaccard_unchecked = BinaryJaccardIndex(validate_args=False)  # skips the {0, 1} value check on every call

    def kernel_full(truth, prediction):
        return metrics.score_masks(truth, prediction).mask_iou

    def kernel_iou(truth, prediction):
        return metrics.mask_iou(metrics.pixel_counts(truth, prediction))

    def torchmetrics_iou(truth, prediction, metric=jaccard):
        metric.update(torch.from_numpy(prediction.view(np.uint8)), torch.from_numpy(truth.view(np.uint8)))
        value = metric.compute()
        metric.reset()
        return value

    def torchmetrics_unchecked_iou(truth, prediction):
        return torchmetrics_iou(truth, prediction, jaccard_unchecked)

    def pycocotools_iou(truth, prediction):
        rles = [coco_mask.encode(np.asfortranarray(m, dtype=np.uint8)) for m in (truth, prediction)]
        return coco_mask.iou([rles[1]], [rles[0]], [0])[0, 0]

    implementations = {"eval.scoring.metrics.score_masks": kernel_full, "eval.scoring.metrics IoU only": kernel_iou,
                       "torchmetrics BinaryJaccardIndex": torchmetrics_iou,
                       "  same, validate_args=False": torchmetrics_unchecked_iou,
                       "pycocotools encode + iou": pycocotools_iou}
    seconds = dict.fromkeys(implementations, 0.0)
    worst = {"pycocotools": 0.0, "torchmetrics counts (float64)": 0.0, "torchmetrics float32 vs kernel float32": 0.0}
    rng = np.random.default_rng(spec["seed"])
    n_pairs = 0
    for _, _, _, mask_path in corpus_lib.pairs(spec["dataset"]):
        truth = np.array(Image.open(mask_path).convert("L")) >= 128
        prediction = _perturbed(truth, rng)
        for name, function in implementations.items():  # interleaved, so load changes hit every one alike
            best = float("inf")
            for _ in range(spec["repeats"]):
                start = time.perf_counter()
                function(truth, prediction)
                best = min(best, time.perf_counter() - start)
            seconds[name] += best
        reference = kernel_full(truth, prediction)
        assert reference == kernel_iou(truth, prediction)
        worst["pycocotools"] = max(worst["pycocotools"], abs(float(pycocotools_iou(truth, prediction)) - reference))
        # BinaryJaccardIndex divides in float32 (confmat.float()): compare its counts exactly in float64, and
        # its float32 result with the kernel's IoU rounded to float32 (exact: double rounding is innocuous here).
        jaccard.update(torch.from_numpy(prediction.view(np.uint8)), torch.from_numpy(truth.view(np.uint8)))
        (_, fp), (fn, tp) = jaccard.confmat.tolist()
        value = float(jaccard.compute())
        jaccard.reset()
        worst["torchmetrics counts (float64)"] = max(worst["torchmetrics counts (float64)"],
                                                     abs(tp / (tp + fp + fn) - reference))
        worst["torchmetrics float32 vs kernel float32"] = max(worst["torchmetrics float32 vs kernel float32"],
                                                              abs(value - float(np.float32(reference))))
        n_pairs += 1
    import importlib.metadata

    return {"seconds": seconds, "pairs": n_pairs, "max_abs_diff": worst,
            "versions": {name: importlib.metadata.version(name) for name in ("torchmetrics", "pycocotools")},
            "peak_rss_self_mib": _peak_rss_self_mib()}


def _scale_worker(spec):
    """The candidate alone, photo by photo, at two sizes and one imgsz: ms per photo and the forward's share."""
    _prepare_runtime(spec["torch_threads"])
    from eval.backends.yolo_backend import YoloSegBackend
    from eval.inputs.checkpoint import resolve_checkpoint

    candidate = YoloSegBackend(resolve_checkpoint(spec["checkpoint"]), torch_threads=spec["torch_threads"])
    clock = StageClock()
    candidate._predictor.inference = clock.wrap("forward", candidate._predictor.inference)
    found = {}
    for width, height in (SMALL_SHAPE, tuple(spec["shape"])):
        photos = [corpus_lib.draw(spec["seed"], index, width, height)[0] for index in range(SCALE_PHOTOS + 1)]
        candidate.predict(photos[:1])  # warm-up, not timed
        forward_before, seconds = clock.seconds("forward"), []
        for photo in photos[1:]:
            start = time.perf_counter()
            candidate.predict([photo])
            seconds.append(time.perf_counter() - start)
        found[f"{width}x{height}"] = {"ms_per_photo": 1000 * sorted(seconds)[len(seconds) // 2],
                                      "forward_share": (clock.seconds("forward") - forward_before) / sum(seconds)}
    return {"sizes": found, "peak_rss_self_mib": _peak_rss_self_mib()}


_WORKERS = {"gate": _gate_worker, "naive": _naive_worker, "kernel": _kernel_worker, "scale": _scale_worker}


# ------------------------------------------------------------------------------------------------ parent


@dataclasses.dataclass
class Run:
    name: str
    result: dict
    peak_rss_mib: float  # ru_maxrss of the child process, from os.wait4
    wall: float
    load: float  # the machine's 1-minute load average when the run started


def _run_child(name, mode, spec, work):
    """Run one configuration in a fresh interpreter; returns its Run (raises if it failed)."""
    spec_path, result_path = work / f"{name}.spec.json", work / f"{name}.result.json"
    spec_path.write_text(json.dumps({**spec, "result": str(result_path)}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")]))}
    env.update(GATE_CACHE_DIR=spec.get("cache_dir", str(work / "cache-other")))
    load = os.getloadavg()[0]
    print(f"[bench] {name}: running ({mode}), load average {load:.2f}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, str(pathlib.Path(__file__).absolute()), f"--worker={mode}",
                              f"--worker_spec={spec_path}"], env=env, stdout=sys.stderr)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"the {name} run failed (exit status {child.returncode}); see its output above")
    result = json.loads(result_path.read_text())
    print(f"[bench] {name}: done in {wall:.1f}s, peak RSS {usage.ru_maxrss / 1024:.0f} MiB", file=sys.stderr,
          flush=True)
    return Run(name, result, usage.ru_maxrss / 1024, wall, load)


def _checkpoint(work):
    """A private copy of the candidate checkpoint, so a file being rewritten elsewhere cannot change mid-run."""
    target = work / "candidate.pt"
    if _CHECKPOINT.value:
        shutil.copyfile(_CHECKPOINT.value, target)
        return target, pathlib.Path(_CHECKPOINT.value).name
    if _DEMO_CHECKPOINT.is_file():
        shutil.copyfile(_DEMO_CHECKPOINT, target)
        return target, f"{_DEMO_CHECKPOINT.name} (demo)"
    code = ("import sys; from eval import runtime; runtime.prepare(1); from ultralytics import YOLO; "
            "YOLO('yolov8n-seg.yaml').save(sys.argv[1])")
    env = {**os.environ, "PYTHONPATH": str(_REPO), "GATE_CACHE_DIR": str(work / "cache-other")}
    subprocess.run([sys.executable, "-c", code, str(target)], check=True, env=env, stdout=sys.stderr)
    return target, "untrained yolov8n-seg (from yaml; demo checkpoint absent)"


def _rate(n, seconds):
    return f"{n / seconds:9.2f}" if seconds > 0 else "        -"


def _stage_table(runs, n):
    lines = []
    header = "".join(f"{run.name:>22}" for run in runs)
    lines.append(f"{'':32}{header}")
    lines.append(f"{'stage':32}" + "".join(f"{'s':>9}{'share':>6}{'img/s':>7}" for _ in runs))
    for stage in (*STAGES, "total", "imports"):
        cells = []
        for run in runs:
            seconds = run.result["stages"].get(stage) if stage in STAGES else run.result[stage]
            share = f"{seconds / run.result['total']:6.0%}" if stage != "imports" else f"{'':6}"
            rate = f"{n / seconds:7.1f}" if seconds > 0 else f"{'-':>7}"
            cells.append(f"{seconds:9.2f}{share}{rate}" if seconds is not None else f"{'-':>22}")
        lines.append(f"{STAGE_LABELS[stage]:32}" + "".join(cells))
    lines.append(f"{'peak RSS (MiB, whole process)':32}" + "".join(f"{run.peak_rss_mib:22.0f}" for run in runs))
    lines.append(f"{'load average (1 min) at start':32}" + "".join(f"{run.load:22.2f}" for run in runs))
    return lines


def _compare_ious(gate_rows, naive_rows):
    """Problems (empty when equal): pixel counts and IoU exactly (both divide TP by the union, unrounded)."""
    gate = {tuple(r[:3]): r[3:] for r in gate_rows}
    naive = {tuple(r[:3]): r[3:] for r in naive_rows}
    problems = []
    if gate.keys() != naive.keys():
        problems.append(f"different image sets: only gate {sorted(gate.keys() - naive.keys())[:3]}, "
                        f"only naive {sorted(naive.keys() - gate.keys())[:3]}")
    for key in sorted(gate.keys() & naive.keys()):
        (g_tp, g_pred, g_truth, g_iou), (n_tp, n_pred, n_truth, n_iou) = gate[key], naive[key]
        if (g_tp, g_pred, g_truth, g_iou) != (n_tp, n_pred, n_truth, n_iou):
            problems.append(f"{'/'.join(key)}: gate tp/pred/truth {g_tp}/{g_pred}/{g_truth} IoU {g_iou}, "
                            f"naive {n_tp}/{n_pred}/{n_truth} IoU {n_iou}")
    return problems, len(gate)


def _largest(stages, names):
    name = max(names, key=lambda s: stages[s])
    return f"{STAGE_LABELS[name].strip()} {stages[name]:.2f}s"


def _fastest(runs, name):
    """The run with the smallest total, renamed for the table."""
    return dataclasses.replace(min(runs, key=lambda r: r.result["total"]), name=name)


def _report(n, shape, checkpoint_label, runs, kernel, scaled, scale):
    n_test, n_flagged = corpus_lib.split(n)
    cold, warm, naive = (_fastest(runs[k], label) for k, label in (("cold", "cold gate"), ("warm", "warm gate"),
                                                                   ("naive", "naive script")))
    lines = [f"gate benchmark: {n} images ({n_test} test + {n_flagged} flagged) at {shape[0]}x{shape[1]}, "
             f"{os.cpu_count()} CPU cores, batch_size {_BATCH_SIZE.value}, torch_threads {_TORCH_THREADS.value}, "
             f"candidate {checkpoint_label}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at the end"
             + (f"; each configuration run {_RUNS.value}x interleaved, the fastest shown" if _RUNS.value > 1 else ""),
             ""]
    lines += _stage_table([cold, warm, naive], n)
    checks, failed = [], False

    def check(ok, text):
        nonlocal failed
        failed |= not ok
        checks.append(f"  {'ok  ' if ok else 'FAIL'}  {text}")

    digests = {r.result["metrics_sha256"] for r in runs["cold"] + runs["warm"]}
    check(len(digests) == 1, f"cold and warm metrics.json byte-identical ({len(runs['cold']) + len(runs['warm'])} "
          f"runs, sha256 {' / '.join(d[:16] + '…' for d in sorted(digests))})")
    caches = [(c.result["cache"], w.result["cache"]) for c, w in zip(runs["cold"], runs["warm"])]
    cold_cache, warm_cache = {"hits": 0, "misses": n}, {"hits": n, "misses": 0}
    check(all(all(v == cold_cache for v in c.values()) and all(v == warm_cache for v in w.values())
              for c, w in caches),
          "mask caches (rembg, candidate): " + "; ".join(
              f"{name} cold {c[name]['hits']} hits/{c[name]['misses']} misses, warm {w[name]['hits']} hits/"
              f"{w[name]['misses']} misses" for c, w in caches for name in sorted(c)))
    problems, compared = [], 0
    for naive_run in runs["naive"]:
        found, compared = _compare_ious(runs["cold"][0].result["ious"], naive_run.result["ious"])
        problems += found
    check(not problems, f"gate and naive script: identical pixel counts and IoUs on {compared} image/backend pairs"
          + "".join(f"\n          {p}" for p in problems[:10]))
    diffs = kernel.result["max_abs_diff"]
    check(diffs["pycocotools"] <= KERNEL_TOLERANCE and diffs["torchmetrics counts (float64)"] <= KERNEL_TOLERANCE,
          f"metric kernel == pycocotools (max |diff| {diffs['pycocotools']:.1e}) and == torchmetrics' counts in "
          f"float64 (max |diff| {diffs['torchmetrics counts (float64)']:.1e}), tolerance {KERNEL_TOLERANCE:g}")
    check(diffs["torchmetrics float32 vs kernel float32"] == 0.0,
          "BinaryJaccardIndex's own result is float32 (it divides after confmat.float()): equals the kernel's IoU "
          f"rounded to float32 (max |diff| {diffs['torchmetrics float32 vs kernel float32']:.1e})")
    lines += ["", "checks"] + checks

    seconds, pairs = kernel.result["seconds"], kernel.result["pairs"]
    versions = kernel.result["versions"]
    lines += ["", f"metric kernel on {pairs} (truth, prediction) mask pairs at {shape[0]}x{shape[1]}, fastest of "
              f"{_KERNEL_REPEATS.value} runs per pair (torchmetrics {versions['torchmetrics']}, pycocotools "
              f"{versions['pycocotools']})", f"{'implementation':40}{'s':>11}{'pairs/s':>11}"]
    lines += [f"{name:40}{value:11.4f}{_rate(pairs, value):>11}" for name, value in seconds.items()]

    targets = []

    def target(ok, text, measured):
        targets.append(f"  {'PASS' if ok else 'MISS'}  {text:58} {measured}")

    cs, ws, ns = cold.result, warm.result, naive.result
    speedup = ns["total"] / ws["total"]
    target(speedup >= TARGET_WARM_SPEEDUP, f"warm gate >= {TARGET_WARM_SPEEDUP:g}x faster than the naive script",
           f"{speedup:.2f}x (naive {ns['total']:.2f}s / warm {ws['total']:.2f}s)"
           + ("" if speedup >= TARGET_WARM_SPEEDUP else f"; warm's largest stage: "
              f"{_largest(ws['stages'], ['setup', 'decode', 'baseline', 'candidate', 'scoring', 'rendering'])}"))
    slowdown = cs["total"] / ns["total"]
    target(slowdown <= TARGET_COLD_VS_NAIVE, "cold gate no slower than the naive script",
           f"cold/naive {slowdown:.3f} (cold {cs['total']:.2f}s, naive {ns['total']:.2f}s)")
    fastest_other = min(seconds["torchmetrics BinaryJaccardIndex"], seconds["  same, validate_args=False"],
                        seconds["pycocotools encode + iou"])
    kernel_ratio = fastest_other / seconds["eval.scoring.metrics.score_masks"]
    target(kernel_ratio >= 1.0, "metric kernel at least as fast as torchmetrics/pycocotools",
           f"{kernel_ratio:.2f}x the faster of them (score_masks, all four metrics)")
    share = (cs["total"] - cs["forward"]) / cs["total"]
    non_forward = ["setup", "decode", "scoring", "rendering", "other"]
    cs["stages"]["cache"] = cs["stages"]["baseline"] - cs["stages"]["baseline_forward"]
    target(share <= TARGET_NON_FORWARD_SHARE, "all but model forward passes <= 10% of a cold run's wall time",
           f"{share:.1%} ({cs['total'] - cs['forward']:.2f}s of {cs['total']:.2f}s; largest: "
           f"{_largest(cs['stages'], [*non_forward, 'cache'])})")
    megapixels = shape[0] * shape[1] / 1e6
    target(cold.peak_rss_mib <= TARGET_PEAK_RSS_MIB, f"peak RSS <= {TARGET_PEAK_RSS_MIB} MiB (cold gate, "
           f"{megapixels:.1f}-Mpixel photos)", f"{cold.peak_rss_mib:.0f} MiB" + ("" if megapixels >= 12 else
                                                                                 " (the target is set for 12 Mpixel)"))
    sizes = scale.result["sizes"]
    small, large = sizes[f"{SMALL_SHAPE[0]}x{SMALL_SHAPE[1]}"], sizes[f"{shape[0]}x{shape[1]}"]
    ratio = large["ms_per_photo"] / small["ms_per_photo"]
    target(ratio <= TARGET_CANDIDATE_SCALE, f"candidate ms/photo at {shape[0]}x{shape[1]} <= "
           f"{TARGET_CANDIDATE_SCALE:g}x at {SMALL_SHAPE[0]}x{SMALL_SHAPE[1]}",
           f"{ratio:.2f}x ({large['ms_per_photo']:.0f} ms, forward {large['forward_share']:.0%} of it / "
           f"{small['ms_per_photo']:.0f} ms, forward {small['forward_share']:.0%}; median of {SCALE_PHOTOS}, "
           f"load {scale.load:.2f})")
    if scaled:
        growth = scaled.peak_rss_mib / cold.peak_rss_mib
        target(growth <= TARGET_RSS_GROWTH, "peak RSS at 4x the corpus within 10% of 1x",
               f"{growth:.3f} ({scaled.peak_rss_mib:.0f} MiB at {4 * n} images / {cold.peak_rss_mib:.0f} MiB at {n})")
    else:
        targets.append(f"  skip  {'peak RSS at 4x the corpus within 10% of 1x':58} (--norss_scale_check)")
    lines += ["", "targets (ratios measured in this run)"] + targets
    if n < PROJECT_TO:
        lines += ["", f"projection to {PROJECT_TO} images (an estimate, not a measurement: this run's fixed costs, "
                  "setup + rendering, plus its per-image seconds x N)"] + _projection(n, cs, ws, ns, PROJECT_TO)
    lines += ["", "naive script = per image: PIL decode, rembg.remove(session=new_session(the gate's session "
              "settings)), YOLO(checkpoint).predict(retina_masks=True), numpy IoU; a CSV at the end.",
              "totals exclude interpreter start and imports (same libraries for all three); 'forward passes' are "
              "the rembg.remove and YOLO predict calls."]
    return lines, failed


def _split_costs(result, n):
    """(fixed seconds, per-image seconds, per-image forward seconds) of one run."""
    fixed = result["stages"]["setup"] + result["stages"]["rendering"]
    return fixed, (result["total"] - fixed) / n, result["forward"] / n


def _projection(n, cold, warm, naive, at):
    (cf, cp, cfw), (wf, wp, _), (nf, np_, _) = (_split_costs(r, n) for r in (cold, warm, naive))
    cold_at, warm_at, naive_at = cf + at * cp, wf + at * wp, nf + at * np_
    return [f"  warm speedup {naive_at / warm_at:.2f}x; cold/naive {cold_at / naive_at:.3f}; "
            f"non-forward share of cold {(cold_at - at * cfw) / cold_at:.1%} "
            f"(fixed: cold {cf:.2f}s, warm {wf:.2f}s, naive {nf:.2f}s; per image: cold {cp:.3f}s of which forward "
            f"{cfw:.3f}s, warm {wp:.3f}s, naive {np_:.3f}s)"]


def _figures(n, runs, kernel, scaled, scale):
    runs = [*runs["cold"], *runs["warm"], *runs["naive"], kernel, scale] + ([scaled] if scaled else [])
    return {"images": n, "width": _WIDTH.value, "height": _HEIGHT.value, "cpu_count": os.cpu_count(),
            "runs": {r.name: {**{k: v for k, v in r.result.items() if k != "ious"}, "peak_rss_mib": r.peak_rss_mib,
                              "wall_with_startup": r.wall, "load_average": r.load} for r in runs}}


def _benchmark():
    n, shape = _IMAGES.value, (_WIDTH.value, _HEIGHT.value)
    work = pathlib.Path(_WORK_DIR.value or tempfile.mkdtemp(prefix="gate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"[bench] work dir {work}", file=sys.stderr, flush=True)
    try:
        start = time.perf_counter()
        dataset = corpus_lib.write_corpus(work / "corpus-1x", n, *shape, seed=_SEED.value)
        print(f"[bench] corpus of {n} images written in {time.perf_counter() - start:.1f}s", file=sys.stderr)
        checkpoint, checkpoint_label = _checkpoint(work)
        common = {"checkpoint": str(checkpoint), "criteria": _CRITERIA.value,
                  "baseline_config": _BASELINE_CONFIG.value,
                  "batch_size": _BATCH_SIZE.value, "torch_threads": _TORCH_THREADS.value, "quiet": _QUIET.value,
                  "seed": _SEED.value, "repeats": _KERNEL_REPEATS.value}
        runs = collections.defaultdict(list)
        for r in range(_RUNS.value):  # interleaved, so a busy spell on a shared machine hits every configuration
            tag = f" #{r + 1}" if _RUNS.value > 1 else ""
            gate_1x = {**common, "dataset": str(dataset), "n_images": n, "cache_dir": str(work / f"cache-1x-{r}")}
            runs["cold"].append(_run_child(f"cold gate{tag}", "gate", {**gate_1x, "output_dir": str(
                work / f"report-cold-{r}")}, work))
            runs["warm"].append(_run_child(f"warm gate{tag}", "gate", {**gate_1x, "output_dir": str(
                work / f"report-warm-{r}")}, work))
            runs["naive"].append(_run_child(f"naive script{tag}", "naive", {
                **gate_1x, "output_dir": str(work / f"naive-{r}"), "cache_dir": str(work / "cache-naive")}, work))
        kernel = _run_child("metric kernel", "kernel", {**common, "dataset": str(dataset)}, work)
        scale = _run_child("candidate scale", "scale", {**common, "shape": list(shape)}, work)
        scaled = None
        if _RSS_SCALE_CHECK.value:
            dataset_4x = corpus_lib.write_corpus(work / "corpus-4x", 4 * n, *shape, seed=_SEED.value)
            scaled = _run_child("cold gate 4x", "gate", {**common, "dataset": str(dataset_4x), "n_images": 4 * n,
                                                          "cache_dir": str(work / "cache-4x"),
                                                          "output_dir": str(work / "report-4x")}, work)
        lines, failed = _report(n, shape, checkpoint_label, runs, kernel, scaled, scale)
        print("\n".join(lines))
        if _JSON_OUT.value:
            pathlib.Path(_JSON_OUT.value).write_text(
                json.dumps(_figures(n, runs, kernel, scaled, scale), indent=2, sort_keys=True) + "\n")
        return 1 if failed else 0
    finally:
        if _WORK_DIR.value is None and not _KEEP.value:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"[bench] kept {work}", file=sys.stderr)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; everything is a flag (see --help)")
    if _WORKER.value:
        spec = json.loads(pathlib.Path(_WORKER_SPEC.value).read_text())
        result = _WORKERS[_WORKER.value](spec)
        pathlib.Path(spec["result"]).write_text(json.dumps(result))
        return 0
    return _benchmark()


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
