"""The Modal app, offline: its functions' bodies run here (`.local()`), a local directory stands in for the Volumes.

What needs a Modal account (image build, GPUs, real Volumes, Function.map across containers) is not
exercised here; modal_app/README.md lists it.
"""

import contextlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys

import modal
import numpy as np
import pytest
from modal._serialization import deserialize, serialize  # what Modal itself uses for inputs and outputs

from eval import pipeline
from eval.options import GateOptions
from eval.decision.decide import EXAMPLE_VALUES_WARNING
from eval.gate import ShardResult, batches, combine
from eval.inputs.baseline_config import load_baseline_config
from eval.inputs.criteria import load_criteria
from eval.inputs.snapshot import FLAGGED, TEST, load_snapshot
from eval.report.render import render_all
from modal_app import gate_app
from tracking import offline_log
from tests.support import BASELINE_CONFIG, CLI, CRITERIA, DEMO_CHECKPOINT, REPO, crop_run, pot_photo, \
    scratch_dir, write_snapshot

CHECKPOINT_URI = "modal://ckpts/run-1/best.pt"
DATASET_URI = "modal://data/snapshots/tiny-v1"
BATCH_SIZE = 2  # 4 test + 3 flagged images -> batches of 2, 2 | 2, 1: shards cut across both corpora


def crossing(obj):
    """Through a process boundary as Modal sends it (cloudpickle out, unpickle in)."""
    return deserialize(serialize(obj), None)


@pytest.fixture(scope="module")
def world():
    """Volumes as directories: ckpts/ (checkpoint), data/ (snapshot), reports/ (outputs); plus a local run."""
    base = scratch_dir()
    root = base / "volumes"
    rows = [crop_run("cr-1", "glossy glaze reflection"), crop_run("cr-2", "white on white"),
            crop_run("cr-3", "cast shadow kept"), crop_run("cr-4", "tool output", source_type="model")]
    snapshot = write_snapshot(root / "data" / "snapshots" / "tiny-v1", n_test=4, rows=rows)
    # Portrait photos among landscape ones: ultralytics letterboxes a mixed-shape batch differently from
    # a batch of one, so these runs only agree if the shards keep the local run's batches.
    for shift, name in enumerate(("t1", "t3")):  # two photos: one photo twice would be evaluated once
        photo, mask = pot_photo(width=72, height=96, shift=shift)
        photo.save(snapshot / "test" / "images" / f"{name}.png")
        mask.save(snapshot / "test" / "masks" / f"{name}.png")
    checkpoint = root / "ckpts" / "run-1" / "best.pt"
    checkpoint.parent.mkdir(parents=True)
    shutil.copyfile(DEMO_CHECKPOINT, checkpoint)
    (root / "reports").mkdir()
    options = GateOptions(
        checkpoint=str(checkpoint), dataset=str(snapshot), criteria=str(CRITERIA),
        baseline_config=str(BASELINE_CONFIG), reports_root=str(base / "reports"), output_dir=str(base / "local"),
        batch_size=BATCH_SIZE, device="cpu", torch_threads=2, quiet=True, baseline_cache=True)
    result, local_dir = pipeline.run_gate(options)  # the plain single-process run
    return {"base": base, "root": root, "snapshot": snapshot, "result": result, "local_dir": local_dir}


@pytest.fixture
def on_local_volumes(world, monkeypatch):
    """The app's seams pointed here: mounts are `world`'s directory, and Function.map becomes a loop of
    `score_shard.local()` calls whose jobs and results cross a (de)serialisation boundary as on Modal."""
    monkeypatch.setattr(gate_app, "_container_mounts", lambda: gate_app.VolumeMounts(world["root"]))
    monkeypatch.setattr(gate_app, "_map_on_modal", lambda request: lambda jobs: [
        crossing(gate_app.score_shard.local(crossing(job))) for job in jobs])
    return gate_app.VolumeMounts(world["root"])


def flags(**overrides):
    """The app's flags for `world`; reports_root stays the default (a Volume the tests do not mount)."""
    return {"checkpoint": CHECKPOINT_URI, "dataset": DATASET_URI, "device": "cpu", "batch_size": BATCH_SIZE,
            "torch_threads": 2, **overrides}


