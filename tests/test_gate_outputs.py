"""The gate binary end to end (#8 items 8, 10, 14, 17): what it prints, what it writes, what it refuses.

One real go (demo checkpoint, tiny snapshot, lenient example criteria) whose checkpoint file name, output
folder name and CropRun ids carry every kind of line break followed by a forged `recommendation: go`:
stdout, stderr, report.md and per_image.csv are split into lines both ways and hold exactly one
recommendation line, the real one. Then: a reviewer's file in that folder blocks a same-inputs rerun;
SIGTERM ends a run with exit 2 and nothing published; unusable destinations fail before any model runs.
"""

import pathlib
import shutil
import signal
import sys

import pytest

from eval import sanitise
from eval.decision.decide import EXAMPLE_VALUES_WARNING
from tests.support import DEMO_CHECKPOINT, crop_run, interrupt_cli, last_line, pot_photo, run_cli, write_snapshot

EXIT_GO, EXIT_ERROR = 0, 2
LINE_BREAKS = ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
FORGED = "recommendation: go (forged)"
LOOSE_CRITERIA = """\
schema_version: 1
example_values: true
iou_pass_threshold: 0.5
min_images: 1
failure_classes:
  - {id: gloss, description: glossy, match: {notes_any: [gloss]}}
  - {id: shadow, description: cast shadow, match: {notes_any: [shadow]}}
criteria:
  - {id: flagged_pass_rate, kind: min_pass_rate, corpus: flagged, failure_class: all, threshold: 0.0}
  - {id: test_mean_iou, kind: min_mean_iou, corpus: test, failure_class: all, threshold: 0.0}
  - {id: per_class, kind: max_mean_iou_regression, corpus: flagged, failure_class: each, threshold: 1.0}
"""


def recommendation_lines(text):
    """Lines that read as a recommendation, for a universal splitter and for a plain "\\n" splitter."""
    return [line for line in text.splitlines() + text.split("\n") if line.lstrip(" >|*#-").startswith("recommendation")]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("outputs")
    rows = [crop_run(f"cr{k}{brk}{FORGED}", "glossy rim" if k % 2 else "cast shadow", image=f"images/f{k}.png",
                     mask=f"masks/f{k}.png") for k, brk in enumerate(LINE_BREAKS)]
    snap = write_snapshot(base / "snap", n_test=3, rows=rows)
    for k in range(len(rows)):
        photo, mask = pot_photo(shift=6 + 2 * k, color=(120 + 10 * k, 60, 30))
        photo.save(snap / "flagged" / "images" / f"f{k}.png")
        mask.save(snap / "flagged" / "masks" / f"f{k}.png")
    (base / "loose.yaml").write_text(LOOSE_CRITERIA)
    checkpoint = base / ("cand" + "".join(f"{brk}{FORGED}" for brk in LINE_BREAKS[:5]) + ".pt")
    shutil.copyfile(DEMO_CHECKPOINT, checkpoint)
    out = base / ("report" + "".join(f"{brk}{FORGED}" for brk in LINE_BREAKS[5:]))
    return base, snap, checkpoint, out


def gate(base, *flags, **kwargs):
    return run_cli(*flags, env={"GATE_CACHE_DIR": str(base / "cache")}, **kwargs)


@pytest.fixture(scope="module")
def go_run(world):
    base, snap, checkpoint, out = world
    flags = ["--checkpoint", str(checkpoint), "--dataset", str(snap), "--output_dir", str(out),
             "--criteria", str(base / "loose.yaml")]
    return gate(base, *flags), flags


def test_the_run_is_a_go_with_one_recommendation_line_on_stdout(go_run, world):
    proc, _ = go_run
    assert proc.returncode == EXIT_GO, (proc.stdout, proc.stderr)
    assert recommendation_lines(proc.stdout) == [proc.stdout.splitlines()[-1]] * 2
    assert proc.stdout.splitlines()[-1].startswith("recommendation: go (deciding criterion:")
    assert FORGED not in proc.stdout.splitlines()[-1]
    [report_line] = [line for line in proc.stdout.split("\n") if line.startswith("report: ")]
    assert report_line.endswith("/report.md") and len(report_line.splitlines()) == 1


def test_stderr_holds_no_recommendation_line(go_run):
    proc, _ = go_run
    assert "[gate] checkpoint cand" in proc.stderr  # progress lines quote the checkpoint name
    assert recommendation_lines(proc.stderr) == [], proc.stderr


def test_a_go_on_example_values_warns_on_stderr(go_run):
    """A go decided on example thresholds says so on the console, not only in the report."""
    proc, _ = go_run
    assert proc.returncode == EXIT_GO
    assert EXAMPLE_VALUES_WARNING in proc.stderr.splitlines(), proc.stderr


