"""Publishing (#8 items 8, 9, 14): the gate replaces only what it wrote, two runs never silently replace
each other, and an unusable destination is refused before any work.

Real files, real folders, real concurrent processes; no models (eval.report.outputs is pure file I/O).
"""

import json
import multiprocessing
import os
import pathlib
import sys
import tempfile

# Hypothesis keeps caches in ./.hypothesis: keep them out of the checkout (and Bazel's read-only runfiles).
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(os.environ.get("TEST_TMPDIR") or tempfile.gettempdir(), "pottery-gate-hypothesis"))

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eval.errors import GateInputError
from eval.report import outputs
from tests.support import files_of, scratch_dir


def report_files(tag):
    return {"metrics.json": json.dumps({"provenance": {"run_key": tag}}).encode(), "per_image.csv": b"a\n",
            "report.md": f"# report {tag}\n".encode(), "gallery/x.png": b"png"}


def publish(folder, run_key, overwrite=False):
    outputs.check_destination(folder, run_key, overwrite).publish(report_files(run_key))


def leftovers(folder):
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


# --- Item 8: replace only what the gate wrote ---------------------------------------------------------------------

def test_published_folder_holds_a_manifest_of_what_the_gate_wrote(tmp_path):
    publish(tmp_path / "out", "k1")
    manifest = json.loads((tmp_path / "out" / outputs.MANIFEST).read_text())
    assert manifest["run_key"] == "k1"
    assert sorted(manifest["files"]) == sorted(report_files("k1"))
    assert sorted(files_of(tmp_path / "out")) == sorted([*report_files("k1"), outputs.MANIFEST])


@pytest.mark.parametrize("same_run", [True, False], ids=["same-inputs-rerun", "overwrite-another-run"])
@pytest.mark.parametrize("foreign", ["REVIEW.md", "gallery/annotated.png", "drafts/notes.txt", "drafts/"])
def test_a_file_the_gate_did_not_write_is_never_deleted(tmp_path, same_run, foreign):
    out = tmp_path / "out"
    publish(out, "k1")
    path = out / foreign
    if foreign.endswith("/"):
        path.mkdir()  # an empty folder of the reviewer's
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("a reviewer's work")
    before = files_of(out)
    for overwrite in (False, True):
        with pytest.raises(GateInputError, match="holds files the gate did not write"):
            publish(out, "k1" if same_run else "k2", overwrite=overwrite)
    assert files_of(out) == before and path.exists()


def test_an_edited_report_is_the_reviewers_now(tmp_path):
    out = tmp_path / "out"
    publish(out, "k1")
    (out / "report.md").write_text("# report k1\n\nApproved, see comments.\n")
    with pytest.raises(GateInputError, match=r"report.md \(modified since the gate wrote it\)"):
        publish(out, "k1", overwrite=True)
    assert "Approved" in (out / "report.md").read_text()


def test_a_symlink_in_the_folder_is_foreign(tmp_path):
    out = tmp_path / "out"
    publish(out, "k1")
    (tmp_path / "precious.txt").write_text("x")
    (out / "per_image.csv").unlink()
    (out / "per_image.csv").symlink_to(tmp_path / "precious.txt")
    with pytest.raises(GateInputError, match="per_image.csv"):
        publish(out, "k1")
    assert (tmp_path / "precious.txt").read_text() == "x"


def test_a_report_without_a_manifest_is_never_replaced(tmp_path):
    """Today's main replaced any folder whose metrics.json had a run key, with everything in it."""
    out = tmp_path / "legacy"
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps({"provenance": {"run_key": "k0"}}))
    (out / "REVIEW.md").write_text("a reviewer's work")
    with pytest.raises(GateInputError, match="holds no gate report"):
        publish(out, "k1", overwrite=True)
    assert (out / "REVIEW.md").exists()


def test_what_the_gate_wrote_is_replaced(tmp_path):
    out = tmp_path / "out"
    publish(out, "k1")
    publish(out, "k2", overwrite=True)
    assert files_of(out)["report.md"] == b"# report k2\n"
    assert json.loads((out / outputs.MANIFEST).read_text())["run_key"] == "k2"
    assert leftovers(out) == []


def test_a_file_added_while_the_run_evaluates_is_kept(tmp_path):
    out = tmp_path / "out"
    publish(out, "k1")
    destination = outputs.check_destination(out, "k1", overwrite=False)
    (out / "REVIEW.md").write_text("written during the evaluation")
    with pytest.raises(GateInputError, match="holds files the gate did not write"):
        destination.publish(report_files("k1"))
    assert (out / "REVIEW.md").exists() and leftovers(out) == []


@settings(max_examples=40)
@given(st.lists(st.from_regex(r"[A-Za-z0-9_ .-]{1,12}(/[A-Za-z0-9_ .-]{1,12}){0,2}", fullmatch=True)
                .filter(lambda name: not any(part in (".", "..") for part in name.split("/"))),
                min_size=1, max_size=4))
def test_any_foreign_file_blocks_replacement_and_survives(names):
    out = scratch_dir() / "out"
    publish(out, "k1")
    added = []
    for name in names:
        path = out / name
        if any(parent.is_file() for parent in path.parents) or path.is_dir():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or name in report_files("k1") or name == outputs.MANIFEST:
            path.write_text("changed")  # overwriting a gate file is a modification
        else:
            path.write_text("foreign")
        added.append(name)
    before = files_of(out)
    if added:
        with pytest.raises(GateInputError, match="holds files the gate did not write"):
            publish(out, "k2", overwrite=True)
    assert files_of(out) == before