def run_sharded(shards, output):
    """The local entrypoint's body end to end, `gate` run by `.local()`; returns (exit status, stdout)."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = gate_app.run_from_cli(
            submit_request=lambda request: crossing(gate_app.gate.local(crossing({**request, "quiet": True,
                                                                                  "baseline_cache": True}))),
            **flags(shards=shards, output_dir=output))
    return code, stdout.getvalue()


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_sharded_run_is_byte_identical_to_the_local_run(world, on_local_volumes, shards):
    code, stdout = run_sharded(shards, f"modal://reports/sharded-{shards}")
    published = world["root"] / "reports" / f"sharded-{shards}"
    for name in ("metrics.json", "per_image.csv", "report.md"):
        assert (published / name).read_bytes() == (world["local_dir"] / name).read_bytes(), name
    assert sorted(p.name for p in (published / "gallery").iterdir()) == \
        sorted(p.name for p in (world["local_dir"] / "gallery").iterdir())
    metrics = json.loads((published / "metrics.json").read_text())
    # ... intervals included: their resampling seeds come from the run key, not from how images were sharded
    assert all(a["intervals"]["mask_iou_mean"]["method"] for a in metrics["aggregates"])
    assert code == {"go": 0, "no-go": 1}[metrics["recommendation"]]
    assert f"report: modal://reports/sharded-{shards}/report.md" in stdout
    assert f"{shards} shard(s)" in stdout
    assert f"recommendation: {metrics['recommendation']} " in stdout


def test_shard_results_survive_the_process_boundary(world, on_local_volumes):
    """ShardResult holds frozen dataclasses and numpy thumbnails: pickled either way, it decides the same."""
    request = {**gate_app.make_request(**flags(shards=2, output_dir="modal://reports/pickled")),
               "quiet": True, "baseline_cache": True}
    captured = []

    def keep(jobs):
        outcomes = [gate_app.run_shard(job, on_local_volumes) for job in jobs]
        captured.extend(outcomes)
        return outcomes

    assert gate_app.coordinate(request, on_local_volumes, keep)["status"] == "ok"
    results = [o["result"] for o in captured]
    cases = [c for r in results for picks in r.gallery.result() for c in picks]
    assert cases and all(isinstance(t, np.ndarray) for c in cases for t in c.thumbnails), "exercise the gallery"
    snapshot, criteria = load_snapshot(world["snapshot"]), load_criteria(CRITERIA)
    expected = render_all(combine(results, snapshot, criteria, world["result"].provenance), "title")
    for transport in (crossing, lambda obj: pickle.loads(pickle.dumps(obj))):
        moved = [transport(r) for r in results]
        assert all(type(m) is ShardResult for m in moved)
        assert render_all(combine(moved, snapshot, criteria, world["result"].provenance), "title") == expected


def test_jobs_cross_the_boundary(world, on_local_volumes):
    mounts = on_local_volumes
    request = gate_app.make_request(**flags(shards=3, reports_root="modal://reports/root"))
    seen = []

    def capture(jobs):
        seen.extend(jobs)
        return [gate_app.run_shard(crossing(job), mounts) for job in jobs]

    summary = gate_app.coordinate({**request, "quiet": True, "baseline_cache": True}, mounts, capture)
    assert summary["output"] == "modal://reports/root/best-tiny-v1"  # <reports_root>/<checkpoint>-<version>
    assert (world["root"] / "reports" / "root" / "best-tiny-v1" / "metrics.json").is_file()
    assert len(seen) == 3
    moved = crossing(seen)
    assert [gate_app.shard_keys(j["batches"]) for j in moved] == [gate_app.shard_keys(j["batches"]) for j in seen]
    assert moved[0]["criteria"] == seen[0]["criteria"] and moved[0]["options"] == seen[0]["options"]


def test_an_input_error_in_a_shard_is_reported_not_raised(world, on_local_volumes):
    mounts = on_local_volumes
    request = {**gate_app.make_request(**flags(shards=2, output_dir="modal://reports/refused")),
               "quiet": True, "baseline_cache": True}

    def tampered(jobs):  # a shard sees a different checkpoint than the coordinator pinned
        return [crossing(gate_app.run_shard({**job, "checkpoint_sha256": "0" * 64}, mounts)) for job in jobs]

    summary = gate_app.coordinate(request, mounts, tampered)
    assert summary["status"] == "error" and "differs from the pinned" in summary["error"]
    assert gate_app.exit_code(summary) == gate_app.EXIT_ERROR
    assert not (world["root"] / "reports" / "refused").exists()


def test_shards_must_agree_on_their_backends(world, on_local_volumes):
    mounts = on_local_volumes
    request = {**gate_app.make_request(**flags(shards=2, output_dir="modal://reports/disagree")),
               "quiet": True, "baseline_cache": True}

    def drifting(jobs):
        outcomes = [gate_app.run_shard(job, mounts) for job in jobs]
        outcomes[-1]["backends"] = {**outcomes[-1]["backends"], "candidate": {"device": "cuda:0"}}
        return outcomes

    summary = gate_app.coordinate(request, mounts, drifting)
    assert summary["status"] == "error" and "not comparable" in summary["error"]


def test_coordinator_refuses_bad_volume_inputs(world, on_local_volumes):
    mounts = on_local_volumes
    base = {**gate_app.make_request(**flags(output_dir="modal://reports/bad")), "quiet": True}
    never = lambda jobs: pytest.fail("no shard may run")  # noqa: E731
    missing = gate_app.coordinate({**base, "dataset": "modal://data/snapshots/nope"}, mounts, never)
    assert missing["status"] == "error" and "modal://data/snapshots/nope" in missing["error"]
    unmounted = gate_app.coordinate({**base, "checkpoint": "modal://elsewhere/best.pt"}, mounts, never)
    assert unmounted["status"] == "error" and "not mounted" in unmounted["error"]
    allowlist = scratch_dir() / "approved.txt"  # a local file; its bytes travel with the request
    allowlist.write_text("0" * 64 + "  # some other checkpoint\n")
    refused = gate_app.coordinate({**gate_app.make_request(**flags(output_dir="modal://reports/bad",
                                                                   checkpoint_allowlist=str(allowlist))),
                                   "quiet": True}, mounts, never)
    assert refused["status"] == "error" and "not in the checkpoint allowlist" in refused["error"]


# --- planning ------------------------------------------------------------------------------------------------

def test_plan_deals_the_gates_own_batches(world):
    items = load_snapshot(world["snapshot"]).items
    reference = batches(items, BATCH_SIZE)
    assert [[i.corpus for i in b] for b in reference] == [[TEST] * 2, [TEST] * 2, [FLAGGED] * 2, [FLAGGED]]
    assert gate_app.plan_shards(items, BATCH_SIZE, 1) == [reference]
    for n in range(1, 7):
        plan = gate_app.plan_shards(items, BATCH_SIZE, n)
        assert len(plan) == min(n, len(reference)) and all(plan)
        assert [b for shard in plan for b in shard] == reference  # whole batches, in order, none lost
    assert sorted(k for s in gate_app.plan_shards(items, BATCH_SIZE, 3) for k in gate_app.shard_keys(s)) == \
        sorted((i.corpus, i.image_id) for i in items)


def test_auto_shard_count():
    assert gate_app.auto_shard_count(1) == 1
    assert gate_app.auto_shard_count(gate_app.IMAGES_PER_SHARD) == 1
    assert gate_app.auto_shard_count(gate_app.IMAGES_PER_SHARD + 1) == 2


# --- the local side: flags, exit status, `modal run` -------------------------------------------------------

def test_flags_are_checked_before_anything_runs_on_modal(capsys):
    never = lambda request: pytest.fail("must not submit")  # noqa: E731
    assert gate_app.run_from_cli(never, **flags(dataset="/local/snapshot")) == gate_app.EXIT_ERROR
    assert "not a modal://" in capsys.readouterr().err
    assert gate_app.run_from_cli(never, **flags(checkpoint="modal://v/../x.pt")) == gate_app.EXIT_ERROR
    assert gate_app.run_from_cli(never, **flags(batch_size=0)) == gate_app.EXIT_ERROR
    assert gate_app.run_from_cli(never, **flags(checkpoint_sha256="abc")) == gate_app.EXIT_ERROR
    assert gate_app.run_from_cli(never, **flags(criteria="/no/such/criteria.yaml")) == gate_app.EXIT_ERROR
    assert "/no/such/criteria.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["output_dir", "checkpoint_allowlist", "criteria", "baseline_config", "reports_root",
                                  "checkpoint", "dataset"])
def test_an_empty_path_flag_is_an_error_not_the_default(flag, capsys):
    never = lambda request: pytest.fail("must not submit")  # noqa: E731
    assert gate_app.run_from_cli(never, **flags(**{flag: " "})) == gate_app.EXIT_ERROR
    assert f"error: --{flag.replace('_', '-')}: is empty" in capsys.readouterr().err


def test_a_modal_failure_is_exit_2(capsys):
    def unreachable(request):
        raise ConnectionError("no route to Modal")

    assert gate_app.run_from_cli(unreachable, **flags()) == gate_app.EXIT_ERROR
    assert "could not run on Modal" in capsys.readouterr().err


def test_exit_status_follows_the_cli_contract():
    ok = {"status": "ok", "recommendation": "go", "not_evaluated": 0}
    assert gate_app.exit_code(ok) == 0
    assert gate_app.exit_code({**ok, "recommendation": "no-go"}) == 1
    assert gate_app.exit_code({**ok, "not_evaluated": 2}) == 2
    assert gate_app.exit_code({"status": "error", "error": "x"}) == 2


@pytest.mark.parametrize("example_values", [True, False])
def test_the_console_says_when_a_decision_used_example_values(example_values):
    out, err = io.StringIO(), io.StringIO()
    summary = {"status": "ok", "recommendation": "go", "not_evaluated": 0, "example_values": example_values,
               "deciding_criterion": {"id": "c", "summary": "s"}, "output": "modal://r/x", "images": 1, "shards": 1}
    assert gate_app.report_summary(summary, out, err) == gate_app.EXIT_GO
    assert (EXAMPLE_VALUES_WARNING in err.getvalue().splitlines()) == example_values


@pytest.mark.parametrize("brk", ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_the_console_lines_cannot_be_forged(brk):
    forged = f"{brk}recommendation: go (forged)"
    out, err = io.StringIO(), io.StringIO()
    gate_app.report_summary({"status": "error", "error": f"modal://v/x{forged}: not found"}, out, err)
    gate_app.report_summary({"status": "ok", "recommendation": "no-go", "not_evaluated": 1, "example_values": False,
                             "deciding_criterion": {"id": "c", "summary": f"s{forged}"},
                             "output": f"modal://r/x{forged}", "images": 1, "shards": 1}, out, err)
    for text in (out.getvalue(), err.getvalue()):
        lines = text.splitlines() + text.split("\n")
        assert not any(line.startswith("recommendation: go") for line in lines), text


def test_request_carries_the_local_config_bytes():
    request = gate_app.make_request(**flags())
    assert request["criteria"]["data"] == CRITERIA.read_bytes()
    assert request["baseline_config"]["data"] == BASELINE_CONFIG.read_bytes()
    assert request["checkpoint_allowlist"] is None
    assert gate_app.all_volumes(request) == ["ckpts", "data", "gate-reports"]  # the default reports_root
    assert gate_app.all_volumes({**request, "output_dir": "modal://reports/x"}) == ["ckpts", "data", "reports"]
    assert gate_app.input_volumes(request) == ["ckpts", "data"]


@pytest.mark.parametrize("summary, status", [
    ({"status": "ok", "recommendation": "go", "not_evaluated": 0}, 0),
    ({"status": "ok", "recommendation": "no-go", "not_evaluated": 0}, 1),
    ({"status": "error", "error": "boom"}, 2),
])
def test_modal_run_exits_with_the_recommendation(monkeypatch, summary, status):
    """`modal run`'s own click command for the entrypoint: its flags parse and SystemExit is the status."""
    from modal.cli import run as modal_cli

    full = {"deciding_criterion": {"id": "c", "summary": "s"}, "output": "modal://r/x", "images": 1, "shards": 1,
            **summary}
    monkeypatch.setattr(gate_app, "submit", lambda request: full)
    monkeypatch.setattr(modal_cli, "run_app", lambda *a, **k: contextlib.nullcontext())
    command = modal_cli._get_click_command_for_local_entrypoint(gate_app.app, gate_app.main)
    obj = {"detach": False, "show_progress": False, "show_timestamps": False, "name": None, "env": None,
           "interactive": False, "result_path": None}
    args = ["--checkpoint", CHECKPOINT_URI, "--dataset", DATASET_URI, "--shards", "3", "--gpu", "L4",
            "--checkpoint-sha256", "ab" * 32, "--no-overwrite", "--candidate-conf", "0.3"]
    with pytest.raises(SystemExit) as exit_info:
        command.main(args, obj=obj, standalone_mode=True)
    assert (exit_info.value.code or 0) == status


