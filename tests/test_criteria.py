"""Parsing the locked criteria file and mapping CropRun rows to failure classes."""

import signal
import sys
import time

import pytest

from eval.errors import GateInputError
from eval.inputs.criteria import CONFIDENCE, POINT, UNCLASSIFIED, DecisionRule, load_criteria
from eval.measures import Measure
from tests.support import CRITERIA, VALID_CRITERIA as VALID, criteria_file



def test_shipped_file_loads_and_is_marked_as_examples():
    criteria = load_criteria(CRITERIA)
    assert criteria.example_values is True
    assert 0 < criteria.iou_pass_threshold <= 1
    assert {"min_pass_rate", "min_mean_iou", "max_mean_iou_regression"} <= {c.kind for c in criteria.criteria}
    assert len(criteria.sha256) == 64


def test_values_come_from_the_file(tmp_path):
    criteria = load_criteria(criteria_file(VALID, tmp_path))
    assert criteria.iou_pass_threshold == 0.8
    assert criteria.min_images == 2
    assert [c.id for c in criteria.criteria] == ["pass_rate", "regress"]
    assert criteria.class_ids == ("gloss", "studio_b")


def test_boundary_iou_kinds_load_and_are_optional(tmp_path):
    text = VALID + ("  - {id: edges, kind: min_mean_boundary_iou, corpus: test, failure_class: all, threshold: 0.6}\n"
                    "  - {id: edges_regress, kind: max_mean_boundary_iou_regression, corpus: flagged, "
                    "failure_class: each, threshold: 0.05}\n")
    kinds = [c.kind for c in load_criteria(criteria_file(text, tmp_path)).criteria]
    assert kinds == ["min_pass_rate", "max_mean_iou_regression", "min_mean_boundary_iou",
                     "max_mean_boundary_iou_regression"]


@pytest.mark.parametrize("notes, source, expected", [
    ("Very SHINY glaze", {}, ("gloss",)),
    ("shiny pot", {"deployment": "studio-b"}, ("gloss", "studio_b")),  # several classes
    ("nothing special", {"deployment": "studio-a"}, (UNCLASSIFIED,)),
    ("", None, (UNCLASSIFIED,)),
])
def test_classify(tmp_path, notes, source, expected):
    assert load_criteria(criteria_file(VALID, tmp_path)).classify(notes, source) == expected


