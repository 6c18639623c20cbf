"""Wiring the gate end to end for the CLI (and the Modal app): inputs -> evaluate -> publish."""

import dataclasses
import hashlib
import json
import pathlib
import platform

import numpy
import PIL

import eval as harness
from eval import roles, runtime
from eval.backends import yolo_backend
from eval.backends.cached import CachedBackend
from eval.backends.rembg_backend import RembgBackend
from eval.backends.timed import TimedBackend
from eval.errors import GateInputError
from eval.gate import evaluate
from eval.inputs import volumes
from eval.inputs.baseline_config import load_baseline_config
from eval.inputs.checkpoint import read_allowlist, resolve_checkpoint
from eval.inputs.criteria import load_criteria
from eval.inputs.snapshot import load_snapshot
from eval.progress import Progress
from eval.report import outputs
from eval.report import render as report
from eval.roles import INCUMBENT, ModelInputs
from eval.timings import Meter


def _local_dataset(spec, open_store):
    if volumes.is_volume_uri(spec):
        return volumes.fetch(spec, runtime.cache_dir() / "volumes", open_store)
    return pathlib.Path(spec)


def _digest(document):
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class PreparedRun:
    """Every input loaded, pinned and digested and the destination checked; no model has run yet.

    A single-process run (run_gate) and the sharded Modal app (modal_app/gate_app.py) share this step
    and the ones below, so both record the same provenance and write the same files.
    """

    options: object  # eval.options.GateOptions
    criteria: object  # eval.inputs.criteria.SuccessCriteria
    baseline_config: object  # eval.inputs.baseline_config.BaselineConfig
    checkpoint: object  # eval.inputs.checkpoint.Checkpoint
    snapshot: object  # eval.inputs.snapshot.Snapshot
    run_key: str
    destination: object  # eval.report.outputs.Destination, checked before any model runs
    incumbent: object = None  # eval.inputs.checkpoint.Checkpoint, or None when no incumbent is compared

    @property
    def model_inputs(self):
        return ModelInputs(self.baseline_config, self.checkpoint, self.incumbent)

    @property
    def output_dir(self):
        return self.destination.path

    @property
    def title(self):
        return f"{self.checkpoint.path.name} on {self.snapshot.version}"


def prepare_run(options, open_store=volumes.ModalVolumeStore, meter=None):
    """Load and pin the inputs, derive the run key and check the destination. Raises GateInputError. A `meter`
    (eval.timings.Meter) times the snapshot's duplicate check."""
    criteria = load_criteria(options.criteria)
    baseline_config = load_baseline_config(options.baseline_config)
    allowlist = read_allowlist(options.checkpoint_allowlist) if options.checkpoint_allowlist else None
    checkpoint = resolve_checkpoint(options.checkpoint, options.checkpoint_sha256, allowlist, open_store)
    incumbent = _incumbent(options, criteria, allowlist, open_store)
    snapshot = load_snapshot(_local_dataset(options.dataset, open_store), meter)
    # Everything that can change a mask or a number, known before any model loads; not the batch size,
    # which cannot (the candidate's masks are batch-invariant; see eval/backends/yolo_backend.py).
    settings = {"candidate": yolo_backend.request_settings(options.conf, options.imgsz, options.device,
                                                           options.torch_threads),
                "gallery_size": options.gallery_size}
    libraries = {**yolo_backend.library_versions(), **RembgBackend.library_versions()}
    inputs = {"checkpoint": checkpoint.sha256, "dataset": snapshot.sha256, "criteria": criteria.sha256,
              "baseline_config": baseline_config.sha256, "harness": harness.__version__, "settings": settings,
              "libraries": libraries}
    if incumbent is not None:
        inputs["incumbent"] = incumbent.sha256  # only when present: runs without one keep their run keys
    run_key = _digest(inputs)
    output_dir = pathlib.Path(options.output_dir or
                              pathlib.Path(options.reports_root) / f"{checkpoint.name}-{snapshot.version}")
    destination = outputs.check_destination(output_dir, run_key, options.overwrite, inputs=[snapshot.root])
    return PreparedRun(options, criteria, baseline_config, checkpoint, snapshot, run_key, destination, incumbent)


