"""Promotion gate: score a YOLO-seg checkpoint against production rembg and recommend go or no-go.

Runs both backends on the same images of the held-out test split and the human-flagged CropRun
corpus of a dataset snapshot, scores masks against ground truth (mask IoU first), checks the locked
success criteria and writes metrics.json, per_image.csv, report.md and a gallery to --output_dir.
With neither --checkpoint nor --dataset it runs the bundled demo; one without the other, or an empty path
value, is an error. Relative paths are relative to where the command was typed (./dev included).

Exit status: 0 go, 1 no-go, 2 the evaluation could not be done or was incomplete (bad flags or
inputs, the message naming the file; Ctrl-C or SIGTERM). Checkpoints are pickles: loading one runs its
code, so in CI pin it with --checkpoint_sha256 or --checkpoint_allowlist.
"""

import dataclasses
import os
import pathlib
import signal
import sys
import traceback

from absl import app, flags

from eval import cli, sanitise
from eval.backends.yolo_backend import MAX_IMGSZ
from eval.decision.decide import EXAMPLE_VALUES_WARNING
from eval.errors import GateInputError
from eval.pipeline import GateOptions, run_gate
from eval.runtime import user_path
from tracking.wandb_run import TrackingOptions, harness_commit, track

_ROOT = pathlib.Path(__file__).absolute().parent.parent  # runfiles root of this workspace, or the source tree
_DEMO_CHECKPOINT = _ROOT / "demo" / "assets" / "pottery-seg-demo.pt"
_DEMO_INCUMBENT = _ROOT / "demo" / "assets" / "pottery-seg-incumbent.pt"  # the same model, trained less
# Runfiles are symlinks into the source tree, which the snapshot loader would refuse as escaping its
# root: use the directory the demo files really live in.
_DEMO_DATASET = (_ROOT / "demo" / "assets" / "snapshot" / "snapshot.yaml").resolve().parent

_CHECKPOINT = cli.DEFINE_path(
    "checkpoint", None, "Candidate YOLO-seg checkpoint (.pt): a local path or modal://<volume>/<path>. "
    "Default (only with no --dataset either): the bundled demo checkpoint.")
_CHECKPOINT_SHA256 = flags.DEFINE_string(
    "checkpoint_sha256", None, "Refuse the checkpoint unless its sha256 is this digest (checked before loading).")
_CHECKPOINT_ALLOWLIST = cli.DEFINE_path(
    "checkpoint_allowlist", None, "File of approved checkpoint sha256 digests, one per line.")
_INCUMBENT = cli.DEFINE_path(
    "incumbent_checkpoint", None, "The YOLO-seg checkpoint production serves now (local or modal://): a third "
    "backend, run on the same images with the candidate's settings, shown beside it; criteria with "
    "`vs: incumbent` measure regression against it (and need it). Default for the demo: the demo incumbent.")
_INCUMBENT_SHA256 = flags.DEFINE_string(
    "incumbent_sha256", None, "Refuse the incumbent unless its sha256 is this digest (checked before loading; "
    "required when --checkpoint_sha256 pins the candidate). --checkpoint_allowlist applies to it too.")
_DATASET = cli.DEFINE_path(
    "dataset", None, "Dataset snapshot directory (see eval/inputs/snapshot.py) or modal://<volume>/<path>. "
    "Default (only with no --checkpoint either): the bundled demo snapshot.")
_CRITERIA = cli.DEFINE_path(
    "criteria", str(_ROOT / "configs" / "success_criteria.yaml"), "Success criteria and failure-class taxonomy (#413).")
_BASELINE_CONFIG = cli.DEFINE_path(
    "baseline_config", str(_ROOT / "configs" / "rembg_production.yaml"), "How production runs rembg.")
_OUTPUT_DIR = cli.DEFINE_path(
    "output_dir", None, "Where to write the report folder. Default: reports/<checkpoint>-<dataset version>/ "
    "in the checkout.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace an output folder that holds a different run's report (never one holding files "
    "the gate did not write).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Images per candidate inference batch.", lower_bound=1)
_CONF = flags.DEFINE_float("candidate_conf", 0.25, "Candidate detection confidence threshold.",
                           lower_bound=0.0, upper_bound=1.0)
_IMGSZ = flags.DEFINE_integer("candidate_imgsz", 0, "Candidate inference size; 0 = the checkpoint's training size.",
                              lower_bound=0, upper_bound=MAX_IMGSZ)
_DEVICE = flags.DEFINE_string("device", "cpu", "Torch device for the candidate (cpu, cuda:0, ...).")
_TORCH_THREADS = flags.DEFINE_integer(
    "torch_threads", 2, "Torch intra-op threads, fixed so results do not depend on the machine.", lower_bound=1)
_GALLERY_SIZE = flags.DEFINE_integer("gallery_size", 3, "Cases in each gallery section.", lower_bound=0)
_QUIET = flags.DEFINE_bool("quiet", False, "No progress lines on stderr.")
_BASELINE_CACHE = flags.DEFINE_bool(
    "baseline_cache", True, "Reuse rembg masks cached by content (image pixels, rembg version, weights and config "
    "digests) under $GATE_CACHE_DIR; results are identical either way.")

