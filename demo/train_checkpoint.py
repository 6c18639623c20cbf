"""Train the demo's candidate checkpoint: a small YOLO-seg model, from scratch, on CPU, reproducibly.

The gate compares a candidate against production rembg, so the demo needs a real candidate, not a stub.
It is built from demo/pottery-seg.yaml (never a bare model name: those download weights). `nbs` equals
the batch so that every batch is an optimizer step (the default 64 accumulates 8 batches: one step per
epoch on this data set). Same seed, same weights (on the same kind of machine); the checkpoint file is
then rewritten without what changes between identical runs (date, git info, temporary paths, epoch
times), so the committed bytes can be regenerated exactly.
"""

import os
import pathlib
import shutil

MODEL_YAML = pathlib.Path(__file__).resolve().with_name("pottery-seg.yaml")
IMGSZ = 256
BATCH = 8
EPOCHS = 60
INCUMBENT_EPOCHS = 35  # the demo incumbent: the same model trained less, so the candidate has something to beat
FIXED_DATE = "2025-01-01T00:00:00+00:00"


def offline_ultralytics(config_dir):
    """Import ultralytics with its network attempts switched off; call before any other import of it.

    YOLO_OFFLINE stops the DNS probes, YOLO_AUTOINSTALL the pip calls, sync the telemetry. The font
    check ignores all of them and downloads Arial.ttf unless a TTF is already at
    <YOLO_CONFIG_DIR>/Ultralytics/Arial.ttf, so matplotlib's DejaVuSans is put there.
    """
    import matplotlib

    config_dir = pathlib.Path(config_dir)
    os.environ.update(YOLO_OFFLINE="1", YOLO_AUTOINSTALL="0", YOLO_CONFIG_DIR=str(config_dir))
    font = config_dir / "Ultralytics" / "Arial.ttf"
    font.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pathlib.Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)
    import ultralytics

    ultralytics.settings.update({"sync": False})
    return ultralytics


def _scrub(args, work_dir, **fixed):
    """`args` with `fixed` values, and paths under `work_dir` made relative to it."""
    def scrub(value):
        if isinstance(value, (str, pathlib.Path)) and str(value).startswith(str(work_dir)):
            return pathlib.Path(value).relative_to(work_dir).as_posix()
        return value

    return {key: fixed.get(key, scrub(value)) for key, value in dict(args).items()}


def normalise_checkpoint(source, destination, work_dir, data_yaml):
    """Copy an ultralytics checkpoint without the fields that differ between identical runs."""
    import torch

    ckpt = torch.load(source, map_location="cpu", weights_only=False)
    fixed = {"model": MODEL_YAML.name, "data": pathlib.Path(data_yaml).name}
    results = {k: v for k, v in (ckpt.get("train_results") or {}).items() if k != "time"}
    ckpt.update(date=FIXED_DATE, git=None, train_args=_scrub(ckpt["train_args"], work_dir, **fixed),
                train_results=results)
    ckpt["model"].yaml["yaml_file"] = MODEL_YAML.name
    ckpt["model"].args = _scrub(ckpt["model"].args, work_dir, **fixed)
    torch.save(ckpt, destination)


def train(data_yaml, output, work_dir, epochs=EPOCHS, seed=0):
    """Train on the YOLO-seg dataset `data_yaml` and write the normalised best.pt to `output`."""
    work_dir = pathlib.Path(work_dir).resolve()
    ultralytics = offline_ultralytics(work_dir / "config")
    model = ultralytics.YOLO(str(MODEL_YAML), task="segment")
    model.train(data=str(data_yaml), epochs=epochs, imgsz=IMGSZ, batch=BATCH, nbs=BATCH, workers=0, device="cpu",
                plots=False, amp=False, seed=seed, deterministic=True, project=str(work_dir / "runs"),
                name="train", exist_ok=True, verbose=False)
    normalise_checkpoint(work_dir / "runs" / "train" / "weights" / "best.pt", output, work_dir, data_yaml)
    return output