def _incumbent(options, criteria, allowlist, open_store):
    """The pinned incumbent checkpoint, or None; a criterion measured against it needs one (exit 2)."""
    if options.incumbent_checkpoint is None:
        needing = [c.id for c in criteria.criteria if c.vs == INCUMBENT]
        if needing:
            raise GateInputError("--incumbent_checkpoint", f"criteria {', '.join(needing)} in {criteria.path} are "
                                                           "measured against the incumbent; name it")
        return None
    return resolve_checkpoint(options.incumbent_checkpoint, options.incumbent_sha256, allowlist, open_store,
                              pin_flag="--incumbent_sha256")


def make_backends(options, inputs, meter=None):
    """{role name: Backend} for every role of eval.roles.ROLES that takes part in the run, as `options`
    configure them from the pinned `inputs` (eval.roles.ModelInputs); a sharded run builds them in every worker.

    With a `meter` (eval.timings.Meter) every real inference call is timed, and the masks each cache served
    are counted (not timed). Every backend's masks are cached by content (photo pixels and the backend's
    fingerprint: weights digest and every mask-changing setting): the baseline and the incumbent do not change
    between candidates, and the candidate's cache lets an interrupted run resume and a re-render recompute
    nothing.
    """
    backends = {}
    for role in roles.ROLES:
        backend = role.backend_class().for_run(options, inputs)
        if backend is None:
            continue
        if meter is not None:
            backend = TimedBackend(backend, meter)
        if options.baseline_cache:
            backend = CachedBackend(backend, runtime.cache_dir() / role.cache, meter)
        backends[role.name] = backend
    return backends


def run_provenance(prepared, backend_provenance):
    """metrics.json's provenance; `backend_provenance` maps each backend's name to its provenance()."""
    options, checkpoint, snapshot = prepared.options, prepared.checkpoint, prepared.snapshot
    criteria = prepared.criteria
    return {
        "run_key": prepared.run_key,
        "harness_version": harness.__version__,
        "demo": options.demo,
        "checkpoint": {"name": checkpoint.path.name, "sha256": checkpoint.sha256},
        **({"incumbent": {"name": prepared.incumbent.path.name, "sha256": prepared.incumbent.sha256}}
           if prepared.incumbent is not None else {}),
        "dataset": {"version": snapshot.version, "sha256": snapshot.sha256,
                    **({"export": snapshot.export} if snapshot.export is not None else {})},
        "criteria": {"sha256": criteria.sha256, "example_values": criteria.example_values},
        "baseline_config": {"sha256": prepared.baseline_config.sha256},
        "iou_pass_threshold": criteria.iou_pass_threshold,
        "backends": dict(backend_provenance),
        "libraries": {"python": platform.python_version(), "numpy": numpy.__version__, "pillow": PIL.__version__},
    }


def publish_result(prepared, result, meter=None, signer=None):
    """Render every output file and publish the folder atomically (refused if it changed since the check);
    timings.json when a `meter` timed the run, written last so that it holds the rendering and publishing;
    manifest.sig when a `signer` signs the manifest."""
    if meter is None:
        prepared.destination.publish(report.render_all(result, prepared.title), signer)
        return
    with meter.stage("rendering"):
        files = report.render_all(result, prepared.title)
    publishing = meter.start("publishing")

    def timings_file():  # machine-dependent: kept out of metrics.json
        publishing.stop()  # every other file is written
        return {outputs.TIMINGS: meter.json(prepared.run_key)}

    prepared.destination.publish(files, signer, last=timings_file)


def run_gate(options, open_store=volumes.ModalVolumeStore, signer=None):
    """Evaluate, decide and publish; returns (GateResult, output directory). Raises GateInputError.

    `signer` (manifest bytes -> signature bytes, see promotion/signing.py) signs the published manifest."""
    progress = Progress(options.quiet)
    meter = Meter(options.device)
    prepared = prepare_run(options, open_store, meter)
    checkpoint, snapshot = prepared.checkpoint, prepared.snapshot
    progress.log(f"checkpoint {checkpoint.name} sha256 {checkpoint.sha256[:16]}…, dataset {snapshot.version}")
    backends = make_backends(options, prepared.model_inputs, meter)
    provenance = run_provenance(prepared, {name: b.provenance() for name, b in backends.items()})
    result = evaluate(snapshot, prepared.criteria, backends, provenance, options.batch_size, options.gallery_size,
                      progress, meter)
    publish_result(prepared, result, meter, signer)
    return result, prepared.output_dir
