"""Rendering a GateResult: metrics.json, per_image.csv, report.md and gallery PNGs (as bytes).

The JSON is the record of the decision: sorted keys, rounded floats, no timestamps or machine paths,
so the same inputs give the same bytes. The Markdown comes from templates/report.md.j2; everything a
user wrote (CropRun notes and ids, file names) goes through eval.sanitise (the `md` filter) so it cannot
forge lines or inject Markdown or HTML into the report; per_image.csv cells go through its `csv_cell`.
"""

import csv
import dataclasses
import io
import json

import jinja2

from eval import roles, sanitise
from eval.decision.decide import COMPLETENESS_ID
from eval.inputs.criteria import CONFIDENCE
from eval.measures import MAX, MEAN, RATE, Measure, min_images_to_pass, regression_name, value_name
from eval.report import artifacts, forest
from eval.report import gallery as gallery_lib
from eval.report import html
from eval.roles import BASELINE, CANDIDATE
from eval.scoring import class_audit
from eval.scoring.scores import round_metric

SCHEMA = "pottery-gate-metrics/v2"
markdown_text = sanitise.markdown  # the name callers used before eval.sanitise existed


def criterion_record(result):
    """A CriterionResult as metrics.json holds it: a schema_version 3 criterion (no `kind`) also names its
    measure's metric, statistic and bound; a version 1 or 2 criterion's `kind` says them."""
    record = dataclasses.asdict(result)
    measure = record.pop("measure")
    if result.kind is None and measure:
        record.update({k: measure[k] for k in ("metric", "statistic", "bound")})
    return record


def _decision_dict(decision):
    return {"recommendation": decision.recommendation, "deciding_criterion": criterion_record(decision.deciding),
            "decision_rule": dataclasses.asdict(decision.rule)}


