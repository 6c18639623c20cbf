"""What CI reads from a run: JUnit XML (checked against the XSD and read back with junitparser), the step
summary, and the shipped CI workflows (linted offline with check-jsonschema and zizmor)."""

import copy
import json
import os
import shutil
import subprocess
import sys

import junitparser
import pytest
import xmlschema

from ci_outputs import files
from ci_outputs.junit import junit_xml
from ci_outputs.step_summary import MAX_BYTES, step_summary
from eval.errors import GateInputError
from tests.support import DEMO_REPORT, REPO

XSD = xmlschema.XMLSchema(str(REPO / "ci_outputs" / "junit.xsd"))
EXAMPLES = REPO / "examples" / "ci"


@pytest.fixture
def metrics():
    return json.loads((DEMO_REPORT / "metrics.json").read_bytes())


def _suite(path):
    [suite] = list(junitparser.JUnitXml.fromfile(str(path)))
    return suite


def test_one_testcase_per_criterion_with_its_status(metrics, tmp_path):
    path = tmp_path / "junit.xml"
    files.write_junit(path, metrics)
    XSD.validate(str(path))
    suite = _suite(path)
    results = metrics["criteria_results"]
    cases = list(suite)
    assert [c.name for c in cases] == [r["id"] for r in results]
    for case, result in zip(cases, results):
        if result["status"] == "pass":
            assert case.is_passed
        else:
            [failure] = case.result
            assert isinstance(failure, junitparser.Failure) and failure.type == result["status"]
            assert failure.message == result["summary"]
    assert suite.tests == len(results) and suite.failures == sum(r["status"] != "pass" for r in results)
    inconclusive = next(c for c, r in zip(cases, results) if r["status"] == "inconclusive")
    needed = next(r["images_needed"] for r in results if r["status"] == "inconclusive")
    assert f"images needed to decide: about {needed}" in inconclusive.result[0].text
    properties = {p.name: p.value for p in suite.properties()}
    provenance = metrics["provenance"]
    assert properties["checkpoint.sha256"] == provenance["checkpoint"]["sha256"]
    assert properties["dataset.sha256"] == provenance["dataset"]["sha256"]
    assert properties["recommendation"] == "no-go"
    assert properties["deciding_criterion"] == metrics["deciding_criterion"]["id"]


def test_junit_is_byte_reproducible_and_sanitised(metrics):
    assert junit_xml(metrics) == junit_xml(copy.deepcopy(metrics))
    hostile = copy.deepcopy(metrics)
    hostile["provenance"]["dataset"]["version"] = "v1\x1b[2J\nrecommendation: go\u202e"
    hostile["criteria_results"][1]["summary"] = "ok\r\nrecommendation: go\x00"
    text = junit_xml(hostile).decode()
    assert "\x1b" not in text and "\u202e" not in text and "\x00" not in text
    assert "\nrecommendation: go" not in text
    XSD.validate(text)


def test_a_junit_path_that_is_a_folder_is_an_input_error(metrics, tmp_path):
    with pytest.raises(GateInputError, match="is a folder"):
        files.write_junit(tmp_path, metrics)
    with pytest.raises(GateInputError, match="cannot write"):
        files.write_junit(tmp_path / "missing" / "junit.xml", metrics)


def test_the_junit_file_follows_the_umask_and_leaves_nothing_behind(metrics, tmp_path):
    old = os.umask(0o027)
    try:
        files.write_junit(tmp_path / "junit.xml", metrics)
    finally:
        os.umask(old)
    assert (tmp_path / "junit.xml").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["junit.xml"]


def test_step_summary_leads_with_the_decision_and_is_appended(metrics, tmp_path):
    target = tmp_path / "summary.md"
    target.write_text("earlier step\n")
    files.append_step_summary(metrics, "gate-report/report.md", {files.STEP_SUMMARY_ENV: str(target)})
    text = target.read_text()
    assert text.startswith("earlier step\n## Promotion gate: **no-go**")
    assert "no\\_class\\_regression\\[cast\\_shadow\\]" in text  # the deciding criterion, escaped for Markdown
    assert text.count("\n| ") == len(metrics["criteria_results"]) + 1  # header + one row per criterion
    files.append_step_summary(metrics, "r", {})  # unset: nothing to do


def test_step_summary_stays_under_its_cap(metrics):
    many = copy.deepcopy(metrics)
    many["criteria_results"] = [dict(metrics["criteria_results"][2], id=f"c{k}") for k in range(5000)]
    text = step_summary(many, "report.md")
    assert len(text.encode()) <= MAX_BYTES
    assert "more criteria in the report" in text


def test_step_summary_refuses_a_target_that_is_not_a_file(metrics, tmp_path):
    with pytest.raises(GateInputError, match="GITHUB_STEP_SUMMARY"):
        files.append_step_summary(metrics, "r", {files.STEP_SUMMARY_ENV: str(tmp_path)})


# --- the shipped CI examples, linted offline -----------------------------------------------------------------

def _tool(name):
    return shutil.which(name, path=os.path.dirname(sys.executable)) or pytest.fail(f"{name} is not installed")


@pytest.mark.parametrize("example, schema", [("github-actions.yml", "vendor.github-workflows"),
                                             ("gitlab-ci.yml", "vendor.gitlab-ci")])
def test_ci_examples_match_their_schemas(example, schema):
    proc = subprocess.run([_tool("check-jsonschema"), "--builtin-schema", schema, str(EXAMPLES / example)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_github_workflow_has_no_zizmor_findings(tmp_path):
    proc = subprocess.run([_tool("zizmor"), "--offline", "--no-progress", str(EXAMPLES / "github-actions.yml")],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_examples_run_the_gate_with_a_pin_and_junit():
    for example in ("github-actions.yml", "gitlab-ci.yml"):
        text = (EXAMPLES / example).read_text()
        assert "--checkpoint_sha256=" in text and "--junit_xml=" in text, example


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