@pytest.mark.parametrize("change, message", [
    (("iou_pass_threshold: 0.8", "iou_pass_threshold: 1.5"), "1.5 is greater than the maximum of 1"),
    (("min_images: 2", "min_imagse: 2"), "did you mean 'min_images'"),
    (("threshold: 0.5}", "threshold: high}"), "is not of type 'number'"),
    (("failure_class: all", "failure_class: glossy"), "unknown failure class 'glossy'"),
    (("id: regress", "id: pass_rate"), "duplicate criterion id 'pass_rate'"),
    (("kind: min_pass_rate", "kind: min_pass"), "is not one of"),
    (("corpus: flagged, failure_class: all", "corpus: flaged, failure_class: all"), "is not one of"),
    (("'gloss', 'shiny'", "'gloss', '(unclosed'"), "failure class 'gloss': bad regex '(unclosed' (missing )"),
    (("'gloss', 'shiny'", r"'gloss', '(sh)\1iny'"),
     r"class 'gloss': bad regex '(sh)\\1iny': not RE2 syntax (invalid escape sequence: \1)"),
    (("'gloss', 'shiny'", "'gloss', 'shiny(?= glaze)'"), "which has no backreferences or lookarounds"),
    (("'gloss', 'shiny'", "'gloss', '(?<!very )shiny'"), "'(?<!very )shiny': not RE2 syntax"),
    (("min_images: 2", "min_images: 2\nmax_empty_truth_share: 1.5"), "1.5 is greater than the maximum of 1"),
    (("corpus: flagged, failure_class: each", "corpus: test, failure_class: each"),
     "criterion 'regress': the test corpus has no failure classes"),
    (("corpus: flagged, failure_class: all", "corpus: test, failure_class: gloss"),
     "criterion 'pass_rate': the test corpus has no failure classes"),
    (("min_images: 2", "min_images: 2\nmin_images: 3"), "duplicate key 'min_images'"),
    (("example_values: false", "example_values: [oops"), "YAML error at line"),
])
def test_invalid_files_are_refused_with_the_file_named(tmp_path, change, message):
    path = criteria_file(VALID.replace(*change), tmp_path)
    with pytest.raises(GateInputError) as err:
        load_criteria(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_v1_files_decide_on_point_values(tmp_path):
    assert load_criteria(criteria_file(VALID, tmp_path)).decision_rule == DecisionRule(POINT, 0.95, False)


@pytest.mark.parametrize("rule, expected", [
    ("{kind: point}", DecisionRule(POINT, 0.95, False)),
    ("{kind: confidence, level: 0.9}", DecisionRule(CONFIDENCE, 0.9, False)),
    ("{kind: confidence, level: 0.95, holm: true}", DecisionRule(CONFIDENCE, 0.95, True)),
])
def test_schema_v2_states_its_decision_rule(tmp_path, rule, expected):
    text = VALID.replace("schema_version: 1", f"schema_version: 2\ndecision_rule: {rule}")
    assert load_criteria(criteria_file(text, tmp_path)).decision_rule == expected


@pytest.mark.parametrize("version, rule, message", [
    (1, "{kind: point}", "decision_rule needs schema_version: 2"),
    (2, None, "schema_version 2 requires decision_rule"),
    (2, "{kind: confidence}", "requires a level"),
    (2, "{kind: confidence, level: 1.0}", "is greater than or equal to the maximum of 1"),
    (2, "{kind: confidence, level: 0.5}", "is less than or equal to the minimum of 0.5"),
    (2, "{kind: bayes, level: 0.9}", "is not one of"),
    (2, "{kind: point, holm: true}", "holm applies to the confidence rule only"),
    (2, "{kind: confidence, levle: 0.9}", "did you mean 'level'"),
    (4, "{kind: point}", "is not one of"),
])
def test_bad_decision_rules_are_refused(tmp_path, version, rule, message):
    text = VALID.replace("schema_version: 1", f"schema_version: {version}" +
                         (f"\ndecision_rule: {rule}" if rule else ""))
    path = criteria_file(text, tmp_path)
    with pytest.raises(GateInputError) as err:
        load_criteria(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_yaml_tags_are_not_executed(tmp_path):
    text = VALID.replace("example_values: false", "example_values: !!python/object/apply:os.getcwd []")
    path = criteria_file(text, tmp_path)
    with pytest.raises(GateInputError, match="YAML error"):
        load_criteria(path)


def test_missing_file(tmp_path):
    with pytest.raises(GateInputError, match="file not found"):
        load_criteria(tmp_path / "nope.yaml")


def test_each_over_an_empty_taxonomy_is_a_file_error_naming_the_file(tmp_path):
    """Issue 8.3: it used to vanish from the decision (go), or as the only criterion end in a traceback."""
    text = VALID.split("failure_classes:")[0] + (
        "failure_classes: []\ncriteria:\n"
        "  - {id: regress, kind: max_mean_iou_regression, corpus: flagged, failure_class: each, threshold: 0.1}\n")
    path = criteria_file(text, tmp_path)
    with pytest.raises(GateInputError) as err:
        load_criteria(path)
    assert err.value.where == str(path)
    assert "criterion 'regress': failure_class 'each' checks nothing, the taxonomy (failure_classes) is empty" \
        in err.value.problem


def test_max_empty_truth_share_is_optional_with_a_fail_closed_default(tmp_path):
    assert load_criteria(criteria_file(VALID, tmp_path)).max_empty_truth_share == 0.1
    text = VALID.replace("min_images: 2", "min_images: 2\nmax_empty_truth_share: 0.25")
    assert load_criteria(criteria_file(text, tmp_path)).max_empty_truth_share == 0.25


def test_catastrophic_backtracking_pattern_on_a_long_note_does_not_hang(tmp_path):
    """Issue 8.12: Python's re takes exponential time on (a+)+$ against 'aaa...b'; RE2 is linear."""
    criteria = load_criteria(criteria_file(VALID.replace("'gloss', 'shiny'", "'(a+)+$', '(x|x)*y', 'shiny'"), tmp_path))
    note = "a" * 200_000 + "b" + "x" * 200_000

    def too_slow(*_):
        raise TimeoutError("classification took more than 10 s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(10)
    try:
        started = time.perf_counter()
        assert criteria.classify(note, {}) == (UNCLASSIFIED,)
        assert criteria.classify(note + " SHINY", {}) == ("gloss",)
        assert time.perf_counter() - started < 5
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("pattern, notes, expected", [
    ("GLOSS", "glossy glaze", True),  # case-insensitive both ways
    ("glaze", "GLAZE", True),
    ("\\bhandle\\b", "the handle broke", True),  # RE2 has word boundaries
    ("\\bhandle\\b", "handlebar", False),
    ("white (on|against) white", "White against WHITE", True),
    ("straße", "STRASSE", False),  # simple case folding only, as Python's re
    ("é", "É", True),
])
def test_notes_patterns_keep_their_case_insensitive_semantics(tmp_path, pattern, notes, expected):
    text = VALID.replace("'gloss', 'shiny'", f"'{pattern}'")
    criteria = load_criteria(criteria_file(text, tmp_path))
    assert (criteria.classify(notes, {}) == ("gloss",)) is expected


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))


V3 = VALID.replace("schema_version: 1", "schema_version: 3\ndecision_rule: {kind: confidence, level: 0.95}").replace(
    "  - {id: pass_rate, kind: min_pass_rate, corpus: flagged, failure_class: all, threshold: 0.5}\n"
    "  - {id: regress, kind: max_mean_iou_regression, corpus: flagged, failure_class: each, threshold: 0.1}\n",
    "  - {id: pass_rate, metric: passed, statistic: rate, bound: min, corpus: flagged, failure_class: all, "
    "threshold: 0.5}\n"
    "  - {id: regress, metric: mask_iou, statistic: mean, bound: max, vs: rembg, corpus: flagged, "
    "failure_class: each, threshold: 0.1}\n"
    "  - {id: precise, metric: precision, statistic: mean, bound: min, vs: null, corpus: test, "
    "failure_class: all, threshold: 0.9}\n")


def test_v3_criteria_name_their_measure_and_match_the_v1_kinds(tmp_path):
    v3, v1 = load_criteria(criteria_file(V3, tmp_path)), load_criteria(criteria_file(VALID, tmp_path))
    assert [c.measure for c in v3.criteria[:2]] == [c.measure for c in v1.criteria]
    assert [c.kind for c in v3.criteria] == [None] * 3 and [c.kind for c in v1.criteria] == ["min_pass_rate",
                                                                                             "max_mean_iou_regression"]
    assert v3.criteria[2].measure == Measure("precision", "mean", "min", None) and v3.criteria[2].vs is None


@pytest.mark.parametrize("rule, entry, message", [
    ("confidence, level: 0.95", "metric: boundary_iou, statistic: p10, bound: max, vs: incumbent",
     "criterion 'extra' (confidence rule): the confidence rule needs an interval and a p10 regression has none"),
    ("confidence, level: 0.95", "metric: mask_iou, statistic: median, bound: min",
     "the confidence rule needs an interval and the median has none"),
    ("confidence, level: 0.95", "metric: passed, statistic: rate, bound: max, vs: rembg",
     "a rate regression has none"),
    ("point", "metric: precision, statistic: median, bound: min",
     "statistic 'median' of metric 'precision' is not recorded; it has mean"),
    ("point", "metric: recall, statistic: mean, bound: min, vs: rembg", "its bound must be 'max'"),
    ("point", "metric: recall, statistic: mean, bound: at_least", "is not one of"),
    ("point", "metric: pixel_accuracy, statistic: mean, bound: min", "is not one of"),
    ("point", "kind: min_mean_iou", "unknown key 'kind'"),
])
def test_v3_measures_the_rule_cannot_bound_are_refused(tmp_path, rule, entry, message):
    text = V3.replace("{kind: confidence, level: 0.95}", f"{{kind: {rule}}}") + (
        f"  - {{id: extra, {entry}, corpus: test, failure_class: all, threshold: 0.1}}\n")
    path = criteria_file(text, tmp_path)
    with pytest.raises(GateInputError) as err:
        load_criteria(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_point_rule_may_bound_quantiles_and_v2_may_not_name_a_measure(tmp_path):
    text = V3.replace("{kind: confidence, level: 0.95}", "{kind: point}") + (
        "  - {id: p10_edges, metric: boundary_iou, statistic: p10, bound: max, vs: incumbent, corpus: test, "
        "failure_class: all, threshold: 0.05}\n")
    assert load_criteria(criteria_file(text, tmp_path)).criteria[-1].measure == Measure("boundary_iou", "p10", "max",
                                                                                "incumbent")
    v2 = VALID.replace("schema_version: 1", "schema_version: 2\ndecision_rule: {kind: point}").replace(
        "kind: min_pass_rate", "metric: passed, statistic: rate, bound: min")
    with pytest.raises(GateInputError, match="unknown key 'bound', 'metric', 'statistic'"):
        load_criteria(criteria_file(v2, tmp_path))
