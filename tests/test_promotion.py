"""A go travels intact to the deploy step: a signed report from a real gate run, checked by
tools/verify_promotion.py against the checkpoint bytes, the locked criteria and the signer's public key, and
refused whenever any of them does not hold."""

import hashlib
import json
import shutil
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from eval.report import outputs
from tests.support import DEMO_CHECKPOINT, DEMO_INCUMBENT, DEMO_REPORT, REPO, pot_photo, crop_run, run_cli, \
    scratch_dir, write_snapshot

VERIFY = REPO / "tools" / "verify_promotion.py"
PROMOTABLE, NOT_PROMOTABLE, UNREADABLE = 0, 1, 2
LOCKED_CRITERIA = """\
schema_version: 1
example_values: false
iou_pass_threshold: 0.5
min_images: 1
failure_classes:
  - {id: gloss, description: glossy, match: {notes_any: [gloss]}}
criteria:
  - {id: test_mean_iou, kind: min_mean_iou, corpus: test, failure_class: all, threshold: 0.0}
  - {id: no_regression, kind: max_mean_iou_regression, corpus: flagged, failure_class: all, threshold: 1.0}
"""


def _keys(folder, name):
    key = ed25519.Ed25519PrivateKey.generate()
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture(scope="module")
def signed_go():
    """A real gate run (tiny snapshot, locked criteria a candidate passes), signed; its inputs and keys."""
    base = scratch_dir()
    rows = [crop_run(f"cr{k}", "glossy rim", image=f"images/f{k}.png", mask=f"masks/f{k}.png") for k in range(2)]
    snap = write_snapshot(base / "snap", n_test=2, rows=rows)
    for k in range(2):
        photo, mask = pot_photo(shift=4 + 3 * k)
        photo.save(snap / "flagged" / "images" / f"f{k}.png")
        mask.save(snap / "flagged" / "masks" / f"f{k}.png")
    criteria = base / "locked.yaml"
    criteria.write_text(LOCKED_CRITERIA)
    checkpoint = base / "best.pt"
    shutil.copyfile(DEMO_CHECKPOINT, checkpoint)
    private, public = _keys(base, "gate")
    report = base / "report"
    proc = run_cli("--checkpoint", str(checkpoint), "--dataset", str(snap), "--criteria", str(criteria),
                   "--output_dir", str(report), f"--signing_key={private}", "--quiet",
                   env={"GATE_CACHE_DIR": str(base / "cache")})
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert private.read_text().splitlines()[1] not in proc.stdout + proc.stderr  # the key is never printed
    return {"base": base, "report": report, "checkpoint": checkpoint, "criteria": criteria, "public": public}