# --- the module and the image -------------------------------------------------------------------------------

def test_imports_need_no_network_no_credentials_and_eval_never_imports_modal():
    """eval/ and the CLI import without modal; the app module imports and defines its functions offline."""
    probe = f"""
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network disabled by the test")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
import eval.pipeline, eval.inputs.volumes, eval.inputs.checkpoint
import importlib.util
spec = importlib.util.spec_from_file_location("eval_crop_model", {str(CLI)!r})
spec.loader.exec_module(importlib.util.module_from_spec(spec))
assert "modal" not in sys.modules, "eval/ or the CLI imported modal"
import modal
from modal_app import gate_app
assert isinstance(gate_app.gate, modal.Function) and isinstance(gate_app.score_shard, modal.Function)
assert gate_app.main.info.raw_f.__name__ == "main"
print("ok")
"""
    home = scratch_dir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")}
    env.update({"HOME": str(home), "MODAL_CONFIG_PATH": str(home / "absent.toml"), "PYTHONPATH": str(REPO)})
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=str(home),
                          timeout=300, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_baked_weights_are_the_production_weights():
    assert gate_app.U2NET_MD5 == load_baseline_config(BASELINE_CONFIG).model_md5
    assert gate_app.U2NET_MD5 in gate_app._weights_command()


