"""Log a finished gate run to Weights & Biases (#445), read from the report folder the gate published.

Tracking reads what the gate already wrote and never writes into the report folder, so it cannot
change the decision, the exit code or the outputs; any failure is a warning on stderr. What is logged:
provenance and settings as the run config (with the harness's git commit), aggregates, criteria
results and timings as summary values and tables, the per-image table, the report's PNGs (gallery,
forest plot) as images, and the whole folder as an artifact named after checkpoint and dataset version.

Without credentials (no WANDB_API_KEY, no `wandb login`) the run is written offline, to be uploaded
later with `wandb sync <run directory>`; WANDB_MODE, when set, decides.
"""

import csv
import dataclasses
import json
import netrc
import os
import pathlib
import re
import subprocess
import sys

from eval import sanitise
from eval.inputs.safe_paths import open_regular
from eval.report.artifacts import load_report

ARTIFACT_TYPE = "gate-report"
_API_HOST = "api.wandb.ai"


@dataclasses.dataclass(frozen=True)
class TrackingOptions:
    project: str
    entity: str | None = None
    run_name: str | None = None
    directory: str | None = None  # where wandb keeps its run files; default WANDB_DIR, else the working directory


def harness_commit(source_dir):
    """The git commit of the harness checkout at `source_dir` ('+dirty' when it has local changes), or None."""
    def git(*args):
        return subprocess.run(["git", "-C", str(source_dir), *args], capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def _has_credentials():
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(_API_HOST) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def mode():
    """WANDB_MODE when set; otherwise online with credentials, offline without (sync later)."""
    return os.environ.get("WANDB_MODE") or ("online" if _has_credentials() else "offline")


def artifact_name(metrics):
    """<checkpoint>-<dataset version>, in the characters W&B allows in artifact names."""
    provenance = metrics["provenance"]
    name = f"{pathlib.Path(provenance['checkpoint']['name']).stem}-{provenance['dataset']['version']}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:128]


def _bounds(prefix, interval):
    """An interval's lower and upper bound as two summary values ({} without an interval: v1, yes/no checks)."""
    return {f"{prefix}_lower": interval["lower"], f"{prefix}_upper": interval["upper"]} if interval else {}


def _summary(metrics, timings):
    """Flat summary values: the decision, every criterion, every aggregate, and the timings."""
    values = {"recommendation": metrics["recommendation"], "go": metrics["recommendation"] == "go",
              "deciding_criterion": metrics["deciding_criterion"]["id"]}
    for result in metrics["criteria_results"]:
        for field in ("status", "observed", "threshold", "margin", "n_images"):
            values[f"criteria/{result['id']}/{field}"] = result.get(field)
        values.update(_bounds(f"criteria/{result['id']}/interval", result.get("interval")))
    for a in metrics["aggregates"]:
        prefix = f"aggregates/{a['source_backend']}/{a['corpus']}/{a['failure_class']}"
        values[f"{prefix}/n_images"] = a["n_images"]
        for name, interval in (a.get("intervals") or {}).items():  # metrics.json v2
            values.update(_bounds(f"{prefix}/{name}", interval))
        for key, value in a.items():
            if isinstance(value, dict):
                values.update({f"{prefix}/{key}_{stat}": v for stat, v in value.items() if not isinstance(v, dict)})
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                values[f"{prefix}/{key}"] = value
    for backend, entry in ((timings or {}).get("backends") or {}).items():
        for group in ("latency_ms", "peak_memory_mb", "cache"):
            for stat, value in (entry.get(group) or {}).items():
                values[f"timings/{backend}/{group}_{stat}"] = value
        for field in ("images_timed", "images_from_cache", "latency_measured"):
            if entry.get(field) is not None:
                values[f"timings/{backend}/{field}"] = entry[field]
    for stage, entry in ((timings or {}).get("stages") or {}).items():  # timings v2
        for field, value in entry.items():
            values[f"timings/stages/{stage}/{field}"] = value
    if timings:
        values["timings/device"] = timings["device"]["label"]
    return values


def _table(wandb, rows):
    """A wandb.Table of JSON rows (nested values as JSON text), columns in first-seen order."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cell = lambda v: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v  # noqa: E731
    return wandb.Table(columns=columns, data=[[cell(row.get(c)) for c in columns] for row in rows])


def _per_image_rows(folder):
    with open_regular(folder / "per_image.csv", "r", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _log(wandb, options, folder, settings, commit):
    report = load_report(folder)  # manifest digests, schema, consistent decision: what is logged is what was written
    metrics, timings = report.metrics, report.timings
    config = {"provenance": metrics["provenance"], "settings": settings, "schema": metrics["schema"],
              "harness_git_commit": commit,
              "example_criteria_values": metrics.get("example_criteria_values")}
    run = wandb.init(project=options.project, entity=options.entity, name=options.run_name,
                     dir=options.directory, config=config, mode=mode(), job_type="promotion-gate",
                     tags=[metrics["recommendation"]],
                     settings=wandb.Settings(console="off", silent=True, save_code=False, disable_git=True,
                                             x_disable_stats=True, x_disable_machine_info=True,
                                             disable_job_creation=True, x_save_requirements=False))
    try:
        run.summary.update(_summary(metrics, timings))
        tables = {"criteria_results": _table(wandb, metrics["criteria_results"]),
                  "aggregates": _table(wandb, metrics["aggregates"]),
                  "per_image": _table(wandb, _per_image_rows(folder))}
        if timings:
            tables["timings"] = _table(wandb, [{"backend": b, "device": timings["device"]["label"], **e}
                                               for b, e in sorted(timings["backends"].items())])
            if timings.get("stages"):
                tables["timing_stages"] = _table(wandb, [{"stage": s, **e}
                                                         for s, e in sorted(timings["stages"].items())])
        images = {f"images/{p.relative_to(folder).with_suffix('').as_posix()}": wandb.Image(str(p))
                  for p in sorted(folder.rglob("*.png"))}
        run.log({**tables, **images})
        artifact = wandb.Artifact(artifact_name(metrics), type=ARTIFACT_TYPE,
                                  metadata={"run_key": metrics["provenance"]["run_key"],
                                            "recommendation": metrics["recommendation"]})
        artifact.add_dir(str(folder))
        run.log_artifact(artifact)
        return pathlib.Path(run.dir).parent, run.settings.mode
    finally:
        run.finish()
        wandb.teardown()  # stops wandb's service, flushing the run's files before anyone reads them


def track(options, report_folder, settings, commit, stream=sys.stderr):
    """Log the published run in `report_folder`; returns the wandb run directory, or None after a warning.

    `commit` is the harness's git commit (harness_commit() where the checkout is), or None.

    Never raises: a tracking failure must not turn a decided run into an error.
    """
    try:
        import wandb

        run_dir, run_mode = _log(wandb, options, pathlib.Path(report_folder), settings, commit)
    except Exception as err:  # tracking is best-effort by contract
        print(f"warning: W&B tracking failed, the gate's result stands: {sanitise.text(type(err).__name__)}: "
              f"{sanitise.text(err)}", file=stream)
        return None
    if run_mode == "offline":
        print(f"W&B run saved offline in {sanitise.text(run_dir)}; upload it with: wandb sync "
              f"{sanitise.text(run_dir)}", file=stream)
    return run_dir
