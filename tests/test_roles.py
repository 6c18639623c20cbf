"""Backends as roles (eval.roles): a backend added by one registry line takes part in every table, plot,
interval and criterion, in real runs of the real backends."""

import json
import sys

import pytest

from eval import pipeline, roles
from eval.errors import GateInputError
from eval.inputs.criteria import load_criteria
from eval.options import GateOptions
from eval.report.render import markdown_text
from eval.roles import Role
from tests.rembg_post_process_backend import NAME
from tests.support import (BASELINE_CONFIG, DEMO_CHECKPOINT, VALID_CRITERIA, criteria_file, scratch_dir,
                           write_snapshot)

ROLE = Role(NAME, "tests.rembg_post_process_backend.RembgPostProcessBackend", reference=True, cache="post-masks")
VS_POST = VALID_CRITERIA + (f"  - {{id: vs_post, kind: max_mean_iou_regression, corpus: test, failure_class: all, "
                            f"threshold: 0.5, vs: {NAME}}}\n")


@pytest.fixture
def fourth_role(monkeypatch):
    monkeypatch.setattr(roles, "ROLES", (*roles.ROLES, ROLE))  # the one line a new backend adds


def _run(base, criteria_text, **options):
    options = GateOptions(checkpoint=str(DEMO_CHECKPOINT), dataset=str(write_snapshot(base / "snap")),
                          criteria=str(criteria_file(criteria_text, base)), baseline_config=str(BASELINE_CONFIG),
                          reports_root=str(base / "reports"), output_dir=str(base / "out"), torch_threads=1,
                          quiet=True, **options)
    return pipeline.run_gate(options)


def test_a_criterion_may_name_a_reference_only_once_its_role_is_registered(monkeypatch):
    with pytest.raises(GateInputError, match="vs"):
        load_criteria(criteria_file(VS_POST))
    monkeypatch.setattr(roles, "ROLES", (*roles.ROLES, ROLE))
    assert load_criteria(criteria_file(VS_POST)).criteria[-1].measure.vs == NAME


def test_a_fourth_backend_is_in_every_table_interval_and_criterion(fourth_role):
    base = scratch_dir()
    result, out = _run(base, VS_POST)
    assert result.decision.ran == ("rembg", "candidate", NAME) and result.decision.unused == ()
    [vs_post] = [r for r in result.decision.results if r.id == "vs_post"]
    assert vs_post.vs == NAME and vs_post.interval is not None
    metrics = json.loads((out / "metrics.json").read_text())
    assert {r["source_backend"] for r in metrics["per_image"]} == {"rembg", "candidate", NAME}
    assert metrics["provenance"]["backends"][NAME]["remove_kwargs"]["post_process_mask"] is True
    [candidate] = [a for a in metrics["aggregates"] if a["source_backend"] == "candidate"
                   and a["corpus"] == "test" and a["failure_class"] == "all"]
    assert f"mask_iou_regression_vs_{NAME}" in candidate["intervals"]
    report, name = (out / "report.md").read_text(), markdown_text(NAME)  # rembg\_post, as the report escapes it
    assert f"| {name} mask IoU | Δ vs {name} | Δ vs {name} interval |" in report
    assert f"| {name} pass | Δ pass vs {name} |" in report
    assert f"Panels: photo, ground truth, rembg, candidate, {name}." in report
    forest = f"forest-{NAME}.png"  # a criterion measures against it: its own forest plot beside rembg's
    assert f"![forest plot vs {name}]({forest})" in report and (out / forest).read_bytes().startswith(b"\x89PNG")
    assert forest in json.loads((out / "manifest.json").read_text())["files"]
    html = (out / "report.html").read_text()
    assert f"<th>{NAME} IoU</th>" in html and f"candidate | {NAME}" in html
    assert (pipeline.runtime.cache_dir() / ROLE.cache).is_dir()  # its masks are cached like every backend's


def test_a_reference_no_criterion_reads_is_said_to_decide_nothing(fourth_role):
    result, out = _run(scratch_dir(), VALID_CRITERIA)
    assert result.decision.unused == (NAME,)
    report = (out / "report.md").read_text()
    assert f"**The {markdown_text(NAME)} plays no part in this decision.**" in report
    assert f'id="{NAME}-unused"' in (out / "report.html").read_text()
    assert not (out / f"forest-{NAME}.png").exists()  # no criterion against it: no threshold to plot


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
