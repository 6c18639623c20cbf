"""From aggregates and the locked criteria to a go/no-go Decision (pure; rendered by eval.report.render)."""

import dataclasses

from eval.inputs.criteria import ALL, EACH
from eval.scoring.scores import round_metric

PASS, FAIL, INSUFFICIENT = "pass", "fail", "insufficient_data"
COMPLETENESS_ID = "evaluation_complete"
CANDIDATE, BASELINE, INCUMBENT = "candidate", "rembg", "incumbent"


@dataclasses.dataclass(frozen=True)
class _Kind:
    """How a criterion kind is measured: a statistic of an Aggregate, the direction, and the reference.

    With `vs_baseline`, the observed value is the reference's statistic minus the candidate's (a
    regression, positive when the candidate is worse); the reference is the criterion's `vs`, rembg unless
    it names the incumbent. Otherwise the observed value is the candidate's statistic.
    """

    label: str
    statistic: object  # Aggregate -> float
    op: str  # ">=": observed must reach the threshold; "<=": must not exceed it
    vs_baseline: bool = False


# One row per kind of eval.inputs.criteria.KINDS (a test keeps them equal).
KINDS = {
    "min_pass_rate": _Kind("candidate pass rate", lambda a: a.pass_rate, ">="),
    "min_mean_iou": _Kind("candidate mean IoU", lambda a: a.mask_iou["mean"], ">="),
    "max_mean_iou_regression": _Kind("mean-IoU regression vs {vs}", lambda a: a.mask_iou["mean"], "<=", True),
    "min_mean_boundary_iou": _Kind("candidate mean Boundary IoU", lambda a: a.boundary_iou["mean"], ">="),
    "max_mean_boundary_iou_regression": _Kind("mean-Boundary-IoU regression vs {vs}",
                                              lambda a: a.boundary_iou["mean"], "<=", True),
}


@dataclasses.dataclass(frozen=True)
class CriterionResult:
    id: str
    kind: str
    corpus: str
    failure_class: str
    threshold: float
    observed: float | None
    margin: float | None  # >= 0 passes; None when there was nothing to measure
    n_images: int
    n_empty_truth: int  # of n_images, those with an empty ground truth: they never count toward min_images
    status: str
    summary: str
    yes_no: bool = False  # a yes/no check (observed, threshold, margin hold counts, not measurements)

    @property
    def passed(self):
        return self.status == PASS

    @property
    def cells(self):
        """What a report shows for observed, threshold and margin: "yes"/"no" words for a yes/no check."""
        if self.yes_no:
            return {"observed": "yes" if self.passed else "no", "threshold": "yes", "margin": ""}
        return {"observed": self.observed, "threshold": self.threshold, "margin": self.margin}


def _miss_rank(result):
    """Order of failed results: incomplete evaluation first, then the largest measured miss, then no evidence."""
    return result.id != COMPLETENESS_ID, result.status == INSUFFICIENT, result.margin or 0.0


def recommendation_line(recommendation, criterion_id, summary):
    """The line CI logs and release tickets quote: last line of report.md, and what the CLIs print."""
    return f"recommendation: {recommendation} (deciding criterion: {criterion_id}: {summary})"


# What the CLIs print on stderr after a decision taken with `example_values: true` (the report says it too).
EXAMPLE_VALUES_WARNING = ("warning: the success criteria file is marked example_values: true; its thresholds are "
                          "not the locked #413 values, so this recommendation is not valid for a production promotion")


@dataclasses.dataclass(frozen=True)
class Decision:
    recommendation: str  # "go" or "no-go"
    deciding: CriterionResult
    results: tuple

    @property
    def headline(self):
        return recommendation_line(self.recommendation, self.deciding.id, self.deciding.summary)

    @property
    def failed(self):
        return tuple(r for r in self.results if not r.passed)

    @property
    def by_relevance(self):
        """Results in the order the decision depends on them: the deciding one, the other failures (largest
        miss first), then the passes (tightest margin first)."""
        failed = sorted(self.failed, key=_miss_rank)
        passed = sorted((r for r in self.results if r.passed), key=lambda r: r.margin)
        ordered = {}
        for r in (self.deciding, *failed, *passed):
            ordered.setdefault(r.id, r)  # by id: results need not be hashable
        return tuple(ordered.values())


