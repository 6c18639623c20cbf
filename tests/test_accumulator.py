"""The accumulators (update / merge / result): merging shards in any grouping gives what one pass gives."""

import pytest

from eval.accumulator import merged
from eval.gate import NotEvaluated, ShardResult, combine
from eval.inputs.criteria import CONFIDENCE, Criterion, DecisionRule, SuccessCriteria
from eval.measures import Measure
from eval.report.gallery import GalleryCase, GalleryPicker
from eval.scoring.scores import ImageScore

DELTAS = [0.3, -0.2, 0.0, 0.3, -0.5, 0.1, -0.2, 0.25, -0.01, 0.3]


def case(i, delta):
    return GalleryCase("test" if i % 2 else "flagged", f"img-{i}", 0.5, round(0.5 + delta, 6), 0.5, 0.5, ())


CASES = [case(i, d) for i, d in enumerate(DELTAS)]


def picker_of(cases, k=3):
    picker = GalleryPicker(k)
    for c in cases:
        if picker.wants(c.delta, c.corpus, c.image_id):
            picker.update(c)
    return picker


@pytest.mark.parametrize("cuts", [(), (1,), (3, 7), (1, 2, 3, 4, 5, 6, 7, 8, 9)])
def test_gallery_picks_are_the_same_however_the_cases_are_sharded(cuts):
    single = picker_of(CASES).result()
    bounds = [0, *cuts, len(CASES)]
    shards = [picker_of(CASES[a:b]) for a, b in zip(bounds, bounds[1:])]
    for order in (shards, shards[::-1]):
        assert merged(GalleryPicker(3), order).result() == single
    best, worst = single
    assert [c.delta for c in best] == [0.3, 0.3, 0.3] and [c.image_id for c in best] == ["img-0", "img-3", "img-9"]
    assert [c.delta for c in worst] == [-0.5, -0.2, -0.2]


def test_a_gain_below_min_improvement_is_not_an_improvement():
    """Regression: a candidate worse everywhere but by +0.02 on one image led "Largest improvements" with it."""
    small = [case(0, 0.02), case(1, -0.3), case(2, 0.049)]
    assert picker_of(small).result()[0] == ()
    assert [c.delta for c in picker_of([*small, case(3, 0.05)]).result()[0]] == [0.05]


def score(backend, i, value):
    return ImageScore(backend, "test", f"i{i:02d}", (), mask_iou=0.9, precision=value, recall=1.0,
                      bbox_iou_secondary=1.0, boundary_iou=0.9, passed=True, true_positive_pixels=1,
                      predicted_pixels=1, ground_truth_pixels=1)


def shard(indices):
    part = ShardResult.empty(3)
    for i in indices:
        part.update([score("candidate", i, 0.8 + 0.01 * (i % 7)), score("rembg", i, 1.0)],
                    strip=(("test", f"i{i:02d}"), bytes([i])))
        if i % 4 == 0:
            part.update(missing=[NotEvaluated("test", f"i{i:02d}", f"backend {i % 3} failed")])
    return part


def test_shard_results_merge_to_one_result_in_any_grouping():
    single = shard(range(20)).result()
    for grouping in ([range(0, 10), range(10, 20)], [range(15, 20), range(0, 5), range(5, 15)],
                     [[i] for i in range(20)]):
        parts = [shard(g) for g in grouping]
        assert merged(ShardResult.empty(3), parts).result() == single
        assert all(len(p.scores) == 2 * len(g) for p, g in zip(parts, grouping)), "parts stay as they were"
    scores, not_evaluated, _, strips = single
    assert [key for key, _ in strips] == [("test", f"i{i:02d}") for i in range(20)]
    assert [s.image_id for s in scores[:4]] == ["i00", "i00", "i01", "i01"]
    assert [m.image_id for m in not_evaluated] == ["i00", "i04", "i08", "i12", "i16"]


def test_the_gate_computes_the_interval_a_v3_criterion_reads():
    """A mean-precision criterion under the confidence rule is tested on the candidate's precision interval,
    which the gate computes only because a criterion reads it."""
    precise = Criterion("precise", Measure("precision", "mean", "min"), "test", "all", 0.8)
    criteria = SuccessCriteria("c.yaml", "0" * 64, False, 0.75, 2, (), (precise,),
                               decision_rule=DecisionRule(CONFIDENCE, 0.95))
    snapshot = type("Snapshot", (), {"items": (), "exclusions": (), "unlabelled": ()})()
    result = combine([shard(range(20))], snapshot, criteria, {"run_key": "k"})
    candidate = next(a for a in result.aggregates if a.source_backend == "candidate")
    r = result.decision.results[1]
    assert r.interval == candidate.intervals["precision_mean"] and r.interval.lower > 0.8
    assert r.status == "pass" and r.observed == pytest.approx(sum(0.8 + 0.01 * (i % 7) for i in range(20)) / 20)
    assert result.not_evaluated[0].reason == "backend 0 failed"