_WANDB_PROJECT = flags.DEFINE_string(
    "wandb_project", None, "Log the finished run to this Weights & Biases project (#445): config, summary, tables, "
    "images and the report folder as an artifact. Offline (sync later with `wandb sync`) unless W&B credentials "
    "are configured or WANDB_MODE says otherwise. Never changes the decision, the exit status or the outputs.")
_WANDB_ENTITY = flags.DEFINE_string("wandb_entity", None, "W&B entity (team or user) for --wandb_project.")
_WANDB_RUN_NAME = flags.DEFINE_string("wandb_run_name", None, "W&B run name. Default: W&B's generated name.")
_WANDB_DIR = cli.DEFINE_path(
    "wandb_dir", None, "Where W&B keeps the run's local files (the offline run to sync). Default: $WANDB_DIR, "
    "else the directory the gate is run from.")

EXIT_GO, EXIT_NO_GO, EXIT_ERROR = 0, 1, 2
# The closing line after a decision, for whoever wonders why a finished run "failed" (./dev demo ends in 1).
CLOSING_LINE = {
    EXIT_GO: "exit status 0 = go: every criterion passed (1 would be no-go, 2 an evaluation that could not be done).",
    EXIT_NO_GO: "exit status 1 = no-go: the gate ran to the end and the candidate missed the criteria named above; "
                "this is the gate working, not a crash (0 = go, 2 = the evaluation could not be done).",
}


def _settings(options):
    """The run's settings for the tracked run's config (paths are the user's, as given)."""
    return {k: v for k, v in dataclasses.asdict(options).items() if k not in ("quiet", "reports_root")}


def _interrupt(signum, frame):
    """SIGTERM (a CI job cancelled, a container stopped) ends the run like Ctrl-C: exit 2, nothing published."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv):
    del argv  # only the program name: cli.parse_flags refuses anything else
    demo = _CHECKPOINT.value is None and _DATASET.value is None
    if not demo and None in (_CHECKPOINT.value, _DATASET.value):
        given, missing = ("--checkpoint", "--dataset") if _DATASET.value is None else ("--dataset", "--checkpoint")
        print(f"error: {missing}: required with {given} (the bundled demo runs only when both are left out)",
              file=sys.stderr)
        return EXIT_ERROR
    options = GateOptions(
        checkpoint=_CHECKPOINT.value or str(_DEMO_CHECKPOINT), dataset=_DATASET.value or str(_DEMO_DATASET),
        criteria=_CRITERIA.value, baseline_config=_BASELINE_CONFIG.value,
        reports_root=os.path.join(os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd()), "reports"),
        output_dir=_OUTPUT_DIR.value, checkpoint_sha256=_CHECKPOINT_SHA256.value,
        checkpoint_allowlist=_CHECKPOINT_ALLOWLIST.value, overwrite=_OVERWRITE.value,
        batch_size=_BATCH_SIZE.value, conf=_CONF.value, imgsz=_IMGSZ.value, device=_DEVICE.value,
        torch_threads=_TORCH_THREADS.value, gallery_size=_GALLERY_SIZE.value, quiet=_QUIET.value,
        baseline_cache=_BASELINE_CACHE.value, demo=demo,
        incumbent_checkpoint=_INCUMBENT.value or (str(_DEMO_INCUMBENT) if demo else None),
        incumbent_sha256=_INCUMBENT_SHA256.value)
    try:
        result, output_dir = run_gate(options)
    except GateInputError as err:
        print(f"error: {sanitise.text(err)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as err:  # a cancelled run must not read as a completed no-go (exit 1)
        print(f"error: interrupted ({err or 'SIGINT'}); the run did not complete: no recommendation",
              file=sys.stderr)
        return EXIT_ERROR
    except Exception as err:  # noqa: BLE001 - an unexpected failure must never look like a decision
        traceback.print_tb(err.__traceback__)  # our code's frames; the message may quote user data
        print(f"error: the evaluation could not be completed (unexpected failure: "
              f"{sanitise.text(f'{type(err).__name__}: {err}')})", file=sys.stderr)
        return EXIT_ERROR
    if _WANDB_PROJECT.value:
        workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY", _ROOT)
        wandb_dir = _WANDB_DIR.value or os.environ.get("WANDB_DIR") or user_path(".")
        track(TrackingOptions(_WANDB_PROJECT.value, _WANDB_ENTITY.value, _WANDB_RUN_NAME.value, wandb_dir),
              output_dir, _settings(options), harness_commit(workspace))
    decision = result.decision
    print(f"report: {sanitise.text(output_dir / 'report.md')}")
    print(sanitise.text(decision.headline))
    if result.example_values:
        print(EXAMPLE_VALUES_WARNING, file=sys.stderr)
    if result.not_evaluated:
        print(f"error: {len(result.not_evaluated)} image(s) could not be evaluated (listed in the report)",
              file=sys.stderr)
        return EXIT_ERROR
    status = EXIT_GO if decision.recommendation == "go" else EXIT_NO_GO
    print(CLOSING_LINE[status], file=sys.stderr)
    return status


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    app.run(main, flags_parser=cli.parse_flags)
