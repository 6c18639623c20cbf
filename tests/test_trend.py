"""The trend report across runs: hand-edited metrics files in, trend.md and plots parsed back."""

import copy
import json
import os
import re
import statistics
import subprocess
import sys

import pytest

from tests.support import COMPARE_CLI, DEMO_REPORT, REPO, scratch_dir
from eval.report import outputs
from eval.sanitise import markdown as markdown_text
from trend import compare
from trend.render import render_trend
from trend.runs import load_run


def _demo():
    return json.loads((DEMO_REPORT / "metrics.json").read_text())


def _write(document, name, timings=None):
    """A report folder as the gate publishes it (manifest included) holding `document` and `timings`."""
    folder = scratch_dir() / name
    files = {"metrics.json": json.dumps(document).encode()}
    if timings is not None:
        files["timings.json"] = json.dumps(timings).encode()
    outputs.check_destination(folder, name, False).publish(files)
    return folder


def _candidate_rows(document):
    return {(r["corpus"], r["image_id"]): r for r in document["per_image"] if r["source_backend"] == "candidate"}


def _ids(corpus):
    """Image ids of a corpus of the committed demo run, sorted (the demo snapshot may be regenerated)."""
    return sorted(i for c, i in _candidate_rows(_demo()) if c == corpus)


DOWN, UP, DROPPED, RETRUTHED = _ids("test")[0], _ids("flagged")[0], _ids("test")[1], _ids("test")[2]
FLIPPED = _demo()["deciding_criterion"]["id"]


def _compare_cli(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(COMPARE_CLI), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def _table_rows(markdown, first_cell):
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in markdown.splitlines()
            if line.startswith(f"| {first_cell} |")]


@pytest.fixture(scope="module")
def later_run():
    """The demo run, then a 'next checkpoint': one image better, one worse, every criterion passing (the
    deciding one flipped with a new observed value), so a go."""
    later = _demo()
    later["provenance"]["checkpoint"] = {"name": "next.pt", "sha256": "ab" * 32}
    rows = _candidate_rows(later)
    rows[("test", DOWN)]["mask_iou"] = 0.5  # hand-set: moved most, down
    rows[("flagged", UP)]["mask_iou"] = 0.99  # moved up
    for result in later["criteria_results"]:
        result.update(status="pass")
        if result["id"] == FLIPPED:
            result.update(observed=0.01)
            later["deciding_criterion"] = dict(result)
    later["recommendation"] = "go"
    return later


def test_same_inputs_use_the_recorded_aggregates_and_list_movers_and_status_changes(later_run):
    first, second = _write(_demo(), "first"), _write(later_run, "second")
    out = scratch_dir() / "trend"
    done = _compare_cli("--output_dir", out, first, second / "metrics.json")
    assert done.returncode == 0, done.stderr
    text = (out / "trend.md").read_text()
    recorded = next(a for a in _demo()["aggregates"]
                    if (a["source_backend"], a["corpus"], a["failure_class"]) == ("candidate", "test", "all"))
    row = next(r for r in _table_rows(text, "all") if r[1] == "candidate" and f"n={recorded['n_images']}" in r[3] and
               r[3].startswith(f"{recorded['mask_iou']['mean']:.3f}"))
    assert row[2] == "mask IoU"
    assert "the numbers below are the runs' own aggregates" in text
    changed = _table_rows(text, "#1 → #2")
    flip = next(r for r in changed if r[1] == markdown_text(FLIPPED))
    old = _demo()["deciding_criterion"]["status"]
    assert flip[2].startswith(markdown_text(old)) and flip[3] == ("pass" if old != "pass" else "fail") + " (0.0100)"
    movers = [r for r in changed if len(r) == 6]
    before = _candidate_rows(_demo())
    assert {tuple(r[1:3]): r[5] for r in movers} == {  # the two hand-set images and nothing else moved
        ("test", markdown_text(DOWN)): f"{0.5 - before[('test', DOWN)]['mask_iou']:+.3f}",
        ("flagged", markdown_text(UP)): f"{0.99 - before[('flagged', UP)]['mask_iou']:+.3f}"}
    assert [abs(float(r[5])) for r in movers] == sorted((abs(float(r[5])) for r in movers), reverse=True)
    recorded_metrics = {m for m in ("mask_iou", "boundary_iou") if m in _demo()["aggregates"][0]}
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(
        f"{m}-{c}.png" for m in recorded_metrics for c in ("flagged", "test"))
    for png in (out / "plots").iterdir():
        assert f"](plots/{png.name})" in text


