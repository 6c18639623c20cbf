"""Nothing the gate reads can hurt it, its own earlier outputs included (issue 16).

A report folder's manifest decides what gets deleted and a metrics.json decides what the trend report says,
so both are untrusted input once published; so are FIFOs where files are expected, database URLs and the
environment. Each test here pins one class of input: refused with exit 2 (GateInputError) and nothing
outside the folder touched, never a hang, a traceback or a secret on screen.
"""

import contextlib
import hashlib
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile
import threading

# Hypothesis keeps caches in ./.hypothesis: keep them out of the checkout (and Bazel's read-only runfiles).
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(os.environ.get("TEST_TMPDIR") or tempfile.gettempdir(), "pottery-gate-hypothesis"))

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from croprun_export import database
from croprun_export.media import Media
from eval import runtime
from eval.errors import GateInputError
from eval.inputs.criteria import load_criteria
from eval.inputs.snapshot import load_snapshot
from eval.report import artifacts, outputs
from eval.scoring import scores
from tests.support import (COMPARE_CLI, DEMO_REPORT, INCUMBENT_REPORT, REPO, VALID_CRITERIA,
                           scratch_dir, write_snapshot)
from trend.runs import load_run

EXPORT_CLI = REPO / "tools" / "export_snapshot.py"
V1_DOCUMENTS = sorted((REPO / "tests" / "data").glob("metrics-v1-*.json"))


def _tool(cli, *args, env=None):
    return subprocess.run([sys.executable, str(cli), *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, check=False)


def _tree(folder):
    """{relative path: (kind, bytes)} of everything under `folder`, symlinks not followed."""
    found = {}
    for path in sorted(pathlib.Path(folder).rglob("*")):
        kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
        found[path.relative_to(folder).as_posix()] = (kind, path.read_bytes() if kind == "file" else None)
    return found


def _report(folder, run_key="k1"):
    outputs.check_destination(folder, run_key, False).publish(
        {"metrics.json": b"{}\n", "report.md": b"# r\n", "gallery/a.png": b"png", "timings.json": b"{}"})


def _rewrite_manifest(folder, files):
    path = folder / outputs.MANIFEST
    document = json.loads(path.read_text())
    document["files"] = files
    path.write_text(json.dumps(document))


# --- 1. The manifest is untrusted: only plain names inside the folder, present, with their digests ----------

@pytest.mark.parametrize("entry", ["/ABS", "../victim.txt", "gallery/../../victim.txt", "./report.md", "a//b",
                                   "REVIEW.md", "manifest.json", "nul\x00name", "back\\slash", "line\nbreak"])
def test_a_manifest_entry_the_gate_never_writes_is_refused_and_nothing_is_deleted(tmp_path, entry):
    """Regression: "/abs/victim.txt": null, "../victim.txt": null or "REVIEW.md": null in a manifest made the
    next run delete that file, outside the folder or a reviewer's, with exit 0."""
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    victim.write_text("keep me")
    _report(out)
    if entry == "REVIEW.md":
        (out / "REVIEW.md").write_text("reviewer's notes")
    files = json.loads((out / outputs.MANIFEST).read_text())["files"]
    _rewrite_manifest(out, {**files, entry.replace("/ABS", str(victim)): None})
    before = _tree(tmp_path)
    for overwrite in (False, True):
        with pytest.raises(GateInputError, match="manifest.json: entry") as caught:
            outputs.check_destination(out, "k1", overwrite).publish({"report.md": b"new"})
        assert caught.value.where.startswith(str(out))
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("files, problem", [
    ({"report.md": "0" * 64}, "modified since the gate wrote it"),
    ({"report.md": None}, "has no digest"),
    ({"report.md": "XYZ"}, "not 64 lowercase hex"),
    ({"missing.md": hashlib.sha256(b"").hexdigest()}, "listed in manifest.json but missing"),
])
def test_a_wrong_or_missing_digest_is_refused(tmp_path, files, problem):
    out = tmp_path / "out"
    _report(out)
    real = json.loads((out / outputs.MANIFEST).read_text())["files"]
    _rewrite_manifest(out, {**real, **files})
    before = _tree(tmp_path)
    with pytest.raises(GateInputError, match=problem):
        outputs.check_destination(out, "k1", True)
    assert _tree(tmp_path) == before


_NAMES = st.one_of(
    st.sampled_from(["report.md", "metrics.json", "gallery/a.png", "timings.json", "REVIEW.md", "manifest.json",
                     "../outside/victim.txt", "inside-link/victim.txt", "gallery", ".", "", "/"]),
    st.builds(lambda name: "{OUTSIDE}/" + name, st.sampled_from(["victim.txt", "sub/deep.txt"])),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.lists(st.sampled_from(["..", ".", "", "gallery", "é", "a\x00b", "ß\u202e"]), min_size=1, max_size=4)
    .map("/".join))
_DIGESTS = st.one_of(st.none(), st.sampled_from(["0" * 64, "F" * 64, "", 3, [], {}]), st.just("MATCH"))


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.dictionaries(_NAMES, _DIGESTS, min_size=1, max_size=4), link=st.booleans(),
       overwrite=st.booleans())