def test_image_is_built_from_the_lock_file_and_the_sources():
    lock = (REPO / "requirements.lock").read_text()
    assert f"modal=={modal.__version__}\n" in lock  # this client is the locked one the image installs
    assert gate_app.PYTHON_VERSION.rsplit(".", 1)[0] == "3.11"  # the lock is resolved for Python 3.11
    from modal.mount import _Mount  # the file list Modal would upload for add_local_python_source

    mount = _Mount._from_local_python_packages("eval", "modal_app", ignore=gate_app.ignore_source)
    uploaded = {str(remote) for entry in mount._entries for _, remote in entry.get_files_to_upload()}
    assert "/root/eval/report/templates/report.md.j2" in uploaded  # render.py renders from it
    assert {"/root/eval/gate.py", "/root/eval/backends/yolo_backend.py", "/root/modal_app/gate_app.py"} <= uploaded
    assert not [p for p in uploaded if "__pycache__" in p or p.endswith((".pyc", "BUILD.bazel"))]



def test_incumbent_and_wandb_pass_through_the_coordinator(world, on_local_volumes, monkeypatch):
    """The incumbent is resolved from its Volume in every shard and scored as in a local run; the
    coordinator logs the published run to W&B (offline here: into the output Volume's wandb/)."""
    incumbent = world["root"] / "ckpts" / "prod" / "best.pt"
    incumbent.parent.mkdir(exist_ok=True)
    shutil.copyfile(DEMO_CHECKPOINT, incumbent)
    local = pipeline.run_gate(GateOptions(
        checkpoint=str(world["root"] / "ckpts" / "run-1" / "best.pt"), dataset=str(world["snapshot"]),
        criteria=str(CRITERIA), baseline_config=str(BASELINE_CONFIG),
        output_dir=str(world["base"] / "local-incumbent"), batch_size=BATCH_SIZE, device="cpu", torch_threads=2,
        quiet=True, baseline_cache=True, incumbent_checkpoint=str(incumbent)))[1]
    scratch = scratch_dir()
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("CONFIG", "CACHE", "DATA", "ARTIFACT"):
        monkeypatch.setenv(f"WANDB_{name}_DIR", str(scratch / name.lower()))
    request = {**gate_app.make_request(**flags(shards=2, output_dir="modal://reports/with-incumbent",
                                                 incumbent_checkpoint="modal://ckpts/prod/best.pt",
                                                 wandb_project="gate-test")),
               "quiet": True, "baseline_cache": True}
    assert request["wandb"]["harness_commit"] is None or len(request["wandb"]["harness_commit"]) >= 40
    summary = crossing(gate_app.gate.local(crossing(request)))
    assert summary["status"] == "ok", summary
    published = world["root"] / "reports" / "with-incumbent"
    for name in ("metrics.json", "per_image.csv", "report.md"):
        assert (published / name).read_bytes() == (local / name).read_bytes(), name
    metrics = json.loads((published / "metrics.json").read_text())
    assert {r["source_backend"] for r in metrics["per_image"]} == {"rembg", "candidate", "incumbent"}
    assert metrics["provenance"]["incumbent"]["name"] == "best.pt"
    [run_dir] = (world["root"] / "reports" / "wandb" / "wandb").glob("offline-run-*")
    logged = offline_log.read_run(run_dir)
    assert logged["summary"]["recommendation"] == metrics["recommendation"]
    assert logged["config"]["provenance"] == metrics["provenance"]


def test_incumbent_flags_are_checked_before_submitting():
    with pytest.raises(gate_app.GateInputError, match="--incumbent"):
        gate_app.make_request(**flags(incumbent_checkpoint="/local/best.pt"))
    with pytest.raises(gate_app.GateInputError, match="--incumbent-sha256"):
        gate_app.make_request(**flags(incumbent_sha256="0" * 64))
    with pytest.raises(gate_app.GateInputError, match="--incumbent-sha256"):
        gate_app.make_request(**flags(incumbent_checkpoint="modal://ckpts/prod/best.pt", incumbent_sha256="abc"))
    assert gate_app.input_volumes(gate_app.make_request(**flags(incumbent_checkpoint="modal://prod/best.pt"))) == [
        "ckpts", "data", "prod"]

if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
