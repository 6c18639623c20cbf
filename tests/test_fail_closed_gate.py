"""Fail-closed matrix (#3), end to end through the gate binary: exit status, messages, what is (not) written.

Bad inputs exit 2 with one clear `error:` line and no traceback; an image that cannot be evaluated is
listed in the report and forces no-go (exit 2); too little evidence is a no-go; another run's report is
not replaced without --overwrite, and a non-report folder never; an interrupted run leaves nothing that
looks finished; user-written notes and ids cannot inject Markdown or HTML; metrics do not depend on
thread settings. Each CLI run loads torch and rembg (~15 s), so runs are few and shared by module fixtures;
refusals that happen while the inputs load are tested on prepare_run itself, the CLI runs a representative few.
"""

import json
import pathlib
import re
import shutil
import signal
import sys

import pytest
from PIL import Image

from eval.decision.decide import INSUFFICIENT, decide
from eval.errors import GateInputError
from eval.inputs.criteria import Criterion, SuccessCriteria
from eval.options import GateOptions, flag_name
from eval.pipeline import prepare_run
from eval.report import outputs
from eval.report.render import markdown_text
from eval.scoring.scores import aggregate, image_score
from tests.support import (BASELINE_CONFIG, CRITERIA, DEMO_CHECKPOINT, binary, crop_run, files_of, interrupt_cli,
                           last_line, pot_photo, run_cli, untrained_checkpoint, write_snapshot)

EXIT_GO, EXIT_NO_GO, EXIT_ERROR = 0, 1, 2


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    """A baseline-mask cache of this module's own, so runs never see another test's (or user's) cache."""
    return {"GATE_CACHE_DIR": str(tmp_path_factory.mktemp("gate-cache"))}


@pytest.fixture(scope="module")
def checkpoint():
    return untrained_checkpoint()


def gate(cache_env, *flags, env=None):
    return run_cli(*flags, "--quiet", env={**cache_env, **(env or {})})


def assert_clean_error(proc, *fragments):
    """Exit 2, no traceback, no recommendation; stderr ends with `error: <where>: <problem>`."""
    assert proc.returncode == EXIT_ERROR, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "recommendation:" not in proc.stdout, proc.stdout
    assert "\nerror: " in f"\n{proc.stderr}", proc.stderr
    message = f"\n{proc.stderr}".rsplit("\nerror: ", 1)[1]  # a library's wording may span lines
    for fragment in fragments:
        assert str(fragment) in message, message


def leftovers(parent, name):
    """Hidden staging or retired folders publish() may have left next to `name`."""
    return sorted(p.name for p in pathlib.Path(parent).iterdir() if p.name.startswith(f".{name}."))


# --- Bad inputs: exit 2, a clear message, nothing written --------------------------------------------------------
# Each case returns ({GateOptions field: value}, env, fragments the message holds). Refusals that happen while
# the inputs are loaded are tested on prepare_run (no model runs); the CLI runs one of them and the refusals
# that come while the backends are built.


def _missing_checkpoint(tmp, ckpt, snap):
    return {"checkpoint": tmp / "best.pt"}, {}, [tmp / "best.pt", "checkpoint file not found"]


def _pin_mismatch(tmp, ckpt, snap):
    return {"checkpoint_sha256": "0" * 64}, {}, [ckpt, "differs from the pinned"]


def _empty_pin(tmp, ckpt, snap):
    return {"checkpoint_sha256": ""}, {}, ["--checkpoint_sha256", "not a 64-hex-digit"]


def _malformed_uri(tmp, ckpt, snap):
    return {"checkpoint": "modal://models/../best.pt"}, {}, ["modal://models/../best.pt", "may not contain '..'"]