def test_no_manifest_makes_the_gate_touch_anything_outside_its_folder(entries, link, overwrite):
    """Arbitrary manifests (absolute, '..', symlinked, unicode, missing, extra, wrong digests): the next
    publish either refuses (GateInputError) or replaces the folder; nothing outside it ever changes."""
    root = scratch_dir()
    outside, out = root / "outside", root / "out"
    (outside / "sub").mkdir(parents=True)
    (outside / "victim.txt").write_text("keep")
    (outside / "sub" / "deep.txt").write_text("keep too")
    _report(out)
    if link:
        (out / "inside-link").symlink_to(outside, target_is_directory=True)
    files = json.loads((out / outputs.MANIFEST).read_text())["files"]  # the gate's own entries, then the drawn ones
    for name, digest in entries.items():
        name = name.replace("{OUTSIDE}", str(outside))
        target = out / name if "\x00" not in name else None
        files[name] = (hashlib.sha256(target.read_bytes()).hexdigest()
                       if digest == "MATCH" and target is not None and target.is_file() else
                       None if digest == "MATCH" else digest)
    _rewrite_manifest(out, files)
    before = _tree(outside)
    with contextlib.suppress(GateInputError):
        outputs.check_destination(out, "k1", overwrite).publish({"report.md": b"new"})
    assert _tree(outside) == before
    shutil.rmtree(root)


def test_a_trend_folder_manifest_cannot_delete_outside_it_either(tmp_path):
    """Regression: the same manifest edit on a trend report folder made compare_runs delete the victim."""
    out, victim = tmp_path / "trend", tmp_path / "victim.txt"
    victim.write_text("keep me")
    assert _tool(COMPARE_CLI, "--output_dir", out, DEMO_REPORT).returncode == 0
    files = json.loads((out / outputs.MANIFEST).read_text())["files"]
    _rewrite_manifest(out, {**files, str(victim): None, "../victim.txt": None})
    done = _tool(COMPARE_CLI, "--output_dir", out, DEMO_REPORT)
    assert done.returncode == 2 and "manifest.json: entry" in done.stderr, done.stderr
    assert victim.read_text() == "keep me"


# --- 6. Published folders follow the umask --------------------------------------------------------------------

