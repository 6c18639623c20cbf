"""The gate binary on the bundled demo: real rembg u2net, real ultralytics, outputs parsed back."""

import json
import os
import re
import subprocess
import sys

import junitparser
import pytest
from PIL import Image

from eval.inputs.snapshot import load_snapshot
from tests.croprun_db import export_demo
from tests.support import (COMPARE_CLI, DEMO_CHECKPOINT, DEMO_INCUMBENT, DEMO_REPORT, DEMO_SNAPSHOT, INCUMBENT_REPORT,
                           REPO, TREND_DEMO, files_of, last_line, run_cli, scratch_dir)

LAST_LINE = re.compile(r"^recommendation: (go|no-go) \(deciding criterion: (\S+): .+\)$")


@pytest.fixture(scope="module")
def demo_runs():
    """Two demo runs: the first with an empty baseline cache, the second reusing it and writing CI's files."""
    base = scratch_dir()
    env = {"GATE_CACHE_DIR": str(base / "cache")}
    runs = [run_cli("--output_dir", str(base / "run1"), "--quiet", env=env),
            run_cli("--output_dir", str(base / "run2"), "--quiet", f"--junit_xml={base / 'junit.xml'}",
                    env={**env, "GITHUB_STEP_SUMMARY": str(base / "summary.md")})]
    return base, runs


def test_demo_run_exits_with_its_recommendation(demo_runs):
    base, runs = demo_runs
    metrics = json.loads((base / "run1" / "metrics.json").read_text())
    assert runs[0].returncode == {"go": 0, "no-go": 1}[metrics["recommendation"]], runs[0].stderr
    assert f"recommendation: {metrics['recommendation']}" in runs[0].stdout
    assert "report.md" in runs[0].stdout


def test_metrics_json_has_both_backends_corpora_and_classes(demo_runs):
    base, _ = demo_runs
    metrics = json.loads((base / "run1" / "metrics.json").read_text())
    keys = {(a["source_backend"], a["corpus"], a["failure_class"]) for a in metrics["aggregates"]}
    for backend in ("rembg", "candidate", "incumbent"):
        for corpus in ("test", "flagged"):
            assert (backend, corpus, "all") in keys
        for failure_class in ("glossy_highlight", "white_on_white", "cast_shadow", "busy_background",
                              "thin_structure"):
            assert (backend, "flagged", failure_class) in keys
    assert metrics["provenance"]["demo"] is True
    assert len(metrics["provenance"]["checkpoint"]["sha256"]) == 64
    assert metrics["provenance"]["backends"]["rembg"]["model_md5"] == "60024c5c889badc19c04ad937298a77b"
    assert metrics["not_evaluated"] == []
    assert metrics["excluded_rows"], "the demo exercises exclusions"
    ids = {(s["corpus"], s["image_id"]) for s in metrics["per_image"]}
    assert len(metrics["per_image"]) == 3 * len(ids)  # every image scored by rembg, candidate and incumbent
    assert metrics["provenance"]["incumbent"]["name"] == "pottery-seg-incumbent.pt"
    for row in metrics["per_image"]:
        assert 0.0 <= row["mask_iou"] <= 1.0
        assert row["passed"] == (row["mask_iou"] >= metrics["provenance"]["iou_pass_threshold"])


def test_ci_reads_the_decision_from_junit_and_the_step_summary(demo_runs):
    base, runs = demo_runs
    metrics = json.loads((base / "run2" / "metrics.json").read_text())
    [suite] = list(junitparser.JUnitXml.fromfile(str(base / "junit.xml")))
    properties = {p.name: p.value for p in suite.properties()}
    assert properties["recommendation"] == metrics["recommendation"]
    assert properties["checkpoint.sha256"] == metrics["provenance"]["checkpoint"]["sha256"]
    assert suite.tests == len(metrics["criteria_results"])
    summary = (base / "summary.md").read_text()
    assert summary.startswith(f"## Promotion gate: **{metrics['recommendation']}**"), summary
    assert str(base / "run2" / "report.md") in summary.replace("\\", "")


def test_report_last_line_matches_the_json(demo_runs):
    base, _ = demo_runs
    metrics = json.loads((base / "run1" / "metrics.json").read_text())
    match = LAST_LINE.match(last_line(base / "run1" / "report.md"))
    assert match, last_line(base / "run1" / "report.md")
    assert match.group(1) == metrics["recommendation"]
    assert match.group(2).replace("\\", "") == metrics["deciding_criterion"]["id"]