def test_report_and_csv_hold_no_forged_line(go_run, world):
    _, _, _, out = world
    report = (out / "report.md").read_text()
    assert recommendation_lines(report) == [last_line(out / "report.md")] * 2
    assert last_line(out / "report.md").startswith("recommendation: go (deciding criterion:")
    ids = [f"cr{k}{brk}{FORGED}" for k, brk in enumerate(LINE_BREAKS)]
    assert any(sanitise.markdown(i) in report for i in ids)  # gallery captions: the ids, line breaks neutralised
    table = (out / "per_image.csv").read_bytes().decode()
    assert all(f",{sanitise.csv_cell(i)}," in table for i in ids)
    assert recommendation_lines(table) == []
    assert len(table.splitlines()) == len(table.split("\n")) - 1


def test_an_error_message_cannot_forge_a_line(world):
    base, snap, _, _ = world
    criteria = base.joinpath(*(f"d{brk}{FORGED}" for brk in LINE_BREAKS), "c.yaml")
    proc = gate(base, "--checkpoint", str(DEMO_CHECKPOINT), "--dataset", str(snap), "--criteria", str(criteria))
    assert proc.returncode == EXIT_ERROR
    assert "file not found" in proc.stderr
    assert recommendation_lines(proc.stderr) == [] and recommendation_lines(proc.stdout) == []
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_a_reviewers_file_blocks_a_same_inputs_rerun(go_run, world):
    """A rerun never replaces a folder holding a reviewer's file (REVIEW.md), even with --overwrite."""
    base, _, _, out = world
    proc, flags = go_run
    (out / "REVIEW.md").write_text("Approved with comments.\n")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    for extra in ([], ["--overwrite"]):
        rerun = gate(base, *flags, *extra)
        assert rerun.returncode == EXIT_ERROR, rerun.stderr
        assert "holds files the gate did not write (REVIEW.md)" in rerun.stderr
        assert "[gate]" not in rerun.stderr  # refused before any model ran
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    (out / "REVIEW.md").unlink()
    rerun = gate(base, *flags, "--quiet")
    assert rerun.returncode == EXIT_GO, rerun.stderr  # the gate's own files alone: replaced, byte-identical
    reproducible = lambda files: {k: v for k, v in files.items() if k not in ("REVIEW.md", "timings.json")}  # noqa: E731
    assert reproducible({p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}) == reproducible(before)


def test_sigterm_exits_2_with_a_message_and_publishes_nothing(world, tmp_path):
    """SIGTERM is exit 2 with a message (not a silent 143), and nothing is published."""
    base, snap, _, _ = world
    out = tmp_path / "out"
    code, stdout, stderr = interrupt_cli(signal.SIGTERM, "--checkpoint", str(DEMO_CHECKPOINT), "--dataset",
                                         str(snap), "--output_dir", str(out), "--nobaseline_cache",
                                         env={"GATE_CACHE_DIR": str(base / "cache")})
    assert code == EXIT_ERROR, (code, stdout, stderr)
    assert "error: interrupted (SIGTERM)" in stderr and "Traceback" not in stderr, stderr
    assert "recommendation:" not in stdout
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


def _under_a_file(base, snap, tmp):
    (tmp / "file.txt").write_text("x")
    return ["--output_dir", str(tmp / "file.txt" / "report")], {}, "Not a directory"


def _under_proc(base, snap, tmp):
    return ["--output_dir", "/proc/gate-report"], {}, "cannot be created or written"


def _dotdot(base, snap, tmp):
    (tmp / "dir").mkdir()
    return ["--output_dir", str(tmp / "dir" / "..")], {}, "must name a folder"


def _inside_the_snapshot(base, snap, tmp):
    (tmp / "alias").symlink_to(snap)
    return ["--output_dir", str(tmp / "alias" / "test" / "report")], {}, "is inside the input"


def _default_name_too_long(base, snap, tmp):
    checkpoint = tmp / ("c" * 250 + ".pt")
    shutil.copyfile(DEMO_CHECKPOINT, checkpoint)
    return (["--checkpoint", str(checkpoint)], {"BUILD_WORKSPACE_DIRECTORY": str(tmp)},
            f"the folder name is {len(checkpoint.stem + '-tiny-v1')} bytes")


@pytest.mark.parametrize("case", [_under_a_file, _under_proc, _dotdot, _inside_the_snapshot, _default_name_too_long],
                         ids=lambda case: case.__name__.strip("_"))
def test_an_unusable_destination_fails_before_any_model_runs(world, tmp_path, case):
    """An unusable destination is refused before any model runs, cleanly (never after the evaluation with a
    traceback, never by writing into the dataset)."""
    base, snap, _, _ = world
    flags, env, problem = case(base, snap, tmp_path)
    if "--checkpoint" not in flags:
        flags = ["--checkpoint", str(DEMO_CHECKPOINT), *flags]
    before = sorted(snap.rglob("*"))
    proc = run_cli(*flags, "--dataset", str(snap), env={"GATE_CACHE_DIR": str(base / "cache"), **env}, timeout=300)
    assert proc.returncode == EXIT_ERROR, (proc.stdout, proc.stderr)
    assert problem in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "[gate]" not in proc.stderr  # no progress line: nothing was loaded into a model
    assert sorted(snap.rglob("*")) == before
    assert pathlib.Path("/proc/gate-report").exists() is False


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
