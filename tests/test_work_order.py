"""Inconclusive becomes a work order: the unlabelled flagged rows of each undecided class, in labelling order,
in the report and label_next.csv (sanitised), from a real snapshot."""

import csv
import io
import json
import sys

import numpy as np
import pytest

from eval.decision.decide import decide
from eval.roles import BASELINE, CANDIDATE
from eval.decision.intervals import with_intervals
from eval.decision.work_order import work_orders
from eval.gate import GateResult
from eval.inputs import snapshot
from eval.inputs.criteria import load_criteria
from eval.report import render
from eval.scoring.scores import aggregate, image_score
from tests.support import DEMO_REPORT, VALID_CRITERIA, criteria_file, crop_run, write_snapshot

TRUTH = np.zeros((8, 8), bool)
TRUTH[2:6, 2:6] = True


@pytest.fixture()
def undecided(tmp_path):
    """Two glossy images measured (too few for `regress[gloss]`: insufficient data), studio_b with none;
    four unlabelled rows: two glossy (one also studio B), one studio B, one in no class; a non-human one."""
    rows = [crop_run("g1", "glossy"), crop_run("g2", "shiny")]
    unlabelled = [crop_run("u3", "so glossy"), crop_run("u1", "=HYPERLINK(\"x\") shiny\nnext line", annotation=None),
                  crop_run("u2", "nothing", annotation=None), crop_run("u0", "glossy", annotation=None)]
    unlabelled[0]["annotation"] = None
    unlabelled[3]["source"]["deployment"] = "studio-b"
    root = write_snapshot(tmp_path, rows=[*rows, *unlabelled, crop_run("m1", "glossy", source_type="machine")])
    loaded = snapshot.load_snapshot(root)
    criteria = load_criteria(criteria_file(VALID_CRITERIA.replace("min_images: 2", "min_images: 3")))
    scores = [image_score(b, "flagged", i.image_id, criteria.classify(i.notes, dict(i.source)), TRUTH, TRUTH, 0.8)
              for i in loaded.items if i.corpus == "flagged" for b in (BASELINE, CANDIDATE)]
    decision = decide(criteria, with_intervals(aggregate(scores), scores, 0.95), 0)
    return loaded, criteria, decision


def test_rows_of_each_undecided_class_in_labelling_order(undecided):
    loaded, criteria, decision = undecided
    assert [r.row_id for r in loaded.unlabelled] == ["u0", "u1", "u2", "u3"]  # not m1: machine rows need no label
    orders = {o.criterion: o for o in work_orders(decision, criteria, loaded.unlabelled)}
    assert set(orders) == {"pass_rate", "regress[gloss]", "regress[studio_b]"}
    # u0 is glossy AND studio B: it counts toward all three undecided criteria, so it comes first.
    assert [r.row_id for r in orders["regress[gloss]"].rows] == ["u0", "u1", "u3"]
    assert [r.row_id for r in orders["regress[studio_b]"].rows] == ["u0"]
    assert [r.row_id for r in orders["pass_rate"].rows] == ["u0", "u1", "u3", "u2"]
    assert orders["regress[gloss]"].more_images == 1 and orders["regress[studio_b]"].more_images == 3


def test_label_next_csv_and_report_section_are_sanitised(undecided):
    loaded, criteria, decision = undecided
    result = _result(loaded, criteria, decision)
    rows = list(csv.DictReader(io.StringIO(render.label_next_csv(result).decode())))
    assert tuple(rows[0]) == render.LABEL_NEXT_FIELDS
    u1 = next(r for r in rows if r["row_id"] == "u1")
    assert u1["notes"].startswith("'=HYPERLINK") and "\n" not in u1["notes"]  # no formula, one line
    report = render.report_markdown(result, "t").decode()
    section = report.split("## Label next", 1)[1].split("\n## ", 1)[0]
    assert "**regress\\[gloss\\]** (insufficient_data; about 1 more labelled image(s) would decide it)" in section
    assert "- u1 (images/u1.png): =HYPERLINK(\"x\") shiny next line\n" in section  # one line: no forged list item
    files = render.render_all(result, "t")
    assert render.LABEL_NEXT_FILE in files and b'id="label-next"' in files["report.html"]


def _result(loaded, criteria, decision):
    provenance = json.loads((DEMO_REPORT / "metrics.json").read_text())["provenance"]
    return GateResult(provenance, (), (), (), loaded.exclusions, decision, (), (), False, (),
                      work_orders=work_orders(decision, criteria, loaded.unlabelled))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
