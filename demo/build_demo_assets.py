"""Regenerate demo/assets/ (the dataset snapshot, its CropRun database, the candidate and the incumbent
checkpoints) from fixed seeds.

    bazel run //demo:build_demo_assets      writes into the workspace's demo/assets/
    python -m demo.build_demo_assets        (from the repository root) writes next to this file
    ... -- --parts=snapshot                 rebuilds the snapshot only, keeping the committed checkpoints
    ... -- --parts=croprun.sqlite --nocheck rebuilds the CropRun database from the committed snapshot (seconds)
    ... -- --parts=pottery-seg-incumbent.pt rebuilds only the demo incumbent (the same model, fewer epochs)

Same seeds, same bytes: the committed assets can be checked by rebuilding them. Everything is written
to a staging directory beside the target and each part renamed into place, so an interrupted run never
leaves a half-written snapshot for the gate to read. Training takes a few minutes on a CPU.
"""

import os
import pathlib
import shutil
import tempfile
import time

import numpy as np
from absl import app, flags
from PIL import Image

from demo import build_croprun_db, generate_snapshot, train_checkpoint

FLAGS = flags.FLAGS
flags.DEFINE_integer("snapshot_seed", 20250, "Seed of the snapshot (test split and flagged corpus).")
flags.DEFINE_integer("train_seed", 31337, "Seed of the training images; differs from the snapshot's so the "
                                          "test split stays held out.")
flags.DEFINE_integer("epochs", train_checkpoint.EPOCHS, "Training epochs; the committed checkpoint uses the default.")
flags.DEFINE_integer("incumbent_epochs", train_checkpoint.INCUMBENT_EPOCHS,
                     "Training epochs of the demo incumbent (the checkpoint 'in production' that the candidate "
                     "is also compared with); the committed one uses the default.")
flags.DEFINE_string("output_dir", None, "Where to write the assets. Default: <workspace>/demo/assets under "
                                        "`bazel run` (BUILD_WORKSPACE_DIRECTORY), else assets/ next to this file.")
flags.DEFINE_bool("check", True, "Print the checkpoint's mean mask IoU on both corpora of the snapshot.")

SNAPSHOT = "snapshot"
CHECKPOINT = "pottery-seg-demo.pt"
CROPRUN_DB = "croprun.sqlite"  # the CropRun database the snapshot's flagged corpus exports from
INCUMBENT = "pottery-seg-incumbent.pt"
flags.DEFINE_multi_enum("parts", [SNAPSHOT, CHECKPOINT, CROPRUN_DB, INCUMBENT],
                        [SNAPSHOT, CHECKPOINT, CROPRUN_DB, INCUMBENT],
                        "Which assets to rebuild (repeat the flag, or comma-separate); the others are kept "
                        "as committed. The check then reads the kept ones; croprun.sqlite is built from the "
                        "snapshot that ends up in place (the new one, or the committed one).")
_CROPRUN_SCHEMA = pathlib.Path(__file__).resolve().parent.parent / "configs" / "croprun_schema.yaml"


def _assets_dir():
    if FLAGS.output_dir:
        return pathlib.Path(FLAGS.output_dir).resolve()
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if workspace:
        return pathlib.Path(workspace) / "demo" / "assets"
    return pathlib.Path(__file__).resolve().parent / "assets"


def _mean_ious(checkpoint, root, evaluated, config_dir):
    """Mean IoU per corpus of the checkpoint's masks, predicted the way the gate's candidate backend does
    (training image size, conf 0.25, retina masks, union of instances, one image per request)."""
    model = train_checkpoint.offline_ultralytics(config_dir).YOLO(str(checkpoint))
    assert model.task == "segment", model.task
    ious = {}
    for corpus, image, truth in evaluated:
        bgr = np.ascontiguousarray(np.asarray(Image.open(root / image).convert("RGB"))[..., ::-1])
        result = model.predict(bgr, imgsz=train_checkpoint.IMGSZ, conf=0.25, retina_masks=True, device="cpu",
                               verbose=False)[0]
        mask = np.zeros_like(truth) if result.masks is None else (result.masks.data.numpy() > 0.5).any(axis=0)
        union = (mask | truth).sum()
        ious.setdefault(corpus, []).append((mask & truth).sum() / union if union else 1.0)
    return {corpus: float(np.mean(values)) for corpus, values in ious.items()}


def _replace(target, staging):
    """Swap `staging` (a file or a folder) in as `target` with renames, removing the previous `target`."""
    if staging.is_file():
        os.replace(staging, target)
        return
    previous = target.with_name(f".{target.name}-previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)


def main(argv):
    del argv  # unused
    parts = set(FLAGS.parts)
    assets = _assets_dir()
    assets.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{assets.name}-staging-", dir=assets.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would otherwise become the assets' permissions
    try:
        # Always drawn (seconds): the check needs its masks. Same seed, same bytes as the committed one
        # unless the generator changed, and then only --parts=snapshot puts it in place.
        started = time.monotonic()
        evaluated = generate_snapshot.write_snapshot(staging / SNAPSHOT, FLAGS.snapshot_seed)
        print(f"snapshot: {len(evaluated)} evaluated images in {time.monotonic() - started:.1f} s")
        trained = {name: epochs for name, epochs in ((CHECKPOINT, FLAGS.epochs), (INCUMBENT, FLAGS.incumbent_epochs))
                   if name in parts}
        if trained:
            with tempfile.TemporaryDirectory(prefix="pottery-demo-train-") as work:
                work = pathlib.Path(work)
                started = time.monotonic()
                data = generate_snapshot.write_training_set(work / "dataset", FLAGS.train_seed)
                print(f"training set: {time.monotonic() - started:.1f} s")
                for name, epochs in trained.items():
                    started = time.monotonic()
                    train_checkpoint.train(data, staging / name, work, epochs=epochs)
                    print(f"training {name} ({epochs} epochs): {time.monotonic() - started:.1f} s")
        if CROPRUN_DB in parts:
            build_croprun_db.write_croprun_db((staging if SNAPSHOT in parts else assets) / SNAPSHOT,
                                              staging / CROPRUN_DB, _CROPRUN_SCHEMA)
        if FLAGS.check:
            for name in (CHECKPOINT, INCUMBENT):
                checkpoint = (staging if name in parts else assets) / name
                for corpus, iou in sorted(_mean_ious(checkpoint, staging / SNAPSHOT, evaluated,
                                                             staging / "ultralytics-config").items()):
                    print(f"{name}: mean mask IoU, {corpus}: {iou:.3f}")
        for part in sorted(parts):
            _replace(assets / part, staging / part)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"wrote {', '.join(sorted(parts))} in {assets}")


if __name__ == "__main__":
    app.run(main)