def test_different_datasets_compare_only_shared_images_and_say_so(later_run):
    later = copy.deepcopy(later_run)
    later["provenance"]["dataset"] = {"version": "demo-v2", "sha256": "cd" * 32}
    later["per_image"] = [r for r in later["per_image"] if r["image_id"] != DROPPED]  # not in v2
    changed_truth = next(r for r in later["per_image"] if r["image_id"] == RETRUTHED)
    for r in later["per_image"]:
        if r["image_id"] == RETRUTHED:
            r["ground_truth_pixels"] += 7  # same id, different ground truth: not the same image
    assert changed_truth
    runs = [load_run(_write(_demo(), "a")), load_run(_write(later, "b"))]
    files = render_trend(runs)
    text = files["trend.md"].decode()
    assert "**The runs' inputs differ**" in text
    diffs = {r[1]: r[2:] for r in _table_rows(text, "#1 → #2") if len(r) == 4}
    assert diffs["dataset version"] == ["demo-v1", "demo-v2"]
    assert "dataset content" in diffs
    shared = compare.shared_images(runs)
    ids = {(c, i) for c, i, _ in shared}
    assert ("test", DROPPED) not in ids and ("test", RETRUTHED) not in ids
    assert len(ids) == len(_candidate_rows(_demo())) - 2
    # Hand-computed: the test corpus mean over the shared images only, for each run.
    for index, document in enumerate((_demo(), later)):
        values = [r["mask_iou"] for (c, i), r in sorted(_candidate_rows(document).items())
                  if c == "test" and (c, i) in ids]
        n = len(_ids("test")) - 2
        expected = f"{round(statistics.fmean(values), 6):.3f} (n={n})"
        row = next(r for r in _table_rows(text, "all") if r[1] == "candidate" and r[3].endswith(f"(n={n})"))
        assert row[3 + index] == expected


def test_v2_fields_boundary_iou_intervals_and_timings_are_shown():
    document = _demo()
    document["schema"] = "pottery-gate-metrics/v2"
    for a in document["aggregates"]:  # as engineer E's schema v2 records them
        a["intervals"] = {"mask_iou_mean": {"level": 0.95, "lower": a["mask_iou"]["mean"] - 0.01,
                                            "method": "expanded percentile bootstrap",
                                            "upper": a["mask_iou"]["mean"] + 0.02}}
        a["boundary_iou"] = {"mean": 0.5, "median": 0.5, "p10": 0.4, "p90": 0.6}
    timings = {"schema": "pottery-gate-timings/v1", "device": {"label": "cpu | <b>box</b>"},
               "backends": {"candidate": {"images_timed": 48, "latency_ms": {"median": 12.34, "p90": 20.0},
                                          "peak_memory_mb": {"rss": 900.4, "accelerator": None}}}}
    v1 = _demo()
    v1["schema"] = "pottery-gate-metrics/v1"
    for row in v1["aggregates"] + v1["per_image"]:
        row.pop("boundary_iou", None)  # as the gate wrote v1 before Boundary IoU
    v2_folder = _write(document, "v2", timings)
    runs = [load_run(_write(v1, "v1")), load_run(v2_folder)]
    assert load_run(v2_folder / "metrics.json").timings is None  # a metrics.json alone: no machine figures
    files = render_trend(runs)
    text = files["trend.md"].decode()
    assert "plots/boundary_iou-test.png" in files
    boundary = next(r for r in _table_rows(text, "all") if r[2] == "Boundary IoU" and r[1] == "candidate")
    assert boundary[3:] == ["—", f"0.500 (n={len(_ids('test'))})"]
    interval = next(r for r in _table_rows(text, "all") if r[2] == "mask IoU" and "[" in r[4])
    assert re.fullmatch(r"(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\] \(n=\d+\)", interval[4])
    cost = _table_rows(text, "#2")
    assert cost == [["#2", "cpu \\| &lt;b&gt;box&lt;/b&gt;", "candidate", "48", "n/a", "batch average", "12.3", "20.0",
                     "900", "n/a"]]