def test_gallery_images_referenced_by_the_report_exist(demo_runs):
    base, _ = demo_runs
    report = (base / "run1" / "report.md").read_text()
    referenced = re.findall(r"\]\((gallery/[^)]+\.png)\)", report)
    assert referenced
    for relative in referenced:
        assert (base / "run1" / relative).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_cli_closes_with_what_its_exit_status_means(demo_runs):
    _, runs = demo_runs
    status = runs[0].returncode
    closing = runs[0].stderr.rstrip("\n").splitlines()[-1]
    assert closing.startswith(f"exit status {status} = {('go', 'no-go')[status]}:"), runs[0].stderr
    if status == 1:
        assert "the gate working" in closing
    assert runs[0].stdout.rstrip("\n").splitlines()[-1].startswith("recommendation: ")


def test_gallery_panels_are_tall_and_the_folder_stays_small(demo_runs):
    base, _ = demo_runs
    panels = sorted((base / "run1" / "gallery").glob("*.png"))
    assert panels
    for panel in panels:
        with Image.open(panel) as image:
            assert image.height >= 256 + 40, panel.name  # 256 px tiles, captions and the legend
    assert sum(p.stat().st_size for p in panels) < 5_000_000


def test_rerun_is_byte_identical_with_a_warm_cache(demo_runs):
    base, runs = demo_runs
    assert runs[1].returncode == runs[0].returncode
    for name in ("metrics.json", "per_image.csv", "report.md"):
        assert (base / "run1" / name).read_bytes() == (base / "run2" / name).read_bytes(), name


def _files(folder):
    """The report's reproducible files: timings.json (this machine's latency and memory) is not one."""
    return files_of(folder, skip=("timings.json",))


REGENERATE = ("regenerate the examples with scripts/regenerate_examples.sh (or the commands in reports/BUILD.bazel) "
              "and review the diff")


@pytest.fixture(scope="module")
def trend_demo(demo_runs):
    """The demo incumbent gated as a candidate on the demo snapshot, then the trend from it to the demo run
    (built from the metrics.json files: timings are machine-dependent and stay out of the example)."""
    base, _ = demo_runs
    env = {"GATE_CACHE_DIR": str(base / "cache")}
    run = run_cli("--checkpoint", str(DEMO_INCUMBENT), "--dataset", str(DEMO_SNAPSHOT), "--output_dir",
                  str(base / "incumbent-run"), "--quiet", env=env)
    assert run.returncode in (0, 1), run.stderr
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    trend = subprocess.run([sys.executable, str(COMPARE_CLI), "--output_dir", str(base / "trend"),
                            str(base / "incumbent-run" / "metrics.json"), str(base / "run1" / "metrics.json")],
                           capture_output=True, text=True, env=env, timeout=600, check=False)
    assert trend.returncode == 0, trend.stderr
    return base


def test_committed_incumbent_run_and_trend_example_are_regenerated_byte_for_byte(trend_demo):
    for produced, committed in ((trend_demo / "incumbent-run", INCUMBENT_REPORT), (trend_demo / "trend", TREND_DEMO)):
        produced, committed = _files(produced), _files(committed)
        assert sorted(produced) == sorted(committed), REGENERATE
        for name, data in produced.items():
            assert data == committed[name], f"{name}: {REGENERATE}"


