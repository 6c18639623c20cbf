"""The report a reviewer reads: escaped user text, yes/no checks, decision-first tables, listed rows, panels, and
the forest plot (deterministic bytes)."""

import dataclasses
import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

from eval.decision.decide import COMPLETENESS_ID, decide
from eval.decision.intervals import with_intervals
from eval.gate import GateResult, NotEvaluated
from eval.inputs.criteria import Criterion, load_criteria
from eval.inputs.snapshot import Exclusion
from eval.measures import Measure
from eval.report import gallery, render
from eval.report.forest import COLOURS, ForestRow, render_forest
from eval.report.render import markdown_text
from eval.roles import BASELINE, CANDIDATE, INCUMBENT
from eval.scoring.class_audit import audit_classes
from eval.scoring.scores import aggregate, image_score
from tests.support import CRITERIA, DEMO_REPORT, VALID_CRITERIA, criteria_file, gate_result


@pytest.mark.parametrize("raw, rendered", [
    ("<b>bold</b>", "&lt;b&gt;bold&lt;/b&gt;"),
    ("a | b", "a \\| b"),
    ("**x** _y_ `z`", "\\*\\*x\\*\\* \\_y\\_ \\`z\\`"),
    ("![img](http://x)", "!\\[img\\](http://x)"),
    ("line\nbreak", "line break"),
    ("&amp;", "&amp;amp;"),
])
def test_markdown_text_escapes(raw, rendered):
    assert markdown_text(raw) == rendered


TRUTH = np.zeros((8, 8), bool)
TRUTH[2:6, 2:6] = True
CUT = TRUTH.copy()
CUT[2:6, 5] = False  # mask IoU 0.75


def _result(not_evaluated=(), incumbent=False, criteria_text=VALID_CRITERIA):
    """Flagged images in two classes: the candidate regresses on `gloss` (that criterion decides), not on
    `studio_b`; one image is in no class, which no criterion names. `incumbent`: it ran too (as rembg)."""
    criteria = load_criteria(criteria_file(criteria_text))
    rows = [("a1", "glossy", {}), ("a2", "so shiny", {}), ("b1", "x", {"deployment": "studio-b"}),
            ("b2", "y", {"deployment": "studio-b"}), ("c1", "<b>odd</b> **note**", {})]
    scores = []
    for image_id, notes, source in rows:
        classes = criteria.classify(notes, source)
        scores += [image_score(BASELINE, "flagged", image_id, classes, TRUTH, TRUTH, 0.8),
                   image_score(CANDIDATE, "flagged", image_id, classes, TRUTH,
                               CUT if image_id.startswith("a") else TRUTH, 0.8)]
        scores += [image_score(INCUMBENT, "flagged", image_id, classes, TRUTH, TRUTH, 0.8)] if incumbent else []
    aggregates = with_intervals(aggregate(scores), scores, criteria.decision_rule.level)
    provenance = json.loads((DEMO_REPORT / "metrics.json").read_text())["provenance"]
    exclusions = (Exclusion("cr|<i>9</i>", "no ground-truth annotation"),
                  Exclusion("cr-8", "source.type is not 'human'"))
    decision = decide(criteria, aggregates, len(not_evaluated))
    return GateResult(provenance, tuple(scores), aggregates, tuple(not_evaluated), exclusions, decision, (), (),
                      False, audit_classes(criteria, rows))


def _report(result):
    return render.report_markdown(result, "t").decode()


def _criteria_row(report, criterion_id):
    return next(line for line in report.splitlines() if line.startswith(f"| {criterion_id} |")).split(" | ")


def test_yes_no_check_renders_as_yes_no_not_numbers():
    complete = _criteria_row(_report(_result()), COMPLETENESS_ID)
    assert complete[2:6] == ["yes", "yes", "", "5"]  # observed, threshold, margin, n (images evaluated)
    incomplete = _result((NotEvaluated("flagged", "z9", "cannot decode image"),))
    assert _criteria_row(_report(incomplete), COMPLETENESS_ID)[2:4] == ["no", "yes"]
    assert incomplete.decision.deciding.id == COMPLETENESS_ID
    assert _criteria_row(_report(_result()), "pass_rate")[2:5] == ["0.600", "0.500", "0.100"]  # numbers stay


def test_an_incumbent_no_criterion_reads_is_said_to_decide_nothing():
    """Regression: an incumbent ran, every table showed it, and nothing said it played no part."""
    note = "The incumbent plays no part in this decision."
    assert note in _report(_result(incumbent=True))
    assert b'id="incumbent-unused"' in render.render_all(_result(incumbent=True), "t")["report.html"]
    assert note not in _report(_result())
    vs_incumbent = VALID_CRITERIA + ("  - {id: inc, kind: max_mean_iou_regression, corpus: flagged, "
                                     "failure_class: all, threshold: 0.5, vs: incumbent}\n")
    read = _result(incumbent=True, criteria_text=vs_incumbent)
    assert read.decision.unused == () and note not in _report(read)


