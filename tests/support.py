"""Shared test helpers: tiny real snapshots, real (untrained) ultralytics checkpoints, running the CLI."""

import functools
import json
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
from PIL import Image, ImageDraw

REPO = pathlib.Path(__file__).absolute().parent.parent  # the runfiles tree under Bazel, else the checkout
CRITERIA = REPO / "configs" / "success_criteria.yaml"
BASELINE_CONFIG = REPO / "configs" / "rembg_production.yaml"
DEMO_SNAPSHOT = (REPO / "demo" / "assets" / "snapshot" / "snapshot.yaml").resolve().parent  # see the CLI
DEMO_CHECKPOINT = REPO / "demo" / "assets" / "pottery-seg-demo.pt"
DEMO_INCUMBENT = REPO / "demo" / "assets" / "pottery-seg-incumbent.pt"
CLI = REPO / "tools" / "eval_crop_model.py"
COMPARE_CLI = REPO / "tools" / "compare_runs.py"
DEMO_REPORT = REPO / "reports" / "pottery-seg-demo-demo-v1"  # the committed golden
# The demo incumbent gated as a candidate, and the trend from it to the demo run: committed goldens too.
INCUMBENT_REPORT = REPO / "reports" / "pottery-seg-incumbent-demo-v1"
TREND_DEMO = REPO / "reports" / "trend-demo"

# A small valid criteria file that tests mutate one key at a time.
VALID_CRITERIA = """\
schema_version: 1
example_values: false
iou_pass_threshold: 0.8
min_images: 2
failure_classes:
  - id: gloss
    description: glossy
    match: {notes_any: ['gloss', 'shiny']}
  - id: studio_b
    description: everything shot in studio B
    match: {source: {deployment: [studio-b]}}
criteria:
  - {id: pass_rate, kind: min_pass_rate, corpus: flagged, failure_class: all, threshold: 0.5}
  - {id: regress, kind: max_mean_iou_regression, corpus: flagged, failure_class: each, threshold: 0.1}
"""

if os.environ.get("TEST_TMPDIR"):
    # Bazel's sandbox makes $HOME read-only; tests keep their caches to themselves anyway.
    os.environ["GATE_CACHE_DIR"] = os.path.join(os.environ["TEST_TMPDIR"], "gate-cache")