def _truncated_checkpoint(tmp, ckpt, snap):
    data = pathlib.Path(ckpt).read_bytes()
    (tmp / "truncated.pt").write_bytes(data[:len(data) // 2])
    return {"checkpoint": tmp / "truncated.pt"}, {}, [tmp / "truncated.pt", "cannot load as an ultralytics checkpoint"]


def _missing_dataset(tmp, ckpt, snap):
    return {"dataset": tmp / "no-snapshot"}, {}, [tmp / "no-snapshot", "dataset snapshot directory not found"]


def _malformed_jsonl(tmp, ckpt, snap):
    jsonl = snap / "flagged" / "croprun.jsonl"
    jsonl.write_text(jsonl.read_text() + '{"id": "cr-9", "image": \n')
    return {}, {}, [f"{jsonl}:4", "malformed JSON"]


def _escaping_path(tmp, ckpt, snap):
    jsonl = snap / "flagged" / "croprun.jsonl"
    jsonl.write_text(jsonl.read_text() + json.dumps(crop_run("cr-9", image="../../../etc/passwd")) + "\n")
    return {}, {}, [f"{jsonl}:4", "escapes the snapshot root"]


def _criteria_syntax(tmp, ckpt, snap):
    path = tmp / "criteria.yaml"
    path.write_text(CRITERIA.read_text().replace("min_images: 3", "min_images: [3"))
    return {"criteria": path}, {}, [path, "YAML error at line", "column"]


def _criteria_typo(tmp, ckpt, snap):
    path = tmp / "criteria.yaml"
    path.write_text(CRITERIA.read_text().replace("threshold: 0.60", "treshold: 0.60"))
    return {"criteria": path}, {}, [path, "did you mean 'threshold'?"]


def _unknown_rembg_model(tmp, ckpt, snap):
    path = tmp / "rembg.yaml"
    path.write_text(BASELINE_CONFIG.read_text().replace("model: u2net", "model: u2-net"))
    return {"baseline_config": path}, {}, [path, "unknown rembg model 'u2-net'"]


def _weights_missing(tmp, ckpt, snap):
    (tmp / "empty-u2net-home").mkdir()
    return {}, {"U2NET_HOME": str(tmp / "empty-u2net-home")}, ["not installed", "scripts/bootstrap.sh"]


def _case_options(case, tmp_path, checkpoint):
    snap = write_snapshot(tmp_path / "snap")
    fields, env, expected = case(tmp_path, checkpoint, snap)
    return {"checkpoint": checkpoint, "dataset": snap, "criteria": CRITERIA, "baseline_config": BASELINE_CONFIG,
            "output_dir": tmp_path / "out", **fields}, env, expected


@pytest.mark.parametrize("case", [
    _missing_checkpoint, _pin_mismatch, _empty_pin, _malformed_uri, _missing_dataset, _malformed_jsonl,
    _escaping_path, _criteria_syntax, _criteria_typo,
], ids=lambda f: f.__name__.strip("_"))
def test_bad_input_is_refused_while_loading_with_a_clear_message(tmp_path, checkpoint, case):
    fields, _, expected = _case_options(case, tmp_path, checkpoint)
    with pytest.raises(GateInputError) as refused:
        prepare_run(GateOptions(**{k: v if isinstance(v, bool) else str(v) for k, v in fields.items()}))
    for fragment in expected:
        assert str(fragment) in str(refused.value), str(refused.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", [_missing_checkpoint, _truncated_checkpoint, _unknown_rembg_model, _weights_missing],
                         ids=lambda f: f.__name__.strip("_"))
def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(tmp_path, cache_env, checkpoint, case):
    fields, env, expected = _case_options(case, tmp_path, checkpoint)
    proc = gate(cache_env, *(f"{flag_name(k)}={v}" for k, v in fields.items()), env=env)
    assert_clean_error(proc, *expected)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path, "out") == []


# --- Partial failure, with user-written text that tries to inject Markdown/HTML ------------------------------------

EVIL_ID = "x<script>alert(1)</script> *b* _i_ [l](http://e.example) |p| `c` ~s~\n# H"
EVIL_NOTES = "glossy <iframe src=//e.example></iframe> **pwn** [click](javascript:alert(1))\n## injected"
BROKEN_ID = "<img src=x onerror=alert(1)>_broken"


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory, cache_env, checkpoint):
    """One run over a snapshot where one flagged image is truncated and two rows carry hostile text."""
    base = tmp_path_factory.mktemp("partial")
    rows = [crop_run("cr-1", "glossy glaze reflection"), crop_run("cr-2", "white on white"),
            crop_run("cr-3", "cast shadow kept"),
            crop_run(EVIL_ID, EVIL_NOTES, image="images/evil.png", mask="masks/evil.png"),
            crop_run(BROKEN_ID, "shadow", image="images/broken.png", mask="masks/broken.png")]
    snap = write_snapshot(base / "snap", n_test=3, rows=rows)
    for stem in ("evil", "broken"):
        photo, mask = pot_photo(shift=4)
        photo.save(snap / "flagged" / "images" / f"{stem}.png")
        mask.save(snap / "flagged" / "masks" / f"{stem}.png")
    broken = snap / "flagged" / "images" / "broken.png"
    broken.write_bytes(broken.read_bytes()[:200])
    out = base / "out"
    proc = gate(cache_env, "--checkpoint", str(checkpoint), "--dataset", str(snap), "--output_dir", str(out),
                "--gallery_size", "10")
    return proc, out, broken


