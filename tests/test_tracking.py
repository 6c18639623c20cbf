"""Tracked runs (#445): the gate logs offline to W&B and the run is read back from its own files."""

import json
import pathlib
import subprocess
import sys

import pytest

from tests.support import run_cli, scratch_dir, untrained_checkpoint, write_snapshot
from tracking import offline_log
from tracking.wandb_run import artifact_name, harness_commit


def _report_files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "timings.json"}


@pytest.fixture(scope="module")
def runs():
    """The same small gate run three times: tracked offline, tracking broken, not tracked."""
    base = scratch_dir()
    snapshot = write_snapshot(base / "snap")
    checkpoint = untrained_checkpoint()
    common = ["--checkpoint", str(checkpoint), "--dataset", str(snapshot), "--quiet"]
    env = {"GATE_CACHE_DIR": str(base / "cache"), "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           # wandb's own config and caches default to $HOME, read-only under Bazel's sandbox.
           **{f"WANDB_{d}_DIR": str(base / f"wandb-{d.lower()}") for d in ("CONFIG", "CACHE", "DATA", "ARTIFACT")}}
    tracked = run_cli(*common, "--output_dir", str(base / "tracked"), "--wandb_project", "pottery-gate-test",
                      "--wandb_run_name", "tracked-run", "--wandb_dir", str(base / "wandb"), env=env)
    broken = run_cli(*common, "--output_dir", str(base / "broken"), "--wandb_project", "pottery-gate-test",
                     "--wandb_dir", str(base / "wandb-broken"), env={**env, "WANDB_MODE": "no-such-mode"})
    plain = run_cli(*common, "--output_dir", str(base / "plain"), env=env)
    return base, tracked, broken, plain


def _run_dir(base):
    found = sorted((base / "wandb" / "wandb").glob("offline-run-*"))
    assert len(found) == 1, found
    return found[0]


def test_tracking_changes_neither_exit_status_nor_outputs(runs):
    base, tracked, broken, plain = runs
    assert plain.returncode in (0, 1), plain.stderr
    assert tracked.returncode == broken.returncode == plain.returncode
    assert tracked.stdout == plain.stdout.replace("plain", "tracked")
    assert _report_files(base / "tracked") == _report_files(base / "plain") == _report_files(base / "broken")
    assert "W&B run saved offline in" in tracked.stderr and "wandb sync" in tracked.stderr
    assert "warning: W&B tracking failed, the gate's result stands" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_the_offline_run_holds_config_summary_tables_images_and_the_report_artifact(runs):
    base, *_ = runs
    metrics = json.loads((base / "tracked" / "metrics.json").read_text())
    timings = json.loads((base / "tracked" / "timings.json").read_text())
    run = offline_log.read_run(_run_dir(base))
    assert run["run"]["project"] == "pottery-gate-test" and run["run"]["display_name"] == "tracked-run"
    assert run["config"]["provenance"] == metrics["provenance"]
    assert run["config"]["settings"]["conf"] == 0.25 and run["config"]["settings"]["batch_size"] == 8
    assert "harness_git_commit" in run["config"]
    summary = run["summary"]
    assert summary["recommendation"] == metrics["recommendation"]
    assert summary["deciding_criterion"] == metrics["deciding_criterion"]["id"]
    for result in metrics["criteria_results"]:
        assert summary[f"criteria/{result['id']}/status"] == result["status"]
        assert summary[f"criteria/{result['id']}/observed"] == result["observed"]
        if result["interval"]:  # metrics.json v2: the interval the decision rule read
            assert summary[f"criteria/{result['id']}/interval_lower"] == result["interval"]["lower"]
            assert summary[f"criteria/{result['id']}/interval_upper"] == result["interval"]["upper"]
    for a in metrics["aggregates"]:
        prefix = f"aggregates/{a['source_backend']}/{a['corpus']}/{a['failure_class']}"
        assert summary[f"{prefix}/mask_iou_mean"] == a["mask_iou"]["mean"]
        assert summary[f"{prefix}/n_images"] == a["n_images"]
        assert summary[f"{prefix}/mask_iou_mean_upper"] == a["intervals"]["mask_iou_mean"]["upper"]
    latency = timings["backends"]["candidate"]["latency_ms"]
    assert summary["timings/candidate/latency_ms_median"] == latency["median"]
    assert summary["timings/device"] == timings["device"]["label"]
    assert summary["timings/rembg/latency_measured"] == "per_image"
    assert summary["timings/candidate/latency_measured"] == "batch_average"
    for stage in ("duplicate_check", "decode", "predict/candidate", "scoring", "intervals", "rendering"):
        assert summary[f"timings/stages/{stage}/wall_s"] == timings["stages"][stage]["wall_s"]
        assert summary[f"timings/stages/{stage}/cpu_s"] == timings["stages"][stage]["cpu_s"]
    assert run["history"]["timing_stages"]["nrows"] == len(timings["stages"])
    # Tables are logged as table files; the per-image one holds every row of per_image.csv.
    per_image = run["history"]["per_image"]
    assert per_image["_type"] == "table-file" and per_image["nrows"] == len(metrics["per_image"])
    table = json.loads((_run_dir(base) / "files" / per_image["path"]).read_text())
    assert len(table["data"]) == len(metrics["per_image"]) and "mask_iou" in table["columns"]
    assert run["history"]["criteria_results"]["nrows"] == len(metrics["criteria_results"])
    pngs = sorted(p.relative_to(base / "tracked").with_suffix("").as_posix()
                  for p in (base / "tracked").rglob("*.png"))
    assert pngs, "the run has gallery images"
    for png in pngs:
        assert run["history"][f"images/{png}"]["_type"] == "image-file"
    [artifact] = [a for a in run["artifacts"] if a["type"] == "gate-report"]
    assert artifact["name"] == artifact_name(metrics) == f"{pathlib.Path(untrained_checkpoint()).stem}-tiny-v1"
    assert {a["name"] for a in run["artifacts"] if a["type"] == "run_table"} >= {
        f"run-{_run_dir(base).name.rsplit('-', 1)[1]}-{t}" for t in ("per_image", "aggregates", "criteria_results")}
    assert artifact["metadata"]["run_key"] == metrics["provenance"]["run_key"]
    assert artifact["files"] == sorted(p.relative_to(base / "tracked").as_posix()
                                       for p in (base / "tracked").rglob("*") if p.is_file())


def test_harness_commit_is_the_checkout_head_and_says_dirty():
    repo = scratch_dir()
    git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True,  # noqa: E731
                                    text=True).stdout.strip()
    git("init", "-q")
    (repo / "f.txt").write_text("one")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD")
    assert harness_commit(repo) == head
    (repo / "f.txt").write_text("two")
    assert harness_commit(repo) == f"{head}+dirty"
    assert harness_commit(scratch_dir()) is None  # not a checkout: recorded as unknown


def test_artifact_names_keep_only_the_characters_wandb_allows():
    metrics = {"provenance": {"checkpoint": {"name": "best model (v2).pt"}, "dataset": {"version": "2026/11 α"}}}
    assert artifact_name(metrics) == "best_model_v2_-2026_11_"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
