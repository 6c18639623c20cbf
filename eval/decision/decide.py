"""From aggregates and the locked criteria to a go/no-go Decision (pure; rendered by eval.report.render).

A criterion bounds an eval.measures.Measure: which statistic of the candidate's aggregate it reads (minus
the reference's, for a regression), the interval that goes with it, and the direction of the bound. The
decision rule (criteria file) then says how an observed value meets its threshold, one verdict function
each: `point` compares the value itself (_point_verdict); `confidence` runs a one-sided test at the rule's
level on the interval's bounds (_confidence_verdict: a regression passes when its upper bound is within
the threshold, fails when its lower bound is beyond it, and is otherwise inconclusive).
"""

import dataclasses

from eval import roles
from eval.decision import statistics
from eval.inputs.criteria import ALL, CONFIDENCE, EACH
from eval.measures import MAX, MIN, Measure, min_images_to_pass
from eval.roles import BASELINE, CANDIDATE
from eval.scoring.scores import within

PASS, FAIL, INSUFFICIENT, INCONCLUSIVE = "pass", "fail", "insufficient_data", "inconclusive"
COMPLETENESS_ID = "evaluation_complete"
OPERATORS = {MIN: ">=", MAX: "<="}  # how a summary writes a bound


@dataclasses.dataclass(frozen=True)
class CriterionResult:
    id: str
    kind: str | None  # the criterion's schema_version 1 or 2 kind; None in version 3 (`measure` says it all)
    corpus: str
    failure_class: str
    threshold: float
    observed: float | None
    # >= 0 passes; None when there was nothing to measure. Point rule: observed vs threshold; confidence
    # rule: the pessimistic bound (upper for an upper limit, lower for a lower limit) vs threshold.
    margin: float | None
    n_images: int
    n_empty_truth: int  # of n_images, those with an empty ground truth: they never count toward min_images
    status: str
    summary: str
    yes_no: bool = False  # a yes/no check (observed, threshold, margin hold counts, not measurements)
    interval: statistics.Interval | None = None
    images_needed: int | None = None  # inconclusive only: about how many images would decide it
    vs: str | None = None  # a regression's reference (rembg or incumbent); None for the other kinds
    measure: Measure | None = None  # what the criterion bounds; None for the completeness check

    @property
    def passed(self):
        return self.status == PASS

    @property
    def cells(self):
        """What a report shows for observed, threshold and margin: "yes"/"no" words for a yes/no check."""
        if self.yes_no:
            return {"observed": "yes" if self.passed else "no", "threshold": "yes", "margin": ""}
        return {"observed": self.observed, "threshold": self.threshold, "margin": self.margin}


_NO_GO_ORDER = {FAIL: 0, INCONCLUSIVE: 1, INSUFFICIENT: 2}


def _miss_rank(result, position):
    """Order of failed results (the deciding rule): incomplete evaluation first, then clear misses, then
    the inconclusive, then no evidence; within a status, the criteria file's order (`position`). Margins
    never rank criteria: a pass rate's and an IoU's margins are in different units."""
    return result.id != COMPLETENESS_ID, _NO_GO_ORDER.get(result.status, 0), position


def recommendation_line(recommendation, criterion_id, summary):
    """The line CI logs and release tickets quote: last line of report.md, and what the CLIs print."""
    return f"recommendation: {recommendation} (deciding criterion: {criterion_id}: {summary})"


# What the CLIs print on stderr after a decision taken with `example_values: true` (the report says it too).
EXAMPLE_VALUES_WARNING = ("warning: the success criteria file is marked example_values: true; its thresholds are "
                          "not the locked #413 values, so this recommendation is not valid for a production promotion")


def unused_warning(name):
    """What the CLIs print when backend `name` ran but no criterion reads it (the report says it too)."""
    return (f"note: the {name} was evaluated but no criterion compares the candidate with it (`vs: {name}`), so "
            f"it plays no part in this decision: a candidate worse than the {name} can still be a go")


@dataclasses.dataclass(frozen=True)
class Decision:
    recommendation: str  # "go" or "no-go"
    deciding: CriterionResult
    results: tuple
    rule: object = None  # eval.inputs.criteria.DecisionRule
    ran: tuple = ()  # the backends whose aggregates were there to decide on, in column order

    @property
    def unused(self):
        """The references beside rembg (the incumbent, an added role) that ran but no criterion compares the
        candidate with: each plays no part in the decision (unused_warning)."""
        read = {r.vs for r in self.results}
        return tuple(name for name in roles.comparators(self.ran) if name in roles.references() and name not in read)

    @property
    def headline(self):
        return recommendation_line(self.recommendation, self.deciding.id, self.deciding.summary)

    @property
    def failed(self):
        return tuple(r for r in self.results if not r.passed)

    @property
    def by_relevance(self):
        """Results in the order the decision depends on them: the deciding one, the other failures (by
        _miss_rank), then the passes, each in the criteria file's order."""
        position = {r.id: k for k, r in enumerate(self.results)}
        failed = sorted(self.failed, key=lambda r: _miss_rank(r, position[r.id]))
        passed = [r for r in self.results if r.passed]
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