def test_the_trend_example_shows_both_checkpoints_in_order(trend_demo):
    text = (trend_demo / "trend" / "trend.md").read_text()
    runs = [line for line in text.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert "pottery-seg-incumbent.pt" in runs[0] and "pottery-seg-demo.pt" in runs[1]
    assert "the numbers below are the runs' own aggregates" in text  # same snapshot, criteria and baseline


def test_timings_are_written_beside_the_report_and_kept_out_of_it(demo_runs):
    base, _ = demo_runs
    timings = json.loads((base / "run1" / "timings.json").read_text())
    metrics = json.loads((base / "run1" / "metrics.json").read_text())
    assert timings["schema"] == "pottery-gate-timings/v2"
    assert timings["run_key"] == metrics["provenance"]["run_key"]
    assert timings["device"]["torch_device"] == "cpu" and timings["device"]["label"].startswith("cpu: ")
    n_images = len({(s["corpus"], s["image_id"]) for s in metrics["per_image"]})
    candidate, rembg = timings["backends"]["candidate"], timings["backends"]["rembg"]
    assert 0 < candidate["latency_ms"]["median"] <= candidate["latency_ms"]["p90"]
    assert candidate["peak_memory_mb"]["rss"] > 50 and candidate["peak_memory_mb"]["accelerator"] is None
    # rembg infers one photo per call: its latency is each photo's own; the candidate's is a batch average.
    assert rembg["latency_measured"] == "per_image" and candidate["latency_measured"] == "batch_average"
    for backend in (candidate, rembg):  # a cold run computes each distinct photo (one may be in both corpora)
        cache = backend["cache"]
        assert cache["hits"] + cache["misses"] == n_images and cache["rejected"] == 0
        assert backend["images_timed"] == cache["misses"] > 0 and backend["images_from_cache"] == cache["hits"]
    stages = timings["stages"]
    assert set(stages) == {"duplicate_check", "decode", "predict/rembg", "predict/candidate", "predict/incumbent",
                           "scoring", "intervals", "rendering", "publishing"}
    assert all(s["wall_s"] > 0 and s["cpu_s"] >= 0 and s["calls"] >= 1 for s in stages.values())
    assert all(stages[s]["cpu_s"] > 0 for s in ("predict/rembg", "predict/candidate", "decode"))
    # The warm run serves every mask from the caches: no backend is timed, every one is listed with its count.
    second = json.loads((base / "run2" / "timings.json").read_text())
    for name in ("rembg", "candidate", "incumbent"):
        served = second["backends"][name]
        assert served["images_timed"] == 0 and served["latency_ms"] is None, name
        assert served["cache"] == {"hits": n_images, "misses": 0, "rejected": 0}
        assert served["images_from_cache"] == n_images
    assert not any(stage.startswith("predict/") for stage in second["stages"])
    for name in ("metrics.json", "report.md"):
        text = (base / "run1" / name).read_text()
        assert "latency" not in text and "timings" not in text


def test_committed_demo_report_is_regenerated_byte_for_byte(demo_runs):
    """The committed report is a golden: any change to what a release ticket gets must be a reviewed diff."""
    base, _ = demo_runs
    produced, committed = _files(base / "run1"), _files(DEMO_REPORT)
    assert sorted(produced) == sorted(committed), "regenerate with ./dev demo --overwrite and review the diff"
    for name, data in produced.items():
        assert data == committed[name], (
            f"{name} differs from reports/{DEMO_REPORT.name}/{name}: regenerate with ./dev demo --overwrite "
            "and review the diff")


_ROWS = ("recommendation", "deciding_criterion", "criteria_results", "aggregates", "per_image", "not_evaluated",
         "excluded_rows")


def test_the_gate_on_the_demo_database_export_gives_the_golden_rows(demo_runs):
    """The demo CropRun database exported (tests/test_export_round_trip.py: the committed snapshot's twin) and
    gated as the demo is: every measured row, interval and decision is the golden's; the provenance and the
    report name the export. The demo runs' mask cache serves the same pixels (their content is the key)."""
    base, _ = demo_runs
    exported = export_demo(base / "snapshots")
    done = run_cli("--checkpoint", str(DEMO_CHECKPOINT), "--incumbent_checkpoint", str(DEMO_INCUMBENT),  # as the demo
                   "--dataset", str(exported.path), "--output_dir", str(base / "export-report"), "--quiet",
                   env={"GATE_CACHE_DIR": str(base / "cache")})
    assert done.returncode in (0, 1), done.stderr
    metrics = json.loads((base / "export-report" / "metrics.json").read_text())
    golden = json.loads((DEMO_REPORT / "metrics.json").read_text())
    for key in _ROWS:
        assert metrics[key] == golden[key], key
    assert metrics["provenance"]["dataset"]["export"] == load_snapshot(exported.path).export
    assert metrics["provenance"]["dataset"]["sha256"] == exported.sha256 != golden["provenance"]["dataset"]["sha256"]
    report = (base / "export-report" / "report.md").read_text()
    assert ("| exported from | CropRun sqlite database croprun.sqlite, rows created up to 2026-11-20T00:00:00Z "
            "(30 rows)") in report
    assert "excluded: no ground-truth annotation 3, source.type is not 'human' 3 |" in report


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