def verify(report, checkpoint, criteria, public_key=None):
    flags = [f"--report={report}", f"--checkpoint={checkpoint}", f"--criteria={criteria}"]
    flags += [f"--public_key={public_key}"] if public_key else []
    return subprocess.run([sys.executable, str(VERIFY), *flags], capture_output=True, text=True, timeout=120,
                          check=False, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def _copy(signed_go, name):
    copy = signed_go["base"] / name
    shutil.copytree(signed_go["report"], copy)
    return copy


def _rewrite_metrics(folder, change, redigest=True):
    """Edit metrics.json; with `redigest`, also update manifest.json so the files match it again (what a
    forger would do), which leaves the signature, if any, stale."""
    metrics = json.loads((folder / "metrics.json").read_text())
    change(metrics)
    data = (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode()
    (folder / "metrics.json").write_bytes(data)
    if redigest:
        manifest = json.loads((folder / outputs.MANIFEST).read_text())
        manifest["files"]["metrics.json"] = hashlib.sha256(data).hexdigest()
        (folder / outputs.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def test_a_genuine_signed_go_is_promotable(signed_go):
    assert (signed_go["report"] / outputs.SIGNATURE).is_file()
    proc = verify(signed_go["report"], signed_go["checkpoint"], signed_go["criteria"], signed_go["public"])
    assert proc.returncode == PROMOTABLE, (proc.stdout, proc.stderr)
    assert proc.stdout.startswith("promotable: ")


def test_a_swapped_checkpoint_is_refused(signed_go):
    proc = verify(signed_go["report"], DEMO_INCUMBENT, signed_go["criteria"], signed_go["public"])
    assert proc.returncode == NOT_PROMOTABLE and "not the model it cleared" in proc.stdout, proc.stdout


def test_other_criteria_than_the_locked_ones_are_refused(signed_go):
    other = signed_go["base"] / "other.yaml"
    other.write_text(LOCKED_CRITERIA.replace("threshold: 1.0", "threshold: 0.9"))
    proc = verify(signed_go["report"], signed_go["checkpoint"], other)
    assert proc.returncode == NOT_PROMOTABLE and "not on the locked" in proc.stdout, proc.stdout


def test_an_edited_report_md_is_refused(signed_go):
    folder = _copy(signed_go, "edited-md")
    with open(folder / "report.md", "a") as report:
        report.write("recommendation: go\n")
    proc = verify(folder, signed_go["checkpoint"], signed_go["criteria"])
    assert proc.returncode == UNREADABLE and "modified since the gate wrote it" in proc.stderr, proc.stderr


def test_a_report_signed_by_another_key_is_refused(signed_go):
    _, stranger = _keys(signed_go["base"], "stranger")
    proc = verify(signed_go["report"], signed_go["checkpoint"], signed_go["criteria"], stranger)
    assert proc.returncode == NOT_PROMOTABLE and "another key" in proc.stdout, proc.stdout


def test_a_forged_record_with_a_fixed_up_manifest_fails_its_signature(signed_go):
    folder = _copy(signed_go, "forged")
    _rewrite_metrics(folder, lambda m: m["provenance"]["checkpoint"].update(sha256="0" * 64))
    proc = verify(folder, signed_go["checkpoint"], signed_go["criteria"], signed_go["public"])
    assert proc.returncode == NOT_PROMOTABLE and "changed after it was signed" in proc.stdout, proc.stdout


def test_an_unsigned_report_is_refused_when_a_signature_is_required(signed_go):
    folder = _copy(signed_go, "unsigned")
    (folder / outputs.SIGNATURE).unlink()
    proc = verify(folder, signed_go["checkpoint"], signed_go["criteria"], signed_go["public"])
    assert proc.returncode == NOT_PROMOTABLE and "not signed" in proc.stdout, proc.stdout


def test_an_unknown_harness_version_is_refused(signed_go):
    folder = _copy(signed_go, "future")
    _rewrite_metrics(folder, lambda m: m["provenance"].update(harness_version="9.9.9"))
    proc = verify(folder, signed_go["checkpoint"], signed_go["criteria"])
    assert proc.returncode == NOT_PROMOTABLE and "harness version 9.9.9" in proc.stdout, proc.stdout


def test_a_no_go_edited_into_a_go_is_refused(signed_go):
    folder = signed_go["base"] / "demo-no-go"
    shutil.copytree(DEMO_REPORT, folder)
    _rewrite_metrics(folder, lambda m: m.update(recommendation="go"), redigest=False)
    proc = verify(folder, DEMO_CHECKPOINT, REPO / "configs" / "success_criteria.yaml")
    assert proc.returncode == UNREADABLE and "modified since the gate wrote it" in proc.stderr, proc.stderr
    _rewrite_metrics(folder, lambda m: m.update(recommendation="go"))  # the manifest fixed up too
    proc = verify(folder, DEMO_CHECKPOINT, REPO / "configs" / "success_criteria.yaml")
    assert proc.returncode == UNREADABLE and "does not follow from the criteria" in proc.stderr, proc.stderr


def test_the_demo_no_go_names_every_reason(signed_go):
    proc = verify(DEMO_REPORT, DEMO_CHECKPOINT, REPO / "configs" / "success_criteria.yaml")
    assert proc.returncode == NOT_PROMOTABLE, proc.stderr
    assert "recommendation is no-go" in proc.stdout and "example values" in proc.stdout, proc.stdout


def test_a_signed_folder_is_replaced_by_the_next_run_of_the_gate(signed_go):
    """manifest.sig is one of the gate's files: a rerun into the folder replaces it instead of refusing."""
    folder = _copy(signed_go, "rerun")
    manifest = json.loads((folder / outputs.MANIFEST).read_text())
    assert manifest["signature"] == outputs.SIGNATURE
    destination = outputs.check_destination(folder, manifest["run_key"], overwrite=False)
    destination.publish({"metrics.json": b"{}\n"})
    assert sorted(p.name for p in folder.iterdir()) == [outputs.MANIFEST, "metrics.json"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