def _below_floor(criterion, n_evidence, level):
    """Why a confidence-rule verdict other than a clear miss on `n_evidence` images is no evidence (fewer
    than eval.measures.min_images_to_pass), or None."""
    measure = criterion.measure
    floor = min_images_to_pass(measure.statistic, measure.bound, criterion.threshold, level)
    if floor is None:
        return f"no number of images can put a {level:.0%} lower bound on a rate at {criterion.threshold:g}"
    if n_evidence < floor:
        return (f"{n_evidence} image(s) with a non-empty ground truth, and a {level:.0%} bound on a "
                f"{measure.statistic} can pass {criterion.threshold:g} only from {floor} images on")
    return None


def _point_verdict(bound, observed, threshold):
    """(status, margin) of the observed value itself against the threshold (inclusive)."""
    margin = observed - threshold if bound == MIN else threshold - observed
    return PASS if within(margin) else FAIL, margin


def _confidence_verdict(bound, observed, interval, threshold, n):
    """(status, margin, images_needed) of a one-sided test on `interval`'s bounds; a bound equal to the
    threshold is within it (as the point rule's thresholds are inclusive)."""
    if bound == MAX:
        margin, beyond = threshold - interval.upper, interval.lower > threshold
    else:
        margin, beyond = interval.lower - threshold, interval.upper < threshold
    if within(margin):
        return PASS, margin, None
    if beyond:
        return FAIL, margin, None
    toward = interval.upper if threshold > observed else interval.lower  # the bound that must clear it
    return INCONCLUSIVE, margin, statistics.images_to_decide(n, observed, toward, threshold)


def _confidence_summary(status, interval, threshold, images_needed):
    level = f"{interval.level:.0%} one-sided bounds [{interval.lower:.4f}, {interval.upper:.4f}]"
    if status == PASS:
        return f"{level}: clearly within {threshold:.4f}"
    if status == FAIL:
        return f"{level}: clearly beyond {threshold:.4f}"
    more = (f"about {images_needed} images would decide it at the observed spread" if images_needed else
            "the observed value sits on the threshold, so no number of images is likely to decide it")
    return f"{level} straddle {threshold:.4f}: inconclusive, which is never a go; {more}"


def _observe(measure, candidate, reference, where, n, n_empty, threshold):
    """(observed value, summary) of `measure` on the candidate's (and its reference's) aggregate."""
    cand_value = measure.value(candidate)
    if measure.vs:
        ref_value = measure.value(reference)
        observed = ref_value - cand_value
        detail = f" (candidate {cand_value:.4f} vs {measure.vs} {ref_value:.4f})"
    else:
        observed, detail = cand_value, ""
    empty = f", {n_empty} with empty ground truth" if n_empty else ""
    return observed, (f"{measure.label} {observed:.4f} on {where} (n={n}{empty}){detail} must be "
                      f"{OPERATORS[measure.bound]} {threshold:.4f}")


