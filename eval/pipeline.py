"""Wiring the gate end to end for the CLI (and the Modal app): inputs -> evaluate -> publish."""

import dataclasses
import hashlib
import json
import pathlib
import platform

import numpy
import PIL

import eval as harness
from eval import outputs, report, runtime, volumes
from eval.backends.cached import CachedBackend
from eval.backends.rembg_backend import RembgBackend
from eval.backends.yolo_backend import YoloSegBackend
from eval.baseline_config import load_baseline_config
from eval.checkpoint import read_allowlist, resolve_checkpoint
from eval.criteria import load_criteria
from eval.gate import evaluate
from eval.progress import Progress
from eval.snapshot import load_snapshot


@dataclasses.dataclass(frozen=True)
class GateOptions:
    checkpoint: str
    dataset: str
    criteria: str
    baseline_config: str
    reports_root: str  # where the default output folder goes
    output_dir: str | None = None  # default: <reports_root>/<checkpoint>-<dataset version>
    checkpoint_sha256: str | None = None
    checkpoint_allowlist: str | None = None
    overwrite: bool = False
    batch_size: int = 8
    conf: float = 0.25
    imgsz: int = 0
    device: str = "cpu"
    torch_threads: int = 2
    gallery_size: int = 3
    quiet: bool = False
    baseline_cache: bool = True
    demo: bool = False


def _local_dataset(spec, open_store):
    if volumes.is_volume_uri(spec):
        return volumes.fetch(spec, runtime.cache_dir() / "volumes", open_store)
    return pathlib.Path(spec)


def _digest(document):
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def run_gate(options, open_store=volumes.ModalVolumeStore):
    """Evaluate, decide and publish; returns (GateResult, output directory). Raises GateInputError."""
    progress = Progress(options.quiet)
    criteria = load_criteria(options.criteria)
    baseline_config = load_baseline_config(options.baseline_config)
    allowlist = read_allowlist(options.checkpoint_allowlist) if options.checkpoint_allowlist else None
    checkpoint = resolve_checkpoint(options.checkpoint, options.checkpoint_sha256, allowlist, open_store)
    snapshot = load_snapshot(_local_dataset(options.dataset, open_store))
    settings = {"conf": options.conf, "imgsz": options.imgsz, "device": options.device,
                "torch_threads": options.torch_threads, "gallery_size": options.gallery_size}
    inputs = {"checkpoint": checkpoint.sha256, "dataset": snapshot.sha256, "criteria": criteria.sha256,
              "baseline_config": baseline_config.sha256, "harness": harness.__version__, "settings": settings}
    run_key = _digest(inputs)
    output_dir = pathlib.Path(options.output_dir or
                              pathlib.Path(options.reports_root) / f"{checkpoint.name}-{snapshot.version}")
    outputs.check_destination(output_dir, run_key, options.overwrite)

    progress.log(f"checkpoint {checkpoint.name} sha256 {checkpoint.sha256[:16]}…, dataset {snapshot.version}")
    baseline = RembgBackend(baseline_config, options.torch_threads)
    if options.baseline_cache:
        baseline = CachedBackend(baseline, runtime.cache_dir() / "baseline-masks")
    candidate = YoloSegBackend(checkpoint, options.conf, options.imgsz, options.device, options.torch_threads)
    provenance = {
        "run_key": run_key,
        "harness_version": harness.__version__,
        "demo": options.demo,
        "checkpoint": {"name": checkpoint.path.name, "sha256": checkpoint.sha256},
        "dataset": {"version": snapshot.version, "sha256": snapshot.sha256},
        "criteria": {"sha256": criteria.sha256, "example_values": criteria.example_values},
        "baseline_config": {"sha256": baseline_config.sha256},
        "iou_pass_threshold": criteria.iou_pass_threshold,
        "backends": {baseline.name: baseline.provenance(), candidate.name: candidate.provenance()},
        "libraries": {"python": platform.python_version(), "numpy": numpy.__version__, "pillow": PIL.__version__},
    }
    result = evaluate(snapshot, criteria, baseline, candidate, provenance, options.batch_size,
                      options.gallery_size, progress)
    title = f"{checkpoint.path.name} on {snapshot.version}"
    outputs.publish(output_dir, report.render_all(result, title))
    return result, output_dir
