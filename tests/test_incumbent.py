"""The incumbent as a second reference: `vs: incumbent` criteria, pins, caching, and a candidate gated
against itself showing a regression of exactly 0."""

import json
import sys

import pytest

from eval.decision import decide as decision
from eval.digests import file_digest
from eval.errors import GateInputError
from eval.inputs.criteria import Criterion, SuccessCriteria, load_criteria
from eval.scoring.scores import aggregate, image_score
from tests.support import (DEMO_CHECKPOINT, REPO, VALID_CRITERIA, binary, criteria_file, run_cli, scratch_dir,
                           write_snapshot)

FULL = binary(["1111", "1111"])
HALF = binary(["1100", "1100"])  # IoU 0.5
THREE_QUARTERS = binary(["1110", "1110"])  # IoU 0.75

VS_INCUMBENT = VALID_CRITERIA + (
    "  - {id: vs_incumbent, kind: max_mean_iou_regression, corpus: test, failure_class: all, threshold: 0.0, "
    "vs: incumbent}\n")


def test_vs_defaults_to_rembg_and_is_only_for_regressions():
    loaded = load_criteria(criteria_file(VALID_CRITERIA)).criteria
    assert {c.vs for c in loaded if c.kind.endswith("_regression")} == {"rembg"}
    assert {c.vs for c in loaded if not c.kind.endswith("_regression")} == {None}
    assert load_criteria(criteria_file(VS_INCUMBENT)).criteria[-1].vs == "incumbent"
    with pytest.raises(GateInputError, match="`vs` names the reference of a regression"):
        load_criteria(criteria_file(VALID_CRITERIA.replace("threshold: 0.5}", "threshold: 0.5, vs: incumbent}")))
    with pytest.raises(GateInputError, match="vs"):
        load_criteria(criteria_file(VS_INCUMBENT.replace("vs: incumbent", "vs: production")))


def test_the_example_file_gates_on_the_incumbent():
    criteria = load_criteria(REPO / "configs" / "success_criteria_vs_incumbent.yaml")
    assert {c.id for c in criteria.criteria if c.measure.vs == "incumbent"} == {
        "not_worse_than_incumbent", "no_class_regression_vs_incumbent"}


def test_regression_is_measured_against_the_reference_the_criterion_names():
    rows = []
    for i, (cand, base, inc) in enumerate([(FULL, FULL, FULL), (HALF, FULL, THREE_QUARTERS)]):
        for backend, mask in (("candidate", cand), ("rembg", base), ("incumbent", inc)):
            rows.append(image_score(backend, "test", f"i{i}", (), FULL, mask, 0.75))
    aggs = aggregate(rows)  # means: candidate 0.75, rembg 1.0, incumbent 0.875
    items = (Criterion.of_kind("r", "max_mean_iou_regression", "test", "all", 0.2),
             Criterion.of_kind("i", "max_mean_iou_regression", "test", "all", 0.2, vs="incumbent"))
    d = decision.decide(SuccessCriteria("c.yaml", "0" * 64, False, 0.75, 2, (), items), aggs, 0)
    by_id = {r.id: r for r in d.results}
    assert by_id["r"].observed == 0.25 and by_id["r"].status == "fail"
    assert by_id["i"].observed == 0.125 and by_id["i"].status == "pass"
    assert by_id["i"].summary.startswith("mean-IoU regression vs incumbent 0.1250")
    assert "(candidate 0.7500 vs incumbent 0.8750)" in by_id["i"].summary


@pytest.fixture(scope="module")
def self_gated():
    """The demo checkpoint gated against itself as incumbent, twice (cold, then warm incumbent cache)."""
    base = scratch_dir()
    snapshot = write_snapshot(base / "snap")
    criteria = criteria_file(VS_INCUMBENT)
    env = {"GATE_CACHE_DIR": str(base / "cache")}
    flags = ["--checkpoint", str(DEMO_CHECKPOINT), "--incumbent_checkpoint", str(DEMO_CHECKPOINT),
             "--dataset", str(snapshot), "--criteria", str(criteria), "--quiet"]
    runs = [run_cli(*flags, "--output_dir", str(base / f"run{i}"), env=env) for i in (1, 2)]
    return base, runs


def test_a_candidate_against_itself_regresses_by_exactly_zero(self_gated):
    base, runs = self_gated
    assert runs[0].returncode in (0, 1), runs[0].stderr
    metrics = json.loads((base / "run1" / "metrics.json").read_text())
    [result] = [r for r in metrics["criteria_results"] if r["id"] == "vs_incumbent"]
    assert result["observed"] == 0.0 and result["status"] == "pass", result
    rows = {(r["source_backend"], r["corpus"], r["image_id"]): r for r in metrics["per_image"]}
    candidate = {k[1:]: v for k, v in rows.items() if k[0] == "candidate"}
    incumbent = {k[1:]: v for k, v in rows.items() if k[0] == "incumbent"}
    assert candidate.keys() == incumbent.keys() and len(candidate) == 6
    for key, row in candidate.items():
        assert {**row, "source_backend": "incumbent"} == incumbent[key]
    assert any(r["mask_iou"] > 0 for r in candidate.values()), "a trained checkpoint finds the pots"
    provenance = metrics["provenance"]
    assert provenance["incumbent"] == provenance["checkpoint"]
    assert provenance["backends"]["incumbent"] == provenance["backends"]["candidate"]
    report = (base / "run1" / "report.md").read_text()
    assert "| incumbent checkpoint |" in report and "incumbent mask IoU | Δ vs incumbent" in report


def test_incumbent_masks_are_cached_by_content_and_reused(self_gated):
    base, runs = self_gated
    cached = sorted((base / "cache" / "incumbent-masks").rglob("*.mask"))
    # Keyed by pixels and the incumbent's fingerprint: the six images are three distinct photos (write_snapshot
    # draws test t<i> and flagged cr-<i+1> alike), so three masks.
    assert len(cached) == 3
    assert runs[1].returncode == runs[0].returncode
    assert (base / "run1" / "metrics.json").read_bytes() == (base / "run2" / "metrics.json").read_bytes()
    timings = json.loads((base / "run2" / "timings.json").read_text())
    incumbent = timings["backends"]["incumbent"]
    assert incumbent["images_timed"] == 0 and incumbent["images_from_cache"] == 6  # all from the cache


def _refused(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "recommendation:" not in proc.stdout
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def test_incumbent_criteria_without_an_incumbent_and_bad_pins_are_exit_2():
    base = scratch_dir()
    snapshot = write_snapshot(base / "snap")
    common = ["--checkpoint", str(DEMO_CHECKPOINT), "--dataset", str(snapshot), "--quiet"]
    out = base / "out"
    _refused(run_cli(*common, "--criteria", str(criteria_file(VS_INCUMBENT)), "--output_dir", str(out)),
             "--incumbent_checkpoint", "vs_incumbent")
    _refused(run_cli(*common, "--incumbent_checkpoint", str(DEMO_CHECKPOINT), "--incumbent_sha256", "0" * 64,
                     "--output_dir", str(out)), "differs from the pinned --incumbent_sha256")
    _refused(run_cli(*common, "--incumbent_checkpoint", str(DEMO_CHECKPOINT), "--checkpoint_sha256",
                     file_digest(DEMO_CHECKPOINT), "--output_dir", str(out)),
             "--incumbent_sha256", "the candidate is pinned but the incumbent is not")
    _refused(run_cli(*common, "--incumbent_checkpoint", str(base / "missing.pt"), "--output_dir", str(out)),
             "missing.pt", "checkpoint file not found")
    assert not out.exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