def _as_written(value):
    """`value` with every float rounded as the files record it (round_metric); the decision used them unrounded."""
    if isinstance(value, float):
        return round_metric(value)
    if isinstance(value, dict):
        return {key: _as_written(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_written(item) for item in value]
    return value


def metrics_document(result):
    """The JSON-ready metrics table (see README, "metrics.json schema"), floats rounded."""
    return _as_written({
        "schema": SCHEMA,
        **_decision_dict(result.decision),
        "example_criteria_values": result.example_values,
        "provenance": result.provenance,
        "criteria_results": [criterion_record(r) for r in result.decision.results],
        "aggregates": [dataclasses.asdict(a) for a in result.aggregates],
        "per_image": [dataclasses.asdict(s) for s in result.scores],
        "not_evaluated": [dataclasses.asdict(n) for n in result.not_evaluated],
        "excluded_rows": [dataclasses.asdict(e) for e in result.exclusions],
        "failure_class_audit": [dataclasses.asdict(a) for a in result.class_audit],
    })


def metrics_json(result):
    """The bytes of metrics.json, checked as every reader will check them (eval.report.artifacts): a run that
    would write a document its own loader refuses fails (exit 2) instead of publishing it."""
    # allow_nan=False: a NaN that got past every check fails the run (exit 2) instead of writing invalid JSON.
    data = (json.dumps(metrics_document(result), indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False)
            + "\n").encode()
    artifacts.check_metrics(artifacts.parse_json(data, "metrics.json"), "metrics.json (as this run wrote it)")
    return data


def per_image_csv(result):
    buffer = io.StringIO()
    fields = [f.name for f in dataclasses.fields(result.scores[0])] if result.scores else ["source_backend"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for s in result.scores:
        row = _as_written(dataclasses.asdict(s))
        row["failure_classes"] = ";".join(s.failure_classes)
        writer.writerow({name: sanitise.csv_cell(value) for name, value in row.items()})
    return buffer.getvalue().encode()


LABEL_NEXT_FILE = "label_next.csv"
LABEL_NEXT_FIELDS = ("criterion", "failure_class", "status", "more_images", "rank", "row_id", "image", "notes")
LABEL_NEXT_SHOWN = 5  # rows per work order the report lists; label_next.csv has them all


def label_next_csv(result):
    """Every work order's rows (eval.decision.work_order), one line per (criterion, row) in labelling order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LABEL_NEXT_FIELDS)
    for order in result.work_orders:
        for rank, row in enumerate(order.rows, 1):
            cells = (order.criterion, order.failure_class, order.status, order.more_images, rank, row.row_id,
                     row.image, row.notes)
            writer.writerow(["" if cell is None else sanitise.csv_cell(cell) for cell in cells])
    return buffer.getvalue().encode()


def _decision_order(decision):
    """Sort key for (corpus, failure class) rows: those of the deciding criterion first, then of the other
    failed ones, then of the passed ones (Decision.by_relevance), then the rest by name."""
    rank = {}
    for r in decision.by_relevance:
        rank.setdefault((r.corpus, r.failure_class), len(rank))
    return lambda row: (rank.get((row["corpus"], row["failure_class"]), len(rank)), row["corpus"],
                        row["failure_class"])


def _improvement(intervals, reference):
    """candidate - `reference` mean IoU interval: the regression interval (reference - candidate) turned round."""
    regression = intervals.get(regression_name("mask_iou", reference))
    return regression and dataclasses.replace(regression, lower=-regression.upper, upper=-regression.lower)


def _comparator_columns(name, other, cand):
    """A comparator's cells of a side-by-side row. Every backend scores the images the candidate does (see
    eval.gate.score_items), so `other` has an aggregate wherever the candidate has one."""
    return {"name": name, "iou": other.mask_iou["mean"], "delta_iou": cand.mask_iou["mean"] - other.mask_iou["mean"],
            "delta_ci": _improvement(cand.intervals, name),
            "pass": other.pass_rate, "delta_pass": cand.pass_rate - other.pass_rate}


def _side_by_side(result):
    """Rows of (corpus, class, n, rembg and candidate metrics, deltas, and the cells of every comparator:
    eval.roles.comparators), ordered by the decision's needs."""
    table = {a.key: a for a in result.aggregates}
    comparators = roles.comparators(result.decision.ran)
    rows = []
    for (backend, corpus, failure_class), cand in sorted(table.items()):
        base = table.get((BASELINE, corpus, failure_class))
        if backend != CANDIDATE or base is None:
            continue
        rows.append({
            "vs": [_comparator_columns(name, table[name, corpus, failure_class], cand) for name in comparators],
            "corpus": corpus, "failure_class": failure_class, "n": cand.n_images,
            "base_iou": base.mask_iou["mean"], "cand_iou": cand.mask_iou["mean"],
            "delta_iou": cand.mask_iou["mean"] - base.mask_iou["mean"],
            "cand_iou_ci": cand.intervals.get(value_name("mask_iou", MEAN)),
            "delta_ci": _improvement(cand.intervals, BASELINE),
            "cand_pass_ci": cand.intervals.get(value_name("passed", RATE)),
            "base_median": base.mask_iou["median"], "cand_median": cand.mask_iou["median"],
            "base_p10": base.mask_iou["p10"], "cand_p10": cand.mask_iou["p10"],
            "base_p90": base.mask_iou["p90"], "cand_p90": cand.mask_iou["p90"],
            "base_pass": base.pass_rate, "cand_pass": cand.pass_rate,
            "delta_pass": cand.pass_rate - base.pass_rate,
            "base_precision": base.precision_mean, "cand_precision": cand.precision_mean,
            "base_recall": base.recall_mean, "cand_recall": cand.recall_mean,
            "base_bbox": base.bbox_iou_secondary_mean, "cand_bbox": cand.bbox_iou_secondary_mean,
            "base_boundary": base.boundary_iou["mean"], "cand_boundary": cand.boundary_iou["mean"],
            "delta_boundary": cand.boundary_iou["mean"] - base.boundary_iou["mean"],
        })
    return sorted(rows, key=_decision_order(result.decision))


def gallery_entries(cases, kind):
    return [{"file": f"gallery/{case.file_name(kind, rank)}", "case": case} for rank, case in enumerate(cases, 1)]


def _exclusion_summary(exclusions):
    counts = {}
    for e in exclusions:
        counts[e.reason] = counts.get(e.reason, 0) + 1
    return sorted(counts.items())


def _no_negative_zero(value):
    """`value` rounded to the 3 decimals a report shows, so that -0.0004 prints as 0.000, never -0.000."""
    return round(value, 3) + 0.0


def template_environment(autoescape=False):
    """The templates' jinja environment and number filters; HTML templates ask for `autoescape`."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("eval.report", "templates"), autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["md"] = sanitise.markdown
    env.filters["line"] = sanitise.text
    env.filters["f3"] = lambda v: v if isinstance(v, str) else "n/a" if v is None else f"{_no_negative_zero(v):.3f}"
    env.filters["signed"] = lambda v: f"{_no_negative_zero(v):+.3f}"
    env.filters["interval"] = lambda i: ("n/a" if i is None else
                                         f"[{_no_negative_zero(i.lower):.3f}, {_no_negative_zero(i.upper):.3f}]")
    return env


def rule_text(rule):
    """One paragraph saying how the criteria table was decided."""
    bounds = (f"Intervals are one-sided {rule.level:.0%} bounds (together a {2 * rule.level - 1:.0%} interval): "
              "Student's t at a calibrated tail over images for means, paired for a regression vs rembg (and "
              "the incumbent), Clopper-Pearson for pass rates.")
    if rule.kind == CONFIDENCE:
        holm = " Holm's correction applies to the fail verdicts." if rule.holm else ""
        return (f"Decision rule: **confidence** at level {rule.level}. Each criterion is a one-sided test on its "
                "interval: it passes when the bound on the unfavourable side is within the threshold, fails when "
                "the favourable bound is beyond it, and is otherwise **inconclusive**, which is never a go; below "
                "the smallest number of images at which its bound can pass (table below) it is insufficient "
                f"data.{holm} {bounds}")
    return (f"Decision rule: **point** (the observed value against the threshold; criteria schema_version 1 "
            f"or `decision_rule: {{kind: point}}`). {bounds} They are shown, not used.")


# What the confidence rule can and cannot promise, with the rates bench:decision_quality measured at level
# 0.95 and margin 0.05 (2,000 simulated corpora per cell; bench/README.md has the tables).
PROMISE = (
    "**What this rule can and cannot promise.** Measured by `bench:decision_quality` at level 0.95 (not the "
    "nominal rate): a candidate whose true mean-IoU regression is exactly the allowed 0.05 gets a go at most "
    "5.0% of the time on the demo's test-corpus differences at every n from 5 to 400, while one with no "
    "regression gets a go 94% of the time from 25 images (37% at 5, 60% at 10). On heavier tails it cannot "
    "keep the 5%: 11%, 9% and 8% at n = 5, 10 and 25 on the demo's flagged corpus (a few images fail badly) "
    "and 17% at n = 5 on a bimodal population, because a small sample that happens to miss the bad images "
    "looks both better and less spread than the truth; from 50 images it is at most 4%. A sample without "
    "spread (every image equal) is never a pass, so a rare catastrophic miss the sample does not contain "
    "cannot be hidden by it; the price is that such a candidate is never a go. Bounds valid for every "
    "population exist (betting bounds for bounded variables) but need about 100 images before a harmless "
    "candidate gets a go.")


def _html_rule_text(rule):
    """report.html's decision-rule paragraph: report.md's, with the promise under the confidence rule."""
    promise = f" {PROMISE}" if rule.kind == CONFIDENCE else ""
    return (rule_text(rule) + promise).replace("**", "")


def _min_images_rows(criteria_results, rule):
    """(criterion id, statistic, smallest n at which it can pass) per criterion, for the report's table."""
    rows = {}
    for r in criteria_results:
        if r.measure is None or rule is None or rule.kind != CONFIDENCE:
            continue
        base = r.id.split("[", 1)[0]
        rows.setdefault(base, (base, r.measure.statistic, min_images_to_pass(
            r.measure.statistic, r.measure.bound, r.threshold, rule.level)))
    return list(rows.values())


def report_markdown(result, title):
    best = gallery_entries(result.gallery_best, "improvement")
    worst = gallery_entries(result.gallery_worst, "regression")
    text = template_environment().get_template("report.md.j2").render(
        title=title, result=result, decision=result.decision, prov=result.provenance,
        rule_text=rule_text(result.decision.rule),
        forests=[(reference, name) for reference, name, _ in forest_plots(result)],
        rows=_side_by_side(result), best=best, worst=worst, exclusions=_exclusion_summary(result.exclusions),
        n_excluded=len(result.exclusions), audit_examples=class_audit.EXAMPLES,
        comparators=roles.comparators(result.decision.ran),
        min_improvement=gallery_lib.MIN_IMPROVEMENT, promise=PROMISE,
        min_images=_min_images_rows(result.decision.results, result.decision.rule), label_next=LABEL_NEXT_FILE,
        label_shown=LABEL_NEXT_SHOWN)
    return text.rstrip("\n").encode() + b"\n"


def gallery_files(result):
    """{relative path: PNG bytes} of every gallery panel referenced by the report."""
    entries = gallery_entries(result.gallery_best, "improvement") + gallery_entries(result.gallery_worst,
                                                                                        "regression")
    return {e["file"]: gallery_lib.render_panel(e["case"]) for e in entries}


FOREST_FILE = "forest.png"


def forest_plots(result):
    """[(reference, file name, rows)] of the forest plots a report shows: candidate - rembg, then candidate -
    each other reference (eval.roles) a criterion measures against, each when it has a row."""
    read = {r.vs for r in result.decision.results}
    references = [BASELINE, *(name for name in roles.comparators(result.decision.ran) if name in read)]
    plots = [(reference, FOREST_FILE if reference == BASELINE else f"forest-{reference}.png",
              forest_rows(result, reference)) for reference in references]
    return [plot for plot in plots if plot[2]]


def _delta(row, reference):
    """A side-by-side row's candidate - `reference` mean IoU and its interval."""
    if reference == BASELINE:
        return row["delta_iou"], row["delta_ci"]
    cells = next(c for c in row["vs"] if c["name"] == reference)
    return cells["delta_iou"], cells["delta_ci"]


def forest_rows(result, reference=BASELINE):
    """Forest-plot rows: candidate - `reference` mean IoU per corpus and class, with the regression criterion
    against it that reads it (threshold) and the worst status of every criterion on it, in the report's table
    order; then a row per class a criterion names that has no image."""
    on_row = {}
    for r in result.decision.results:
        if r.id != COMPLETENESS_ID:
            on_row.setdefault((r.corpus, r.failure_class), []).append(r)
    rows, shown = [], set()
    for row in _side_by_side(result):
        key = (row["corpus"], row["failure_class"])
        shown.add(key)
        delta, interval = _delta(row, reference)
        if interval is None:
            continue
        rows.append(_forest_row(f"{row['corpus']} / {sanitise.text(row['failure_class'])} (n={row['n']})",
                                on_row.get(key, ()), reference, delta, interval))
    rows.extend(_forest_row(f"{corpus} / {sanitise.text(failure_class)} (n=0)", results, reference)
                for (corpus, failure_class), results in on_row.items() if (corpus, failure_class) not in shown)
    return rows


def _forest_row(label, results, reference, estimate=None, interval=None):
    shown = Measure("mask_iou", MEAN, MAX, reference)  # the criterion a forest row shows: mean-IoU regression
    regression = next((r for r in results if r.measure == shown), None)
    statuses = {r.status for r in results}
    status = next((s for s in forest.WORST_FIRST if s in statuses), None)
    return forest.ForestRow(label, estimate, interval and interval.lower, interval and interval.upper,
                            regression and regression.threshold, status)


def render_all(result, title):
    """Every output file of a run as {relative path: bytes}: report.html inlines the plot and the gallery."""
    plots = [(reference, name, forest.render_forest(rows, result.decision.rule.level))
             for reference, name, rows in forest_plots(result)]
    files = {"metrics.json": metrics_json(result), "per_image.csv": per_image_csv(result),
             LABEL_NEXT_FILE: label_next_csv(result), "report.md": report_markdown(result, title),
             **{name: png for _, name, png in plots}, **gallery_files(result)}
    gallery = [(heading, [(e["case"], files[e["file"]]) for e in gallery_entries(cases, kind)])
               for heading, cases, kind in (("Largest improvements", result.gallery_best, "improvement"),
                                            ("Worst regressions", result.gallery_worst, "regression"))]
    page = html.report_html(result, title, template_environment(autoescape=True),
                            _html_rule_text(result.decision.rule), [(reference, png) for reference, _, png in plots],
                            gallery)
    return {**files, "report.html": page}