def _table_rows(report, heading):
    section = report.split(heading, 1)[1].split("\n## ", 1)[0]
    return [line.split(" | ")[:3] for line in section.splitlines() if line.startswith("| flagged |")]


def test_per_class_tables_put_what_decided_first_and_show_n():
    result = _result()
    assert result.decision.deciding.id == "regress[gloss]"
    report = _report(result)
    for heading in ("mask IoU and Boundary IoU", "mask IoU distribution", "pass rate, pixel precision"):
        rows = _table_rows(report, heading)
        assert [r[1] for r in rows] == ["gloss", "all", "studio\\_b", "unclassified"], heading
        assert [r[2] for r in rows] == ["2", "5", "2", "1"]  # n beside the means
    # gloss: the deciding (failed) criterion's class; then the passes, tightest margin first (pass_rate on
    # flagged/all and regress[studio_b] both by 0.1, in file order); unclassified, which no criterion names, last.


def test_excluded_and_not_evaluated_rows_are_listed_by_id_and_reason_collapsed():
    report = _report(_result((NotEvaluated("flagged", "z|9", "cannot decode <image>"),)))
    assert "## Images not evaluated (1)" in report
    assert "- flagged / z\\|9: cannot decode &lt;image&gt;" in report
    assert "## Rows excluded from evaluation (2)" in report
    details = report.split("## Rows excluded from evaluation", 1)[1].split("<details>", 1)[1].split("</details>", 1)[0]
    assert "- cr\\|&lt;i&gt;9&lt;/i&gt;: no ground-truth annotation" in details
    assert "- cr-8: source.type is not 'human'" in details
    assert "None: every eligible image" in _report(_result())


def test_class_audit_in_the_report_escapes_notes_and_bolds_the_match():
    report = _report(_result())
    audit = report.split("## Failure-class mapping", 1)[1]
    assert "<summary>gloss 2, studio\\_b 2, unclassified 1</summary>" in audit
    assert "  - a2 (notes): so **shiny**" in audit
    assert "  - b1 (source): x" in audit
    assert "  - c1 (none): &lt;b&gt;odd&lt;/b&gt; \\*\\*note\\*\\*" in audit
    assert report.rstrip("\n").splitlines()[-1].startswith("recommendation: no-go")
    document = json.loads(render.metrics_json(_result()))
    assert [a["failure_class"] for a in document["failure_class_audit"]] == ["gloss", "studio_b", "unclassified"]