def _measure(criterion, failure_class, table, criteria):
    measure, rule = criterion.measure, criteria.decision_rule
    candidate = table.get((CANDIDATE, criterion.corpus, failure_class))
    # rembg is scored on every image the candidate is, so a candidate-only measure needs it present too.
    reference_name = measure.vs or BASELINE
    reference = table.get((reference_name, criterion.corpus, failure_class))
    n = candidate.n_images if candidate else 0
    n_empty = candidate.n_empty_truth if candidate else 0
    where = f"{criterion.corpus}/{failure_class}"
    base = dict(id=criterion.id if criterion.failure_class != EACH else f"{criterion.id}[{failure_class}]",
                kind=criterion.kind, corpus=criterion.corpus, failure_class=failure_class,
                threshold=criterion.threshold, n_images=n, n_empty_truth=n_empty, vs=measure.vs, measure=measure)
    problem = _evidence_problem(where, n, n_empty, criteria)
    if problem or reference is None:
        return CriterionResult(**base, observed=None, margin=None, status=INSUFFICIENT,
                               summary=problem or f"insufficient data on {where}: no {reference_name} result")
    observed, summary = _observe(measure, candidate, reference, where, n, n_empty, criterion.threshold)
    interval = candidate.intervals.get(measure.interval_name)
    if rule.kind != CONFIDENCE:
        status, margin = _point_verdict(measure.bound, observed, criterion.threshold)
        return CriterionResult(**base, observed=observed, margin=margin, status=status, summary=summary,
                               interval=interval)
    if interval is None:  # never expected: the gate computes every interval; fail closed all the same
        return CriterionResult(**base, observed=observed, margin=None, status=INCONCLUSIVE, interval=None,
                               summary=f"{summary}: no interval was computed; inconclusive, never a go")
    status, margin, needed = _confidence_verdict(measure.bound, observed, interval, criterion.threshold, n)
    summary = f"{summary} at {rule.level:.0%} confidence; "
    floor = _below_floor(criterion, n - n_empty, rule.level) if status != FAIL else None
    if floor:  # a clear miss stands on any n; a pass or a straddle below the floor is no evidence
        return CriterionResult(**base, observed=observed, margin=margin, status=INSUFFICIENT, interval=interval,
                               summary=f"{summary}insufficient data: {floor}")
    return CriterionResult(**base, observed=observed, margin=margin, status=status, interval=interval,
                           images_needed=needed,
                           summary=summary + _confidence_summary(status, interval, criterion.threshold, needed))


def _completeness(n_evaluated, n_not_evaluated):
    """A yes/no check; observed is the count of images not evaluated, n the count evaluated by every backend."""
    ok = n_not_evaluated == 0
    return CriterionResult(COMPLETENESS_ID, "all_images_evaluated", "all", "all", 0.0, float(n_not_evaluated),
                           0.0 if ok else -float(n_not_evaluated), n_evaluated, 0, PASS if ok else FAIL,
                           "every eligible image was evaluated by every backend" if ok else
                           f"{n_not_evaluated} image(s) could not be evaluated; an incomplete evaluation "
                           "cannot be a go", yes_no=True)


def _holm(results, level):
    """Holm's step-down over every tested criterion: a clear miss stands only when its p-value survives
    alpha / (number of tests not yet rejected); the others become inconclusive (still never a go).

    Go needs every criterion to pass, so the false-go rate is at most 1 - level without correction; Holm
    keeps the chance of calling ANY criterion a clear miss when none is at most 1 - level as well.
    """
    tested = [r for r in results if r.status in (PASS, FAIL, INCONCLUSIVE) and r.interval is not None]
    favourable = {r.id: (r.interval.lower if r.measure.bound == MAX else r.interval.upper)
                  for r in tested}
    p = {r.id: statistics.miss_p_value(r.observed, favourable[r.id], level, r.threshold) for r in tested}
    misses = sorted((r for r in tested if r.status == FAIL), key=lambda r: (p[r.id], r.id))
    standing = set()
    for i, r in enumerate(misses):
        if p[r.id] > (1 - level) / (len(tested) - i):
            break
        standing.add(r.id)
    return [r if r.status != FAIL or r.id in standing else dataclasses.replace(
        r, status=INCONCLUSIVE, summary=f"{r.summary}; under Holm's correction over {len(tested)} tests "
                                        f"(p = {p[r.id]:.4f}) not a clear miss: inconclusive, never a go")
            for r in results]


def decide(criteria, aggregates, n_not_evaluated):
    """Evaluate every criterion under the file's decision rule; go only if all pass. A no-go cites the first
    failed result by _miss_rank (the most serious status, then the file's order); a go cites the file's
    first criterion (every one passed: no margin is compared with another in other units)."""
    table = {a.key: a for a in aggregates}
    rule = criteria.decision_rule
    n_evaluated = sum(a.n_images for a in aggregates if a.source_backend == CANDIDATE and a.failure_class == ALL)
    results = [_completeness(n_evaluated, n_not_evaluated)]
    for criterion in criteria.criteria:
        # `each` over no class is refused by load_criteria; were it to get here, it would still be a row
        # (insufficient data on "each"), never a criterion that silently vanishes from the decision.
        classes = (criteria.class_ids or (EACH,)) if criterion.failure_class == EACH else (criterion.failure_class,)
        results.extend(_measure(criterion, c, table, criteria) for c in classes)
    if rule.kind == CONFIDENCE and rule.holm:
        results = _holm(results, rule.level)
    ran = tuple(roles.ordered({a.source_backend for a in aggregates}))
    failed = [(_miss_rank(r, k), r) for k, r in enumerate(results) if not r.passed]
    if failed:
        return Decision("no-go", min(failed, key=lambda pair: pair[0])[1], tuple(results), rule, ran)
    return Decision("go", results[1] if len(results) > 1 else results[0], tuple(results), rule, ran)
