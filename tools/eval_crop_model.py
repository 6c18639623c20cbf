"""Promotion gate: score a YOLO-seg checkpoint against production rembg and recommend go or no-go.

Runs both backends on the same images of the held-out test split and the human-flagged CropRun
corpus of a dataset snapshot, scores masks against ground truth (mask IoU first), checks the locked
success criteria and writes metrics.json, per_image.csv, report.md and a gallery to --output_dir.
With neither --checkpoint nor --dataset it runs the bundled demo; one without the other, or an empty path
value, is an error. Relative paths are relative to where the command was typed (./dev included).

Exit status: 0 go, 1 no-go, 2 the evaluation could not be done or was incomplete (bad flags or
inputs, the message naming the file; Ctrl-C or SIGTERM). Checkpoints are unpickled with torch's weights-only
loader and an allowlist of what an ultralytics checkpoint holds: no code from one runs, and one that
references anything else is refused. In CI pin it with --checkpoint_sha256 or --checkpoint_allowlist: the
pin says which model was approved.
"""

import functools
import os
import pathlib
import signal
import sys
import traceback

from absl import app, flags

from ci_outputs import files
from eval import cli, sanitise
from eval.decision.decide import EXAMPLE_VALUES_WARNING, unused_warning
from eval.errors import GateInputError
from eval.options import GateOptions, cross_problems
from eval.pipeline import run_gate
from eval.report import artifacts
from eval.runtime import user_path
from promotion import signing
from tracking.wandb_run import TrackingOptions, harness_commit, track

_ROOT = pathlib.Path(__file__).absolute().parent.parent  # runfiles root of this workspace, or the source tree
_DEMO_CHECKPOINT = _ROOT / "demo" / "assets" / "pottery-seg-demo.pt"
_DEMO_INCUMBENT = _ROOT / "demo" / "assets" / "pottery-seg-incumbent.pt"  # the same model, trained less
# Runfiles are symlinks into the source tree, which the snapshot loader would refuse as escaping its
# root: use the directory the demo files really live in.
_DEMO_DATASET = (_ROOT / "demo" / "assets" / "snapshot" / "snapshot.yaml").resolve().parent

# Every run option (eval.options.GateOptions) with a flag: defaults, bounds and help are declared there once.
_OPTIONS = cli.define_option_flags()
_JUNIT_XML = cli.DEFINE_path(
    "junit_xml", None, "Also write the decision as JUnit XML to this file for CI's test report: one testcase per "
    "criterion (passed, or a failure typed fail / inconclusive / insufficient_data). With $GITHUB_STEP_SUMMARY set, "
    "a short Markdown summary is appended there too.")
_SIGNING_KEY = cli.DEFINE_path(
    "signing_key", None, "Ed25519 private key (PEM, e.g. from `openssl genpkey -algorithm ed25519`): sign the "
    "report's manifest.json into manifest.sig, so the deploy step's verify_promotion --public_key can check who "
    "cleared it. Read before any model runs; never printed.")
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


def _gate_options(given):
    """GateOptions from the option flags' values (`given`: field -> value). Raises GateInputError.

    The bundled demo runs when neither --checkpoint nor --dataset is given (a validator refuses one without
    the other), with the demo incumbent unless another is named. Default config files are the checkout's.
    """
    demo = given["checkpoint"] is None and given["dataset"] is None
    return GateOptions(**{
        **given,
        "checkpoint": given["checkpoint"] or str(_DEMO_CHECKPOINT), "dataset": given["dataset"] or str(_DEMO_DATASET),
        "criteria": given["criteria"] or str(_ROOT / "configs" / "success_criteria.yaml"),
        "baseline_config": given["baseline_config"] or str(_ROOT / "configs" / "rembg_production.yaml"),
        "reports_root": os.path.join(os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd()), "reports"),
        "demo": demo,
        "incumbent_checkpoint": given["incumbent_checkpoint"] or (str(_DEMO_INCUMBENT) if demo else None)})


def _both_or_neither(values):
    if (values["checkpoint"] is None) != (values["dataset"] is None):
        given, missing = ("--checkpoint", "--dataset") if values["dataset"] is None else ("--dataset", "--checkpoint")
        raise flags.ValidationError(f"{missing} is required with {given} (the bundled demo runs only when both are "
                                    "left out)")
    return True


def _across(values):
    for flag, problem in cross_problems(values):
        raise flags.ValidationError(f"{flag}: {problem}")
    return True


flags.register_multi_flags_validator(["checkpoint", "dataset"], _both_or_neither)
# The rules across options that flags alone decide (eval.options.cross_problems); flag names are field names.
flags.register_multi_flags_validator(["checkpoint_sha256", "checkpoint_allowlist", "incumbent_checkpoint",
                                      "incumbent_sha256"], _across)


def _interrupt(signum, frame):
    """SIGTERM (a CI job cancelled, a container stopped) ends the run like Ctrl-C: exit 2, nothing published."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _ci_outputs(output_dir):
    """JUnit XML and the CI step summary, read back from the published report (what CI shows is what it holds)."""
    if _JUNIT_XML.value is None and not os.environ.get(files.STEP_SUMMARY_ENV):
        return
    metrics = artifacts.load_report(output_dir).metrics
    if _JUNIT_XML.value is not None:
        files.write_junit(_JUNIT_XML.value, metrics)
    files.append_step_summary(metrics, str(output_dir / "report.md"))


def main(argv):
    del argv  # only the program name: cli.parse_flags refuses anything else
    try:
        options = _gate_options({field: holder.value for field, holder in _OPTIONS.items()})
        key = signing.load_private_key(_SIGNING_KEY.value) if _SIGNING_KEY.value else None
        result, output_dir = run_gate(options, signer=key and functools.partial(signing.sign, private_key=key))
        _ci_outputs(output_dir)
    except GateInputError as err:
        print(f"error: {sanitise.text(err)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as err:  # a cancelled run must not read as a completed no-go (exit 1)
        print(f"error: interrupted ({err or 'SIGINT'}); the run did not complete: no recommendation",
              file=sys.stderr)
        return EXIT_ERROR
    except Exception as err:  # an unexpected failure must never look like a decision
        traceback.print_tb(err.__traceback__)  # our code's frames; the message may quote user data
        print(f"error: the evaluation could not be completed (unexpected failure: "
              f"{sanitise.text(f'{type(err).__name__}: {err}')})", file=sys.stderr)
        return EXIT_ERROR
    if _WANDB_PROJECT.value:
        workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY", _ROOT)
        wandb_dir = _WANDB_DIR.value or os.environ.get("WANDB_DIR") or user_path(".")
        track(TrackingOptions(_WANDB_PROJECT.value, _WANDB_ENTITY.value, _WANDB_RUN_NAME.value, wandb_dir),
              output_dir, options.settings(), harness_commit(workspace))
    decision = result.decision
    print(f"report: {sanitise.text(output_dir / 'report.md')}")
    print(sanitise.text(decision.headline))
    if result.example_values:
        print(EXAMPLE_VALUES_WARNING, file=sys.stderr)
    for name in decision.unused:
        print(unused_warning(name), file=sys.stderr)
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
