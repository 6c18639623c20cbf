"""A gate run as JUnit XML: the format every CI system shows as a test report.

One testsuite per run, one testcase per criterion result (in metrics.json's order). A passed criterion is a
passed test; every other status is a `<failure>` whose `type` is the status (`fail`, `inconclusive`,
`insufficient_data`), so a CI dashboard separates "the candidate is worse" from "the data cannot tell yet";
its message is the criterion's summary and its body the numbers, with the images an inconclusive one needs. The suite's
properties carry what identifies the run: recommendation and deciding criterion, checkpoint, dataset and criteria
digests, run key and harness version.

It reads a published run's metrics.json document (never the in-memory result), so what CI shows is what the
report folder holds. The XML is deterministic (no timestamps, no host names, times 0): same run, same bytes.
Its shape is checked against `junit.xsd` beside this file in the tests.
"""

import xml.etree.ElementTree as ET

from eval import sanitise

SUITE_NAME = "promotion-gate"
PASS = "pass"


def _properties(metrics):
    provenance = metrics["provenance"]
    deciding = metrics["deciding_criterion"]
    return {
        "recommendation": metrics["recommendation"],
        "deciding_criterion": deciding["id"],
        "checkpoint.name": provenance["checkpoint"]["name"],
        "checkpoint.sha256": provenance["checkpoint"]["sha256"],
        "dataset.version": provenance["dataset"]["version"],
        "dataset.sha256": provenance["dataset"]["sha256"],
        "criteria.sha256": provenance["criteria"]["sha256"],
        "criteria.example_values": str(provenance["criteria"]["example_values"]).lower(),
        "run_key": provenance["run_key"],
        "harness_version": provenance["harness_version"],
    }


def _failure_details(result):
    """The failure's body: the numbers a dashboard cannot show in a one-line message."""
    interval = result.get("interval")
    lines = [f"status: {result['status']}", f"observed: {result['observed']}", f"threshold: {result['threshold']}",
             f"images: {result['n_images']} ({result['n_empty_truth']} with an empty ground truth)"]
    if interval:
        lines.append(f"one-sided {interval['level']} bounds: [{interval['lower']}, {interval['upper']}] "
                     f"({interval['method']})")
    if result.get("images_needed"):
        lines.append(f"images needed to decide: about {result['images_needed']}")
    return "\n".join(sanitise.text(line) for line in lines)


def junit_xml(metrics):
    """The JUnit XML bytes of a run, from its metrics.json document (as loaded)."""
    results = metrics["criteria_results"]
    failures = sum(r["status"] != PASS for r in results)
    counts = {"tests": str(len(results)), "failures": str(failures), "errors": "0", "skipped": "0", "time": "0"}
    suites = ET.Element("testsuites", {"name": SUITE_NAME, **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": sanitise.text(_suite_title(metrics)), **counts})
    properties = ET.SubElement(suite, "properties")
    for name, value in _properties(metrics).items():
        ET.SubElement(properties, "property", {"name": name, "value": sanitise.text(value)})
    for result in results:
        case = ET.SubElement(suite, "testcase", {
            "classname": sanitise.text(f"{SUITE_NAME}.{result['corpus']}.{result['failure_class']}"),
            "name": sanitise.text(result["id"]), "time": "0"})
        if result["status"] != PASS:
            failure = ET.SubElement(case, "failure", {"type": result["status"],
                                                      "message": sanitise.text(result["summary"])})
            failure.text = _failure_details(result)
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"


def _suite_title(metrics):
    provenance = metrics["provenance"]
    return f"{SUITE_NAME}: {provenance['checkpoint']['name']} on {provenance['dataset']['version']}"