@pytest.mark.parametrize("umask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_a_published_folder_follows_the_umask(tmp_path, umask, folder_mode, file_mode):
    """Regression: mkdtemp made every report folder 0700, unreadable to a reviewer in the same group."""
    previous = os.umask(umask)
    try:
        _report(tmp_path / "out")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == folder_mode
    assert stat.S_IMODE((tmp_path / "out" / "gallery").stat().st_mode) == folder_mode
    assert stat.S_IMODE((tmp_path / "out" / "report.md").stat().st_mode) == file_mode


# --- 2. One loader: digests, schema, a decision that follows from the criteria ------------------------------

def _published_copy(source, tmp_path, edit=None, keep_manifest=True):
    folder = tmp_path / source.name
    shutil.copytree(source, folder)
    if edit:
        document = json.loads((folder / "metrics.json").read_text())
        edit(document)
        (folder / "metrics.json").write_text(json.dumps(document))
    if not keep_manifest:
        (folder / outputs.MANIFEST).unlink()
    return folder


def _say_go(document):
    document["recommendation"] = "go"


def test_every_metrics_json_the_gate_has_written_loads():
    for spec in (DEMO_REPORT, INCUMBENT_REPORT, DEMO_REPORT / "metrics.json", *V1_DOCUMENTS):
        report = artifacts.load_report(spec)
        assert report.metrics["schema"] in artifacts.SCHEMAS
    assert {artifacts.load_report(p).metrics["schema"] for p in V1_DOCUMENTS} == {"pottery-gate-metrics/v1"}


def test_a_hand_edited_go_is_refused_by_its_digest_and_by_its_criteria(tmp_path):
    """Regression: recommendation: go in a no-go report (every criterion still failing) showed as go in the
    trend report."""
    folder = _published_copy(DEMO_REPORT, tmp_path, _say_go)
    with pytest.raises(GateInputError, match="differs from the sha256 in manifest.json"):
        load_run(folder)
    with pytest.raises(GateInputError, match="differs from the sha256"):
        load_run(folder / "metrics.json")  # alone, but beside its manifest
    bare = _published_copy(DEMO_REPORT, tmp_path / "bare", _say_go, keep_manifest=False)
    with pytest.raises(GateInputError, match="does not follow from the criteria"):
        load_run(bare / "metrics.json")
    with pytest.raises(GateInputError, match="has no manifest.json"):
        load_run(bare)
    out = tmp_path / "trend"
    done = _tool(COMPARE_CLI, "--output_dir", out, DEMO_REPORT, folder)
    assert done.returncode == 2 and "differs from the sha256" in done.stderr and not out.exists()


@pytest.mark.parametrize("text, problem", [
    ('"mask_iou": NaN', "NaN is not a number JSON allows"),
    ('"mask_iou": Infinity', "Infinity is not a number JSON allows"),
    ('"mask_iou": "0.9"', "is not of type 'number'"),
])
def test_non_numbers_in_metrics_are_refused(tmp_path, text, problem):
    """Regression: NaN per-image IoUs were accepted and printed as `nan` in the trend report."""
    data = (DEMO_REPORT / "metrics.json").read_text()
    first = data.index('"mask_iou": ', data.index('"per_image"'))
    end = data.index(",", first)
    (tmp_path / "metrics.json").write_text(data[:first] + text + data[end:])
    with pytest.raises(GateInputError, match=problem):
        artifacts.load_report(tmp_path / "metrics.json")


def test_the_deciding_criterion_must_be_one_of_the_results_with_its_status():
    document = json.loads((DEMO_REPORT / "metrics.json").read_text())
    document["deciding_criterion"] = dict(document["deciding_criterion"], id="made_up")
    with pytest.raises(GateInputError, match="is not exactly one of the criteria"):
        artifacts.check_metrics(document, "m")


# --- 3. FIFOs and other non-regular files are refused, never waited on ------------------------------------

def _refused_without_hanging(call, fifo, problem="not a regular file (a FIFO)"):
    """Run `call` in a thread; if it blocks on `fifo` for 20 s (a regression), open the FIFO's writing end so
    it returns, and fail."""
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except Exception as err:  # reported below
            outcome["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(20)
    if worker.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(20)
        pytest.fail(f"blocked on the FIFO {fifo}")
    assert isinstance(outcome.get("error"), GateInputError), outcome
    assert problem in str(outcome["error"]) and str(fifo) in outcome["error"].where


@pytest.mark.parametrize("relative", ["snapshot.yaml", "flagged/croprun.jsonl", "test/masks/t0.png",
                                      "flagged/images/cr-1.png"])
def test_a_fifo_in_a_snapshot_is_refused(tmp_path, relative):
    """Regression: flagged/croprun.jsonl or snapshot.yaml replaced by a FIFO blocked the gate forever."""
    root = write_snapshot(tmp_path / "snap")
    (root / relative).unlink()
    os.mkfifo(root / relative)
    _refused_without_hanging(lambda: load_snapshot(root), root / relative)


def test_a_fifo_for_criteria_media_or_metrics_is_refused(tmp_path):
    fifo = tmp_path / "criteria.yaml"
    os.mkfifo(fifo)
    _refused_without_hanging(lambda: load_criteria(fifo), fifo)
    media = tmp_path / "media"
    media.mkdir()
    os.mkfifo(media / "photo.png")  # regression: blocked export_snapshot
    _refused_without_hanging(lambda: Media(str(media)).read("photo.png"), media / "photo.png")
    os.mkfifo(tmp_path / "crops.sqlite")
    _refused_without_hanging(lambda: database.read_rows(f"sqlite:///{tmp_path}/crops.sqlite", None, None),
                             f"sqlite:///{tmp_path}/crops.sqlite")
    os.mkfifo(tmp_path / "metrics.json")
    _refused_without_hanging(lambda: load_run(tmp_path / "metrics.json"), tmp_path / "metrics.json")
    assert load_criteria(_text_file(tmp_path / "ok.yaml", VALID_CRITERIA))  # a regular file still loads


def _text_file(path, text):
    path.write_text(text)
    return path


# --- 4. No part of a database password is ever printed ---------------------------------------------------

_EXPORT_FLAGS = ("--media_root", REPO, "--test_split", REPO / "README.md", "--as_of", "2026-01-01T00:00:00Z",
                 "--version", "v1")


@pytest.mark.parametrize("url, problem", [
    ("postgresql://reader:Tr0ub4dor@SECRETTAIL@127.0.0.1:1/crops", "percent-encode '@'"),
    ("postgresql://reader:p@ss:SECRETTAIL@127.0.0.1:1/crops", "percent-encode '@'"),
])
def test_an_unparsable_database_url_is_exit_2_without_the_password(tmp_path, url, problem):
    """Regression: an unencoded '@' printed 'reader:***@SECRETTAIL@...'; with a ':' after it, a ValueError
    traceback, exit 1, the password fragment printed twice."""
    done = _tool(EXPORT_CLI, "--database_url", url, "--output", tmp_path / "out", *_EXPORT_FLAGS)
    assert done.returncode == 2, done.stderr
    assert problem in done.stderr and "Traceback" not in done.stderr
    assert "SECRETTAIL" not in done.stdout + done.stderr and "Tr0ub4dor" not in done.stderr


_SPECIAL = st.text(st.sampled_from("@:/#?%xZ9 "), max_size=6)


@settings(max_examples=150)
@given(before=_SPECIAL, after=_SPECIAL, user=st.sampled_from(["reader", "", "re@der"]))
def test_no_url_shape_shows_its_password(before, after, user):
    secret = "S3CRETvalue"
    url = f"postgresql://{user}:{before}{secret}{after}@127.0.0.1:1/crops"
    try:
        database.read_rows(url, None, None)
    except GateInputError as err:
        shown = str(err)
    else:
        pytest.fail("a database on port 1 answered")
    assert secret not in shown and "S3CRET" not in shown
    assert secret not in database.redact(f"failed for {url} ({before}{secret}{after})", url)


# --- 5. Environment variables -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, value, problem", [
    ("GATE_CACHE_DIR", "{FILE}", "is not a folder"),
    ("GATE_CACHE_DIR", "", "is set but empty"),
    ("U2NET_HOME", "relative/models", "is not an absolute path"),
    ("WANDB_DIR", "{FILE}/below", "is not a folder"),
    ("XDG_CACHE_HOME", "{FILE}", "is not a folder"),
    ("GATE_CALLER_DIR", "/no/such/folder", "is not an existing folder"),
])
def test_a_bad_environment_variable_is_exit_2_naming_it(tmp_path, name, value, problem):
    """Regression: GATE_CACHE_DIR naming a regular file ended in a NotADirectoryError traceback."""
    (tmp_path / "file").write_text("x")
    value = value.replace("{FILE}", str(tmp_path / "file"))
    with pytest.raises(GateInputError, match=problem) as caught:
        runtime.check_environment({name: value})
    assert caught.value.where == f"${name}"
    done = _tool(COMPARE_CLI, "--output_dir", tmp_path / "trend", DEMO_REPORT, env={name: value})
    assert done.returncode == 2 and f"${name}: " in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_an_unwritable_cache_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # root can write anywhere: pretend otherwise
    with pytest.raises(GateInputError, match="is not writable"):
        runtime.check_environment({"GATE_CACHE_DIR": str(tmp_path)})


# --- 7. Decisions on full precision -------------------------------------------------------------------------

def test_a_value_just_below_the_threshold_does_not_meet_it():
    """Regression: per-image IoUs were rounded to 6 decimals before comparison, so 0.99999975 met 1.0
    (the decision's means: tests/test_decision.py)."""
    truth = np.ones((2000, 2000), dtype=bool)
    prediction = truth.copy()
    prediction[0, 0] = False  # IoU 0.99999975: rounds to 1.0
    assert not scores.image_score("candidate", "test", "x", (), truth, prediction, 1.0).passed
    assert scores.within(0.8499996 - 0.85) is False and scores.within((0.1 + 0.2) - 0.3) is True


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