def test_a_machine_dependent_file_is_listed_but_not_pinned(tmp_path):
    """timings.json differs on every machine: the manifest (and so the golden report) must not."""
    manifests = []
    for timing in (b'{"seconds": 1}', b'{"seconds": 2}'):
        out = tmp_path / f"out-{len(manifests)}"
        outputs.check_destination(out, "k1", False).publish({**report_files("k1"), "timings.json": timing})
        manifests.append((out / outputs.MANIFEST).read_bytes())
    assert manifests[0] == manifests[1]
    assert json.loads(manifests[0])["files"]["timings.json"] is None
    (out / "timings.json").write_bytes(b'{"seconds": 3}')
    outputs.check_destination(out, "k1", False).publish(report_files("k1"))  # still the gate's: replaced
    assert not (out / "timings.json").exists()


# --- Item 9: two runs, one folder ---------------------------------------------------------------------------------

def test_the_later_of_two_runs_refuses_instead_of_replacing(tmp_path):
    out = tmp_path / "out"
    first = outputs.check_destination(out, "k1", overwrite=False)
    second = outputs.check_destination(out, "k2", overwrite=True)  # both checked before either published
    first.publish(report_files("k1"))
    with pytest.raises(GateInputError, match="another run published a report there while this one was evaluating"):
        second.publish(report_files("k2"))
    assert files_of(out)["report.md"] == b"# report k1\n" and leftovers(out) == []


def _racer(folder, run_key, barrier, results):
    destination = outputs.check_destination(folder, run_key, overwrite=True)
    barrier.wait()
    try:
        destination.publish(report_files(run_key))
        results.put((run_key, "published"))
    except GateInputError as err:
        results.put((run_key, str(err)))


@pytest.mark.parametrize("start", ["absent", "a previous report"])
def test_concurrent_publishes_have_exactly_one_winner(tmp_path, start):
    context = multiprocessing.get_context("fork")
    for attempt in range(3):
        out = tmp_path / f"out{attempt}"
        if start != "absent":
            publish(out, "old")
        barrier, results = context.Barrier(4), context.Queue()
        racers = [context.Process(target=_racer, args=(out, f"run{k}", barrier, results)) for k in range(4)]
        for racer in racers:
            racer.start()
        outcomes = dict(results.get(timeout=120) for _ in racers)
        for racer in racers:
            racer.join(timeout=60)
        winners = [key for key, outcome in outcomes.items() if outcome == "published"]
        assert len(winners) == 1, outcomes
        for key, outcome in outcomes.items():
            if key not in winners:
                assert "another run published a report there" in outcome, outcome
        assert files_of(out)["report.md"] == f"# report {winners[0]}\n".encode()
        assert json.loads((out / outputs.MANIFEST).read_text())["run_key"] == winners[0]
        assert leftovers(out) == []


# --- Item 14: a destination that cannot work is refused before any work -----------------------------------------

def _under_a_file(tmp):
    (tmp / "file.txt").write_text("x")
    return tmp / "file.txt" / "report", "Not a directory"


def _under_proc(tmp):
    return pathlib.Path("/proc/gate-report"), "cannot be created or written"


def _dotdot(tmp):
    (tmp / "dir").mkdir()
    return tmp / "dir" / "..", "must name a folder"


def _name_too_long(tmp):
    return tmp / ("pottery-seg-" + "x" * 250), "the folder name is 262 bytes"


def _deep_under_a_file(tmp):
    (tmp / "file.txt").write_text("x")
    return tmp / "file.txt" / "a" / "b", "Not a directory"


def _a_symlink(tmp):
    (tmp / "real").mkdir()
    (tmp / "link").symlink_to(tmp / "real")
    return tmp / "link", "symbolic link"


@pytest.mark.parametrize("case", [_under_a_file, _under_proc, _dotdot, _name_too_long, _deep_under_a_file,
                                  _a_symlink], ids=lambda case: case.__name__.strip("_"))
def test_unusable_destination_is_refused_up_front_and_leaves_nothing(tmp_path, case):
    folder, problem = case(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(GateInputError, match=problem) as err:
        outputs.check_destination(folder, "k1", overwrite=True)
    assert str(folder) in str(err.value)
    assert sorted(tmp_path.rglob("*")) == before  # the probe is removed, parents it created too


def test_missing_parents_are_probed_and_removed(tmp_path):
    destination = outputs.check_destination(tmp_path / "a" / "b" / "out", "k1", overwrite=False)
    assert list(tmp_path.iterdir()) == []
    destination.publish(report_files("k1"))
    assert (tmp_path / "a" / "b" / "out" / "report.md").exists()


def test_a_destination_inside_an_input_is_refused(tmp_path):
    snapshot_dir = tmp_path / "snap"
    (snapshot_dir / "test").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(snapshot_dir)
    for folder in (snapshot_dir / "out", snapshot_dir / "test" / "out", snapshot_dir, tmp_path / "alias" / "out"):
        with pytest.raises(GateInputError, match="is inside the input"):
            outputs.check_destination(folder, "k1", overwrite=True, inputs=[tmp_path / "alias"])
    outputs.check_destination(tmp_path / "snap-report", "k1", overwrite=False, inputs=[snapshot_dir])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