def _evidence_problem(where, n, n_empty, criteria):
    """Why the images measured on `where` are not enough evidence, or None.

    Empty ground truth (a photo with no pot) is legitimate, but an empty prediction matches it perfectly,
    so such images never count toward `min_images`, and may be at most `max_empty_truth_share` of them.
    """
    n_evidence = n - n_empty
    if n_evidence < criteria.min_images:
        return (f"insufficient data on {where}: {n_evidence} image(s) with a non-empty ground truth "
                f"({n} measured, {n_empty} empty), the criteria require at least {criteria.min_images}")
    if n_empty / n > criteria.max_empty_truth_share:  # a ratio: exact at the boundary (3/30 == 0.1)
        return (f"insufficient data on {where}: {n_empty} of {n} image(s) have an empty ground truth, more "
                f"than the max_empty_truth_share {criteria.max_empty_truth_share:g} the criteria allow")
    return None


def _measure(criterion, failure_class, table, criteria):
    candidate = table.get((CANDIDATE, criterion.corpus, failure_class))
    baseline = table.get((criterion.vs, criterion.corpus, failure_class))  # the reference: rembg or the incumbent
    n = candidate.n_images if candidate else 0
    kind = KINDS[criterion.kind]
    n_empty = candidate.n_empty_truth if candidate else 0
    where = f"{criterion.corpus}/{failure_class}"
    base = dict(id=criterion.id if criterion.failure_class != EACH else f"{criterion.id}[{failure_class}]",
                kind=criterion.kind, corpus=criterion.corpus, failure_class=failure_class,
                threshold=criterion.threshold, n_images=n, n_empty_truth=n_empty)
    problem = _evidence_problem(where, n, n_empty, criteria)
    if problem or baseline is None:
        return CriterionResult(**base, observed=None, margin=None, status=INSUFFICIENT,
                               summary=problem or f"insufficient data on {where}: no {criterion.vs} result")
    cand_value, base_value = kind.statistic(candidate), kind.statistic(baseline)
    observed = round_metric(base_value - cand_value) if kind.vs_baseline else cand_value
    margin = round_metric(observed - criterion.threshold if kind.op == ">=" else criterion.threshold - observed)
    status = PASS if margin >= 0 else FAIL
    detail = f" (candidate {cand_value:.4f} vs {criterion.vs} {base_value:.4f})" if kind.vs_baseline else ""
    label = kind.label.format(vs=criterion.vs)
    empty = f", {n_empty} with empty ground truth" if n_empty else ""
    return CriterionResult(**base, observed=observed, margin=margin, status=status,
                           summary=f"{label} {observed:.4f} on {where} (n={n}{empty}){detail} must be {kind.op} "
                                   f"{criterion.threshold:.4f}")


def _completeness(n_evaluated, n_not_evaluated):
    """A yes/no check; observed is the count of images not evaluated, n the count evaluated by every backend."""
    ok = n_not_evaluated == 0
    return CriterionResult(COMPLETENESS_ID, "all_images_evaluated", "all", "all", 0.0, float(n_not_evaluated),
                           0.0 if ok else -float(n_not_evaluated), n_evaluated, 0, PASS if ok else FAIL,
                           "every eligible image was evaluated by every backend" if ok else
                           f"{n_not_evaluated} image(s) could not be evaluated; an incomplete evaluation "
                           "cannot be a go", yes_no=True)


def decide(criteria, aggregates, n_not_evaluated):
    """Evaluate every criterion; go only if all pass, citing the failed (or, for go, tightest) one."""
    table = {a.key: a for a in aggregates}
    n_evaluated = sum(a.n_images for a in aggregates if a.source_backend == CANDIDATE and a.failure_class == ALL)
    results = [_completeness(n_evaluated, n_not_evaluated)]
    for criterion in criteria.criteria:
        # `each` over no class is refused by load_criteria; were it to get here, it would still be a row
        # (insufficient data on "each"), never a criterion that silently vanishes from the decision.
        classes = (criteria.class_ids or (EACH,)) if criterion.failure_class == EACH else (criterion.failure_class,)
        results.extend(_measure(criterion, c, table, criteria) for c in classes)
    failed = [r for r in results if not r.passed]
    if failed:
        return Decision("no-go", min(failed, key=_miss_rank), tuple(results))
    return Decision("go", min(results[1:], key=lambda r: r.margin), tuple(results))