def test_partial_failure_exits_2_but_still_writes_the_report(partial_run):
    proc, out, _ = partial_run
    assert proc.returncode == EXIT_ERROR, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "error: 1 image(s) could not be evaluated (listed in the report)" in proc.stderr
    assert "recommendation: no-go (deciding criterion: evaluation_complete:" in proc.stdout
    assert {"metrics.json", "per_image.csv", "report.md"} <= {p.name for p in out.iterdir()}


def test_report_records_the_checkpoint_digest(partial_run, checkpoint):
    import hashlib

    _, out, _ = partial_run
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert json.loads((out / "metrics.json").read_text())["provenance"]["checkpoint"]["sha256"] == digest
    assert f"sha256 `{digest}`" in (out / "report.md").read_text()


def test_partial_failure_lists_the_image_with_its_reason_and_is_no_go(partial_run):
    _, out, broken = partial_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recommendation"] == "no-go"
    assert metrics["deciding_criterion"]["id"] == "evaluation_complete"
    assert metrics["deciding_criterion"]["status"] == "fail"
    [missing] = metrics["not_evaluated"]
    assert (missing["corpus"], missing["image_id"]) == ("flagged", BROKEN_ID)
    assert str(broken) in missing["reason"] and "cannot decode image" in missing["reason"]
    scored = {(s["corpus"], s["image_id"], s["source_backend"]) for s in metrics["per_image"]}
    assert len(scored) == 2 * 7  # every other image (3 test + 4 flagged) by both backends
    assert not any(image_id == BROKEN_ID for _, image_id, _ in scored)

    report = (out / "report.md").read_text()
    section = report.split("## Images not evaluated", 1)[1].split("\n## ", 1)[0]
    [entry] = [line for line in section.splitlines() if line.startswith("- ")]
    assert entry.startswith(f"- flagged / {markdown_text(BROKEN_ID)}: ")
    assert "cannot decode image" in entry
    assert last_line(out / "report.md").startswith("recommendation: no-go (deciding criterion: evaluation_complete:")


def test_user_text_is_escaped_in_the_report_and_gallery_file_names(partial_run):
    _, out, _ = partial_run
    report = (out / "report.md").read_text()
    assert markdown_text(EVIL_ID) in report  # the hostile id is rendered (gallery caption), escaped
    for raw in ("<script>", "</script>", "<img", "<iframe", "[l](http", "[click](", "*b*", "`c`", "**pwn**"):
        assert raw not in report, raw
    assert "&lt;script&gt;" in report and "&lt;img src=x" in report
    assert not any(line.startswith(("# H", "## injected")) for line in report.splitlines())
    audit = report.split("## Failure-class mapping", 1)[1].split("\n## ", 1)[0]
    assert "**glossy**" in audit  # notes are printed only in the class audit, escaped, the match in bold
    assert "injected" not in report.replace(audit, "")
    gallery = sorted(p.name for p in (out / "gallery").iterdir())
    assert gallery and all(re.fullmatch(r"[A-Za-z0-9_.-]+", name) for name in gallery), gallery
    for name in re.findall(r"\]\(gallery/([^)]*)\)", report):
        assert name in gallery


# --- Ctrl-C and crashes: nothing half-written --------------------------------------------------------------------


