"""Inconclusive becomes a work order: which unlabelled flagged rows to annotate next (pure).

For every criterion on the flagged corpus that is inconclusive or insufficient data, the rows the snapshot
excluded for lack of ground truth (eval.inputs.snapshot.UnlabelledRow) whose notes and source put them in
that criterion's failure class (eval.inputs.criteria.SuccessCriteria.classify: any row for `all`), with
about how many more labelled images would decide it. Order: a row that falls in more undecided criteria
first (one label then moves several of them; every row adds one image to each, so within a criterion any
row helps equally), then by row id. The report lists them and label_next.csv holds them all
(eval.report.render).
"""

import dataclasses

from eval.decision.decide import INCONCLUSIVE, INSUFFICIENT
from eval.inputs.criteria import ALL
from eval.inputs.snapshot import FLAGGED
from eval.measures import CONFIDENCE, min_images_to_pass


@dataclasses.dataclass(frozen=True)
class WorkOrder:
    criterion: str  # the criterion result's id ("no_class_regression[glossy_highlight]")
    failure_class: str
    status: str
    more_images: int | None  # about how many more labelled images would decide it; None: no estimate
    rows: tuple  # UnlabelledRow, in labelling order


def _more_images(result, criteria):
    """About how many more images with a non-empty ground truth would decide `result`, or None."""
    if result.status == INCONCLUSIVE:
        return result.images_needed and max(1, result.images_needed - result.n_images)
    rule, measure = criteria.decision_rule, result.measure
    floor = criteria.min_images
    if rule.kind == CONFIDENCE and measure is not None:
        floor = max(floor, min_images_to_pass(measure.statistic, measure.bound, result.threshold, rule.level) or 0)
    missing = floor - (result.n_images - result.n_empty_truth)
    return missing if missing > 0 else None


def work_orders(decision, criteria, unlabelled):
    """WorkOrder per undecided flagged-corpus criterion result of `decision`, in the decision's order."""
    undecided = [r for r in decision.results if r.corpus == FLAGGED and r.status in (INCONCLUSIVE, INSUFFICIENT)]
    classes = {row.row_id: set(criteria.classify(row.notes, dict(row.source))) | {ALL} for row in unlabelled}
    serves = {row.row_id: sum(r.failure_class in classes[row.row_id] for r in undecided) for row in unlabelled}
    return tuple(WorkOrder(r.id, r.failure_class, r.status, _more_images(r, criteria),
                           tuple(sorted((row for row in unlabelled if r.failure_class in classes[row.row_id]),
                                        key=lambda row: (-serves[row.row_id], row.row_id))))
                 for r in undecided)