def scratch_dir():
    """A writable directory: Bazel's TEST_TMPDIR under `bazel test`, else a fresh temp dir."""
    import tempfile

    return pathlib.Path(tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR")))


def pot_photo(width=96, height=72, shift=0, color=(150, 60, 30), background=(200, 190, 170)):
    """A plain 'pot' (an ellipse) on a backdrop, and its exact mask."""
    photo = Image.new("RGB", (width, height), background)
    mask = Image.new("L", (width, height), 0)
    box = (width // 5 + shift, height // 7, width * 3 // 4 + shift, height * 6 // 7)
    ImageDraw.Draw(photo).ellipse(box, fill=color)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    return photo, mask


def crop_run(row_id, notes="", source_type="human", annotation="crop_annotation", image=None, mask=None):
    """A CropRun export row in the snapshot contract (annotation=None for a row without ground truth)."""
    return {
        "id": row_id,
        "image": image or f"images/{row_id}.png",
        "source": {"type": source_type, "backend": "rembg", "deployment": "piece_image_crop_service",
                   "version": "2.0.50"},
        "notes": notes,
        "annotation": None if annotation is None else {"kind": annotation, "mask": mask or f"masks/{row_id}.png"},
    }


def write_snapshot(root, n_test=3, rows=None, version="tiny-v1"):
    """Write a small valid snapshot: `n_test` test images with mask PNGs and the given CropRun rows.

    Rows default to three human rows whose notes hit three classes; every referenced file is written.
    """
    root = pathlib.Path(root)
    if rows is None:
        rows = [crop_run("cr-1", "glossy glaze reflection"), crop_run("cr-2", "white on white"),
                crop_run("cr-3", "cast shadow kept")]
    for sub in ("test/images", "test/masks", "flagged/images", "flagged/masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "snapshot.yaml").write_text(f"format: pottery-gate-snapshot/v1\nversion: {version}\n")
    for i in range(n_test):
        photo, mask = pot_photo(shift=i)
        photo.save(root / f"test/images/t{i}.png")
        mask.save(root / f"test/masks/t{i}.png")
    for i, row in enumerate(rows):
        photo, mask = pot_photo(shift=i)
        if row.get("image") == f"images/{row['id']}.png":
            photo.save(root / "flagged" / row["image"])
        if row.get("annotation") and row["annotation"]["mask"] == f"masks/{row['id']}.png":
            mask.save(root / "flagged" / row["annotation"]["mask"])
    (root / "flagged" / "croprun.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@functools.cache
def untrained_checkpoint(model_yaml="yolov8n-seg.yaml"):
    """A real ultralytics checkpoint built from a model yaml (no download); cached per process."""
    from eval import runtime

    runtime.prepare(torch_threads=1)
    from ultralytics import YOLO

    path = scratch_dir() / model_yaml.replace(".yaml", ".pt")
    YOLO(model_yaml).save(str(path))
    return path


def run_cli(*flags, env=None, timeout=900):
    """Run the gate's entry point in a subprocess; returns CompletedProcess with text output."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, str(CLI), *flags], capture_output=True, text=True, env=full_env,
                          timeout=timeout, check=False)


def interrupt_cli(sig, *flags, env=None, when="[gate] test: 3 image(s)", timeout=300):
    """Run the gate's entry point and send it `sig` as soon as it prints the progress line starting `when`
    (scoring has begun). Returns (returncode, stdout, stderr); stderr holds what came after the signal."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.Popen([sys.executable, str(CLI), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=full_env)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(when):
            proc.send_signal(sig)
            break
    stdout, stderr = proc.communicate(timeout=timeout)
    assert seen and seen[-1].startswith(when), "".join(seen) + stderr  # the signal came during scoring
    return proc.returncode, stdout, stderr


def files_of(folder, skip=()):
    """{path relative to `folder` (posix): bytes} of every file under it but those named in `skip`: what two
    folders are compared by, byte for byte."""
    folder = pathlib.Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in skip}


def criteria_file(text=VALID_CRITERIA, folder=None, name="criteria.yaml"):
    """`text` written as a criteria file in `folder` (default: a fresh scratch directory); returns its path."""
    path = pathlib.Path(folder or scratch_dir()) / name
    path.write_text(text, encoding="utf-8")
    return path


def gate_result(scores, criteria, *, not_evaluated=(), exclusions=(), rows=(), unlabelled=(), cases=(), strips=(),
                provenance=None, gallery_size=3):
    """A GateResult made by the gate's own eval.gate.combine: one ShardResult.update per image (its scores, its
    gallery case, its report.html strip), as the gate scores them; intervals, decision and class audit are the
    real ones. The snapshot is what combine reads of one: `rows`, the flagged CropRun rows (id, notes, source)
    the class audit reads, `exclusions` and `unlabelled` (the work orders' rows). `provenance` defaults to the
    committed demo report's."""
    from eval.gate import ShardResult, combine

    by_image = {}
    for score in scores:
        by_image.setdefault((score.corpus, score.image_id), []).append(score)
    case_of = {(case.corpus, case.image_id): case for case in cases}
    strip_of = dict(strips)
    shard = ShardResult.empty(gallery_size)
    for key, image_scores in by_image.items():
        shard.update(image_scores, case=case_of.get(key), strip=(key, strip_of[key]) if key in strip_of else None)
    shard.update(missing=not_evaluated)
    snapshot = types.SimpleNamespace(items=(types.SimpleNamespace(corpus="flagged", rows=tuple(rows)),),
                                     exclusions=tuple(exclusions), unlabelled=tuple(unlabelled))
    if provenance is None:
        provenance = json.loads((DEMO_REPORT / "metrics.json").read_text())["provenance"]
    return combine([shard], snapshot, criteria, provenance, gallery_size)


def last_line(path):
    return pathlib.Path(path).read_text().rstrip("\n").splitlines()[-1]


def binary(mask_rows):
    """Bool mask from rows of '0'/'1' strings, for hand-computed metric tests."""
    return np.array([[c == "1" for c in row] for row in mask_rows], dtype=bool)