def test_ctrl_c_during_evaluation_leaves_no_report(tmp_path, cache_env, checkpoint):
    snap = write_snapshot(tmp_path / "snap")
    out = tmp_path / "out"
    code, stdout, stderr = interrupt_cli(signal.SIGINT, "--checkpoint", str(checkpoint), "--dataset", str(snap),
                                         "--output_dir", str(out), env=cache_env)
    assert code not in (EXIT_GO, EXIT_NO_GO), (code, stdout, stderr)
    assert "recommendation:" not in stdout
    assert not out.exists()
    assert leftovers(tmp_path, "out") == []


def _report_files():
    return {"metrics.json": json.dumps({"provenance": {"run_key": "new"}}).encode(), "per_image.csv": b"a\n",
            "report.md": b"# report\n", "gallery/x.png": b"png"}


@pytest.mark.parametrize("interrupt, caught", [(KeyboardInterrupt(), KeyboardInterrupt),
                                               (OSError(28, "No space left on device"), OSError)],
                         ids=["ctrl-c", "disk-full"])
def test_publish_interrupted_mid_write_leaves_no_new_and_keeps_the_old_report(tmp_path, monkeypatch, interrupt,
                                                                              caught):
    out = tmp_path / "out"
    outputs.check_destination(out, "old", False).publish({"metrics.json": b'{"provenance": {"run_key": "old"}}',
                                                          "report.md": b"old\n"})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_write, calls = pathlib.Path.write_bytes, []

    def failing_write(self, data):
        calls.append(self.name)
        if len(calls) == 3:
            raise interrupt
        return real_write(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", failing_write)
    with pytest.raises(caught):
        outputs.check_destination(out, "new", True).publish(_report_files())
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert leftovers(tmp_path, "out") == []
    calls.clear()
    with pytest.raises(caught):
        outputs.check_destination(tmp_path / "fresh", "new", False).publish(_report_files())
    assert not (tmp_path / "fresh").exists() and leftovers(tmp_path, "fresh") == []


def test_destination_rules(tmp_path):
    """Refusals happen before any work, so a refused run costs nothing and deletes nothing."""
    outputs.check_destination(tmp_path / "new", "k1", overwrite=False)  # absent: fine
    (tmp_path / "empty").mkdir()
    outputs.check_destination(tmp_path / "empty", "k1", overwrite=False)  # empty: fine
    outputs.check_destination(tmp_path / "report", "new", False).publish(_report_files())
    outputs.check_destination(tmp_path / "report", "new", overwrite=False)  # the same run: fine
    with pytest.raises(GateInputError, match="holds the report of a different run"):
        outputs.check_destination(tmp_path / "report", "other", overwrite=False)
    outputs.check_destination(tmp_path / "report", "other", overwrite=True)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("years of work")
    for overwrite in (False, True):
        with pytest.raises(GateInputError, match="holds no gate report"):
            outputs.check_destination(tmp_path / "home", "k1", overwrite=overwrite)
    (tmp_path / "file").write_text("x")
    for overwrite in (False, True):
        with pytest.raises(GateInputError, match="exists and is not a directory"):
            outputs.check_destination(tmp_path / "file", "k1", overwrite=overwrite)


# --- Too little evidence, overwriting, thread settings (shared runs of the demo checkpoint) ------------------------

# Thresholds any candidate meets, so the only way to a no-go is missing evidence: `shadow` has 1 image.
LENIENT_CRITERIA = """\
schema_version: 1
example_values: true
iou_pass_threshold: 0.5
min_images: {min_images}
failure_classes:
  - {{id: gloss, description: glossy, match: {{notes_any: [gloss, shiny]}}}}
  - {{id: shadow, description: cast shadow, match: {{notes_any: [shadow]}}}}
criteria:
  - {{id: flagged_pass_rate, kind: min_pass_rate, corpus: flagged, failure_class: all, threshold: 0.0}}
  - {{id: test_mean_iou, kind: min_mean_iou, corpus: test, failure_class: all, threshold: 0.0}}
  - {{id: per_class, kind: max_mean_iou_regression, corpus: flagged, failure_class: each, threshold: 1.0}}
"""


@pytest.fixture(scope="module")
def evidence(tmp_path_factory):
    base = tmp_path_factory.mktemp("evidence")
    rows = [crop_run("g1", "glossy glaze"), crop_run("g2", "shiny rim"), crop_run("g3", "gloss highlight"),
            crop_run("s1", "cast shadow kept")]
    snap = write_snapshot(base / "snap", n_test=3, rows=rows)
    for name, min_images in (("strict", 3), ("loose", 1)):
        (base / f"{name}.yaml").write_text(LENIENT_CRITERIA.format(min_images=min_images))
    return base, snap


@pytest.fixture(scope="module")
def evidence_cache(evidence):
    """A mask cache of the runs on `evidence` alone: it holds only masks those runs computed."""
    return {"GATE_CACHE_DIR": str(evidence[0] / "cache")}


@pytest.fixture(scope="module")
def thread_runs(evidence, evidence_cache):
    """The same evaluation under (torch threads, OMP_NUM_THREADS) = (1, 1) and (2, 2), every mask computed in
    each: the first run fills the module's empty mask cache, the second reads none of it.

    The demo checkpoint, not the untrained one: its masks have real edges (the untrained model predicts
    nothing at the default confidence), so thread-dependent arithmetic would show in the pixel counts.
    """
    base, snap = evidence
    runs = {}
    for torch_threads, omp, cache in ((1, 1, "--baseline_cache"), (2, 2, "--nobaseline_cache")):
        out = base / f"threads-{torch_threads}-omp-{omp}"
        proc = gate(evidence_cache, "--checkpoint", str(DEMO_CHECKPOINT), "--dataset", str(snap), "--output_dir",
                    str(out), "--criteria", str(base / "strict.yaml"), f"--torch_threads={torch_threads}", cache,
                    env={"OMP_NUM_THREADS": str(omp)})
        runs[(torch_threads, omp)] = proc, out
    return runs


def test_insufficient_data_is_a_no_go_even_when_everything_measured_passes(thread_runs):
    proc, out = thread_runs[(1, 1)]
    assert proc.returncode == EXIT_NO_GO, proc.stderr
    assert "recommendation: no-go (deciding criterion: per_class[shadow]: insufficient data on flagged/shadow" \
        in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    results = {r["id"]: r for r in metrics["criteria_results"]}
    assert results["per_class[shadow]"]["status"] == INSUFFICIENT
    assert results["per_class[shadow]"]["n_images"] == 1 and results["per_class[shadow]"]["observed"] is None
    assert all(r["status"] == "pass" for k, r in results.items() if k != "per_class[shadow]"), results
    assert metrics["not_evaluated"] == []
    assert "**insufficient_data**" in (out / "report.md").read_text()


def test_insufficient_data_never_passes_by_being_empty():
    """The decision step alone: a class with no images at all fails, it is not skipped."""
    full = binary(["11", "11"])
    scores = [image_score(b, "flagged", f"i{i}", ("gloss",), full, full, 0.5)
              for i in range(3) for b in ("candidate", "rembg")]
    criteria = SuccessCriteria("c.yaml", "0" * 64, False, 0.5, 3, (), (
        Criterion.of_kind("gloss_iou", "min_mean_iou", "flagged", "gloss", 0.0),
        Criterion.of_kind("empty_iou", "min_mean_iou", "flagged", "shadow", 0.0),
        Criterion.of_kind("test_iou", "min_mean_iou", "test", "all", 0.0)))
    decision = decide(criteria, aggregate(scores), 0)
    assert decision.recommendation == "no-go"
    status = {r.id: (r.status, r.n_images) for r in decision.results}
    assert status["gloss_iou"] == ("pass", 3)
    assert status["empty_iou"] == (INSUFFICIENT, 0) and status["test_iou"] == (INSUFFICIENT, 0)


def test_empty_ground_truth_everywhere_with_an_empty_candidate_is_no_go(tmp_path, cache_env, checkpoint):
    """Issue 8.1: every mask empty and a candidate that predicts nothing scored IoU 1 everywhere: exit 0, go."""
    snap = write_snapshot(tmp_path / "snap", n_test=3)
    for mask in [*(snap / "test" / "masks").iterdir(), *(snap / "flagged" / "masks").iterdir()]:
        Image.new("L", Image.open(mask).size, 0).save(mask)
    out = tmp_path / "out"
    proc = gate(cache_env, "--checkpoint", str(checkpoint), "--dataset", str(snap), "--output_dir", str(out))
    assert proc.returncode == EXIT_NO_GO, (proc.stdout, proc.stderr)
    metrics = json.loads((out / "metrics.json").read_text())
    candidate = [s for s in metrics["per_image"] if s["source_backend"] == "candidate"]
    assert candidate and all(s["mask_iou"] == 1.0 and s["ground_truth_pixels"] == 0 for s in candidate)
    assert {r["status"] for r in metrics["criteria_results"][1:]} == {INSUFFICIENT}
    assert all(r["n_empty_truth"] == r["n_images"] for r in metrics["criteria_results"][1:])
    assert "with a non-empty ground truth" in metrics["deciding_criterion"]["summary"]


def test_metrics_identical_across_thread_settings(thread_runs):
    """--torch_threads and OMP_NUM_THREADS both 1, then both 2: any thread-dependent arithmetic shows."""
    reference, other = (1, 1), (2, 2)
    (proc_a, out_a), (proc_b, out_b) = thread_runs[reference], thread_runs[other]
    assert proc_a.returncode == proc_b.returncode == EXIT_NO_GO, (proc_a.stderr, proc_b.stderr)
    a, b = (json.loads((out / "metrics.json").read_text()) for out in (out_a, out_b))
    assert a["provenance"]["backends"]["candidate"]["torch_threads"] == reference[0]
    assert b["provenance"]["backends"]["candidate"]["torch_threads"] == other[0]
    assert any(s["predicted_pixels"] for s in a["per_image"] if s["source_backend"] == "candidate")
    for key in ("per_image", "aggregates", "criteria_results", "not_evaluated", "recommendation",
                "deciding_criterion"):
        assert a[key] == b[key], key
    assert (out_a / "per_image.csv").read_bytes() == (out_b / "per_image.csv").read_bytes()
    gallery_a, gallery_b = ({p.name: p.read_bytes() for p in (out / "gallery").iterdir()} for out in (out_a, out_b))
    assert gallery_a == gallery_b


def test_another_runs_report_is_replaced_only_with_overwrite(thread_runs, evidence, evidence_cache, tmp_path):
    """The replacing run reads every mask the (1, 1) run cached: only the models load."""
    base, snap = evidence
    out = tmp_path / "taken"
    shutil.copytree(thread_runs[(1, 1)][1], out)
    before = files_of(out)
    fields = {"checkpoint": str(DEMO_CHECKPOINT), "dataset": str(snap), "output_dir": str(out),
              "criteria": str(base / "loose.yaml"), "torch_threads": 1}
    with pytest.raises(GateInputError, match="holds the report of a different run.*--overwrite"):
        prepare_run(GateOptions(**fields, baseline_config=str(BASELINE_CONFIG)))
    assert files_of(out) == before

    replaced = gate(evidence_cache, *(f"{flag_name(k)}={v}" for k, v in fields.items()), "--overwrite")
    assert replaced.returncode == EXIT_GO, replaced.stderr  # with min_images 1 the same evidence is a go
    metrics = json.loads((out / "metrics.json").read_text())
    old = json.loads(before["metrics.json"])
    assert metrics["recommendation"] == "go"
    assert metrics["provenance"]["run_key"] != old["provenance"]["run_key"]
    assert leftovers(tmp_path, "taken") == []


def test_overwrite_never_replaces_a_folder_that_holds_no_report(evidence, tmp_path):
    _, snap = evidence
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.md").write_text("not a gate report")
    with pytest.raises(GateInputError, match="holds no gate report") as refused:
        prepare_run(GateOptions(checkpoint=str(DEMO_CHECKPOINT), dataset=str(snap), criteria=str(CRITERIA),
                                baseline_config=str(BASELINE_CONFIG), output_dir=str(precious), overwrite=True))
    assert str(precious) in str(refused.value)
    assert [p.name for p in precious.iterdir()] == ["notes.md"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