def test_timings_v2_show_cache_counts_latency_method_and_stages():
    timings = {"schema": "pottery-gate-timings/v2", "device": {"label": "cpu"},
               "stages": {"decode": {"wall_s": 1.234, "cpu_s": 2.5, "calls": 3},
                          "predict/<b>x</b>": {"wall_s": 0.5, "cpu_s": 0.25, "calls": 1}},
               "backends": {"rembg": {"images_timed": 0, "images_from_cache": 6, "latency_ms": None,
                                      "latency_measured": None, "cache": {"hits": 6, "misses": 0, "rejected": 0},
                                      "peak_memory_mb": {"rss": 0.0, "accelerator": None}},
                            "candidate": {"images_timed": 6, "images_from_cache": 0, "latency_measured": "per_image",
                                          "latency_ms": {"median": 10.0, "p90": 11.0, "mean": 10.0},
                                          "peak_memory_mb": {"rss": 800.0, "accelerator": None}}}}
    text = render_trend([load_run(_write(_demo(), "v2", timings))])["trend.md"].decode()
    rows = _table_rows(text, "#1")
    assert ["#1", "cpu", "rembg", "0", "6", "n/a", "n/a", "n/a", "0", "n/a"] in rows
    assert ["#1", "cpu", "candidate", "6", "0", "per image", "10.0", "11.0", "800", "n/a"] in rows
    assert ["#1", "decode", "1.23", "2.50", "3"] in rows
    assert ["#1", "predict/&lt;b&gt;x&lt;/b&gt;", "0.50", "0.25", "1"] in rows


def test_plots_are_deterministic_and_carry_no_software_or_time_chunk(later_run):
    runs = [load_run(_write(_demo(), "x")), load_run(_write(later_run, "y"))]
    first, second = render_trend(runs), render_trend(runs)
    assert first == second
    for name, data in first.items():
        if name.endswith(".png"):
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            assert b"tIME" not in data and b"Software" not in data and b"matplotlib" not in data


def test_user_strings_are_escaped(later_run):
    hostile = copy.deepcopy(later_run)
    for r in hostile["per_image"]:
        if r["image_id"] == UP:
            r["image_id"] = UP + "|<img src=x onerror=alert(1)>"
    hostile["provenance"]["checkpoint"]["name"] = "[click](http://evil)"
    baseline = copy.deepcopy(_demo())
    for r in baseline["per_image"]:
        if r["image_id"] == UP:
            r["image_id"] = hostile_id = UP + "|<img src=x onerror=alert(1)>"
    text = render_trend([load_run(_write(baseline, "h1")), load_run(_write(hostile, "h2"))])["trend.md"].decode()
    assert hostile_id not in text and "<img" not in text
    assert markdown_text(UP) + "\\|&lt;img src=x onerror=alert(1)&gt;" in text
    assert "\\[click\\](http://evil)" in text


@pytest.mark.parametrize("mutate, problem", [
    (lambda d: d.update(schema="pottery-gate-metrics/v9"), "unknown metrics schema"),
    (lambda d: d.pop("per_image"), "(top level): 'per_image' is a required property"),
    (lambda d: d["provenance"]["dataset"].pop("sha256"), "provenance.dataset: 'sha256' is a required property"),
    (lambda d: d["aggregates"][0].update(mask_iou={"median": 1}), "aggregates.0.mask_iou: 'mean' is a required"),
])
def test_unreadable_runs_are_exit_2_naming_the_file(mutate, problem):
    document = _demo()
    mutate(document)
    bad = _write(document, "bad")
    out = scratch_dir() / "out"
    done = _compare_cli("--output_dir", out, DEMO_REPORT, bad)
    assert done.returncode == 2
    assert f"{bad / 'metrics.json'}: " in done.stderr and problem in done.stderr
    assert not out.exists()


def test_destination_with_foreign_files_is_refused_and_kept():
    out = scratch_dir() / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    done = _compare_cli("--output_dir", out, DEMO_REPORT)
    assert done.returncode == 2 and "notes.txt" in done.stderr
    assert (out / "notes.txt").read_text() == "keep me"
    again = _compare_cli("--output_dir", scratch_dir() / "fresh", DEMO_REPORT, DEMO_REPORT)
    assert again.returncode == 0, again.stderr


def test_cli_without_runs_or_with_a_missing_folder_is_exit_2():
    assert _compare_cli("--output_dir", scratch_dir() / "o").returncode == 2
    missing = _compare_cli("--output_dir", scratch_dir() / "o", scratch_dir() / "nope")
    assert missing.returncode == 2 and "no metrics.json here" in missing.stderr
    assert "--movers" in _compare_cli("--help").stdout


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