def _panel(baseline_boundary=0.5, height=96, width=128):
    truth = np.zeros((height, width), bool)
    truth[height // 4:3 * height // 4, width // 4:3 * width // 4] = True
    base = image_score(BASELINE, "test", "p", (), truth, truth, 0.8)
    cand = image_score(CANDIDATE, "test", "p", (), truth, np.roll(truth, 3, axis=1), 0.8)
    case = gallery.make_case({BASELINE: dataclasses.replace(base, boundary_iou=baseline_boundary), CANDIDATE: cand},
                             np.full((height, width, 3), 128, np.uint8), truth,
                             {BASELINE: truth, CANDIDATE: np.roll(truth, 3, axis=1)})
    return Image.open(io.BytesIO(gallery.render_panel(case))).convert("RGB")


def test_gallery_panel_is_tall_and_carries_legend_and_both_ious():
    panel = np.asarray(_panel())
    assert panel.shape[0] >= gallery.THUMB_HEIGHT + 40  # tiles at least 256 px high, plus captions and legend
    legend = panel[-30:]
    for colour in gallery._COLORS.values():  # every legend swatch is drawn in the PNG itself
        assert (legend == colour).all(axis=-1).any(), colour
    # the captions draw the numbers: a different Boundary IoU changes the caption's pixels, not the tiles
    other = np.asarray(_panel(baseline_boundary=0.25))
    differs = np.nonzero((panel != other).any(axis=(1, 2)))[0]
    assert differs.size and differs.max() < 40
    tall = _panel(height=600, width=300)  # large photos are shrunk, small ones grown, to the same height
    assert tall.size[1] == panel.shape[0]


def test_forest_plot_is_a_deterministic_png_without_metadata():
    rows = [ForestRow("test / all (n=24)", -0.08, -0.1, -0.06, 0.05, "fail"),
            ForestRow("flagged / gloss (n=6)", -0.01, -0.06, 0.02, 0.05, "inconclusive"),
            ForestRow("flagged / all (n=30)", 0.01, -0.01, 0.03, None, None)]
    first, second = render_forest(rows, 0.95), render_forest(rows, 0.95)
    assert first == second and first[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(first))
    assert set(image.info) <= {"dpi"}  # no Software, no date: nothing that changes between runs
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    for status in ("fail", "inconclusive"):  # each row drawn in its outcome's colour
        colour = tuple(int(COLOURS[status][i:i + 2], 16) for i in (1, 3, 5))
        assert (pixels == colour).all(axis=1).any(), status
    assert render_forest(rows[:1], 0.95) != first


def test_forest_rows_show_empty_classes_and_every_criterions_outcome():
    """Regression: a class with no image (its insufficient data blocks the go) had no row, and flagged/all,
    where a pass-rate criterion sits, was drawn as "no criterion"."""
    empty_class = VALID_CRITERIA.replace("failure_classes:\n", "failure_classes:\n  - id: lids\n    description: "
                                         "lids\n    match: {notes_any: ['lid']}\n")
    empty_class = empty_class.replace("threshold: 0.5}", "threshold: 0.9}")  # the pass rate 0.6 now fails
    rows = {r.label: r for r in render.forest_rows(_result(criteria_text=empty_class))}
    assert rows["flagged / lids (n=0)"].status == "insufficient_data" and rows["flagged / lids (n=0)"].estimate is None
    assert rows["flagged / all (n=5)"].status == "fail" and rows["flagged / all (n=5)"].threshold is None
    assert rows["flagged / unclassified (n=1)"].status is None
    assert rows["flagged / gloss (n=2)"].status == "fail" and rows["flagged / gloss (n=2)"].threshold == 0.1
    png = render_forest(list(rows.values()), 0.95)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_confidence_report_states_the_floor_and_the_measured_promise():
    confident = VALID_CRITERIA.replace("schema_version: 1", "schema_version: 2\ndecision_rule: {kind: confidence, "
                                       "level: 0.95}")
    report = _report(_result(criteria_text=confident))
    assert "| pass_rate | rate | 5 |" in report and "| regress | mean | 5 |" in report  # 0.05^(1/5) >= 0.5
    assert "What this rule can and cannot promise" in report and "11%, 9% and 8%" in report
    assert "What this rule can and cannot promise" not in _report(_result())  # the point rule promises nothing


def test_forest_greys_are_distinct_and_no_cell_says_minus_zero():
    grey = {k: np.array([int(COLOURS[k][i:i + 2], 16) for i in (1, 3, 5)]) for k in ("insufficient_data", None)}
    assert np.abs(grey["insufficient_data"] - grey[None]).sum() > 150
    interval = render.template_environment().filters["interval"]
    assert render.template_environment().filters["signed"](-0.0004) == "+0.000"
    assert interval(dataclasses.make_dataclass("I", ["lower", "upper"])(-0.0003, 0.04)) == "[0.000, 0.040]"
    assert "-0.000" not in _report(_result())
    assert "nothing worth calling an improvement" in _report(_result())  # the gallery has no pick



def test_metrics_json_names_a_v3_measure_and_keeps_the_v1_v2_record_as_it_was():
    """A version 1/2 criterion's record is its `kind` alone (the committed reports' bytes); a version 3
    criterion has no kind, so its record names the metric, statistic and bound."""
    scores = [image_score(b, "test", f"i{i}", (), np.ones((2, 2), bool), np.ones((2, 2), bool), 0.8)
              for i in range(3) for b in (BASELINE, CANDIDATE)]
    old = Criterion.of_kind("old", "max_mean_iou_regression", "test", "all", 0.1)
    new = Criterion("new", Measure("precision", "mean", "min"), "test", "all", 0.9)
    criteria = dataclasses.replace(load_criteria(CRITERIA),
                                   criteria=(old, new))
    results = decide(criteria, aggregate(scores), 0).results
    old_record, new_record = (render.criterion_record(r) for r in results[1:])
    assert old_record["kind"] == "max_mean_iou_regression" and "measure" not in old_record
    assert not {"metric", "statistic", "bound"} & set(old_record)
    assert new_record["kind"] is None and "measure" not in new_record
    assert (new_record["metric"], new_record["statistic"], new_record["bound"]) == ("precision", "mean", "min")
    # and the file the gate writes holds it: metrics.json is checked against its schema as it is written
    document = json.loads(render.metrics_json(gate_result(scores, criteria)))
    assert [r.get("metric") for r in document["criteria_results"]] == [None, None, "precision"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
