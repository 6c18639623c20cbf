"""The success criteria and failure-class taxonomy owned by #413 (configs/success_criteria.yaml).

The gate only reads this file: every threshold and every class comes from it. Parsing is strict (see
eval/inputs/yaml_config.py) and the cross-references are checked here, so a criterion can never silently
point at nothing: `failure_class: each` means every class of the taxonomy (an empty taxonomy is a file
error), and the test corpus, whose images carry no failure classes, is only measured as `all`.

Notes patterns are compiled with RE2 (linear time in the note's length, whatever the pattern), so no
pattern can hang the gate; syntax RE2 does not have (backreferences, lookarounds) is a file error.
"""

import dataclasses
import re

import re2

from eval import measures, roles
from eval.errors import GateInputError
from eval.inputs.yaml_config import load_yaml
from eval.measures import CONFIDENCE, LEGACY_KINDS, POINT, Measure

CORPORA = ("test", "flagged")
ALL = "all"
EACH = "each"
UNCLASSIFIED = "unclassified"
_RESERVED = (ALL, EACH, UNCLASSIFIED)
# Share of a criterion's images whose ground truth is empty (no pot) above which the criterion is
# insufficient data when the file does not say: empty-vs-empty agreement scores IoU 1 and says nothing about
# cropping, so it may only be a small part of the evidence (see eval/decision/decide.py).
DEFAULT_MAX_EMPTY_TRUTH_SHARE = 0.1

_UNIT = {"type": "number", "minimum": 0, "maximum": 1}
_ID = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}\\Z"}  # \Z: Python's $ also matches before a final "\n"
_WHERE = {"id": _ID, "corpus": {"enum": list(CORPORA)}, "failure_class": {"type": "string"}, "threshold": _UNIT}


def _criterion_schema(measure):
    required = ["id", *measure, "corpus", "failure_class", "threshold"]
    return {"type": "object", "additionalProperties": False, "required": [r for r in required if r != "vs"],
            "properties": {**_WHERE, **measure}}


def schema():
    """The criteria file's JSON schema. A criterion names its measure (eval.measures) by a `kind` in
    schema_version 1 and 2, by its parts in 3; `vs` names a reference role (eval.roles), read when a file is
    loaded so that a role added to the registry is one a criterion may name."""
    references = list(roles.references())
    criterion = {
        2: _criterion_schema({"kind": {"enum": list(LEGACY_KINDS)}, "vs": {"enum": references}}),
        3: _criterion_schema({"metric": {"enum": list(measures.METRICS)},
                              "statistic": {"enum": list(measures.STATISTICS)},
                              "bound": {"enum": [measures.MIN, measures.MAX]}, "vs": {"enum": [None, *references]}}),
    }
    return {**_SCHEMA, "then": {"properties": {"criteria": {"items": criterion[3]}}},
            "else": {"properties": {"criteria": {"items": criterion[2]}}}}


_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["schema_version", "example_values", "iou_pass_threshold", "min_images",
                 "failure_classes", "criteria"],
    "properties": {
        "schema_version": {"enum": [1, 2, 3]},
        "decision_rule": {  # schema_version 2 and 3 only (checked below)
            "type": "object",
            "additionalProperties": False,
            "required": ["kind"],
            "properties": {
                "kind": {"enum": [POINT, CONFIDENCE]},
                "level": {"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 1},
                "holm": {"type": "boolean"},
            },
        },
        "example_values": {"type": "boolean"},
        "iou_pass_threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "min_images": {"type": "integer", "minimum": 1},
        "max_empty_truth_share": _UNIT,
        "failure_classes": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "description", "match"],
            "properties": {
                "id": _ID,
                "description": {"type": "string"},
                "match": {
                    "type": "object",
                    "additionalProperties": False,
                    "minProperties": 1,
                    "properties": {
                        "notes_any": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                        "source": {
                            "type": "object",
                            "additionalProperties": False,
                            "minProperties": 1,
                            "properties": {f: {"type": "array", "minItems": 1, "items": {"type": "string"}}
                                           for f in ("type", "backend", "deployment", "version")},
                        },
                    },
                },
            },
        }},
        "criteria": {"type": "array", "minItems": 1},  # items: by schema_version (schema())
    },
    "if": {"properties": {"schema_version": {"const": 3}}},
}


@dataclasses.dataclass(frozen=True)
class FailureClass:
    """A class of the #413 taxonomy and the rule that maps a CropRun row to it."""

    id: str
    description: str
    notes_any: tuple = ()  # the patterns as written
    source_match: tuple = ()  # ((field, (allowed values...)), ...)
    notes_patterns: tuple = dataclasses.field(default=(), compare=False, repr=False)  # notes_any, RE2-compiled

    def notes_span(self, notes):
        """(start, end) in `notes` of the first pattern (in file order) that matches; None when none does."""
        for pattern in self.notes_patterns:
            found = pattern.search(notes or "")
            if found:
                return found.span()
        return None

    def source_matches(self, source):
        """True when the class lists source fields and every one of them matches."""
        return bool(self.source_match) and all(
            str((source or {}).get(field)) in allowed for field, allowed in self.source_match)

    def matches(self, notes, source):
        """True when any notes pattern matches, or when every listed source field matches."""
        return self.notes_span(notes) is not None or self.source_matches(source)


@dataclasses.dataclass(frozen=True)
class Criterion:
    id: str
    measure: Measure  # what it bounds; its `vs` is a regression's reference (rembg or the incumbent checkpoint)
    corpus: str
    failure_class: str  # a class id, ALL, or EACH (expanded by the decision step)
    threshold: float
    kind: str | None = None  # the schema_version 1 or 2 name of `measure`; None in schema_version 3

    @classmethod
    def of_kind(cls, id, kind, corpus, failure_class, threshold, vs=roles.BASELINE):
        """A criterion as schema_version 1 and 2 write it (`vs`: a regression kind's reference)."""
        return cls(id, measures.legacy_measure(kind, vs), corpus, failure_class, threshold, kind)

    @property
    def vs(self):
        return self.measure.vs


@dataclasses.dataclass(frozen=True)
class DecisionRule:
    """How an observed value is held against its threshold (eval/decision/decide.py applies it).

    point: the observed value alone (schema_version 1's rule). confidence: a one-sided test per criterion
    at `level` on the interval's bounds; a criterion neither clearly within nor clearly beyond its
    threshold is inconclusive. `level` is also the confidence of the intervals every report shows.
    `holm`: Holm's step-down correction on the verdicts that say a criterion is clearly missed.
    """

    kind: str = POINT
    level: float = 0.95
    holm: bool = False


@dataclasses.dataclass(frozen=True)
class SuccessCriteria:
    path: str
    sha256: str
    example_values: bool
    iou_pass_threshold: float
    min_images: int
    failure_classes: tuple
    criteria: tuple
    max_empty_truth_share: float = DEFAULT_MAX_EMPTY_TRUTH_SHARE
    decision_rule: DecisionRule = DecisionRule()

    @property
    def class_ids(self):
        return tuple(c.id for c in self.failure_classes)

    def classify(self, notes, source):
        """Failure classes of one flagged row, in taxonomy order; (UNCLASSIFIED,) when none match."""
        matched = tuple(c.id for c in self.failure_classes if c.matches(notes, source))
        return matched or (UNCLASSIFIED,)

    def classify_rows(self, rows):
        """Failure classes of one photo listed in several rows (row id, notes, source), duplicates merged
        (eval/inputs/duplicates.py): the union of the rows' classes in taxonomy order; (UNCLASSIFIED,) only
        when no row matched a class, since a row that says nothing does not make the photo unclassified."""
        matched = {c for _, notes, source in rows for c in self.classify(notes, source)} - {UNCLASSIFIED}
        return tuple(c.id for c in self.failure_classes if c.id in matched) or (UNCLASSIFIED,)


def _unique(ids, what, path):
    seen = set()
    for item in ids:
        if item in seen:
            raise GateInputError(path, f"duplicate {what} id {item!r}")
        seen.add(item)


def _re2_options():
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # the GateInputError says it, once
    return options


def compile_notes_pattern(pattern, class_id, path):
    """A notes pattern compiled with RE2, case-insensitively, for linear-time search.

    It must also parse as a Python regex, the syntax the file documents: RE2 alone would read, say,
    `a{4294967296}` as literal text. Compiling runs nothing, so the Python parse cannot backtrack.
    """
    try:
        re.compile(pattern, re.IGNORECASE)
    except (re.error, OverflowError, RecursionError) as err:  # huge repeat counts, absurd nesting
        raise GateInputError(path, f"failure class {class_id!r}: bad regex {pattern!r} ({err})") from None
    try:
        return re2.compile(pattern, _re2_options())
    except re2.error as err:
        detail = err.args[0].decode("utf-8", "replace") if err.args and isinstance(err.args[0], bytes) else err
        raise GateInputError(path, f"failure class {class_id!r}: bad regex {pattern!r}: not RE2 syntax ({detail}); "
                                   "the gate matches with RE2 (linear time), which has no backreferences or "
                                   "lookarounds") from None


def _failure_class(raw, path):
    notes_any = tuple(raw["match"].get("notes_any", []))
    patterns = tuple(compile_notes_pattern(p, raw["id"], path) for p in notes_any)
    source = tuple(sorted((f, tuple(v)) for f, v in raw["match"].get("source", {}).items()))
    return FailureClass(raw["id"], raw["description"], notes_any, source, patterns)


def _decision_rule(data, path):
    """schema_version 1 has no decision_rule and decides on point values; later versions must state their rule."""
    raw = data.get("decision_rule")
    if data["schema_version"] == 1:
        if raw is not None:
            raise GateInputError(path, "decision_rule needs schema_version: 2 or 3")
        return DecisionRule()
    if raw is None:
        raise GateInputError(path, f"schema_version {data['schema_version']} requires decision_rule: {{kind: point}} "
                                   "or {kind: confidence, level: 0.95}")
    if raw["kind"] == CONFIDENCE and "level" not in raw:
        raise GateInputError(path, "decision_rule of kind confidence requires a level (e.g. 0.95)")
    if raw["kind"] == POINT and raw.get("holm"):
        raise GateInputError(path, "decision_rule: holm applies to the confidence rule only")
    return DecisionRule(raw["kind"], float(raw.get("level", DecisionRule.level)), bool(raw.get("holm", False)))


def _criterion(raw, rule, path):
    """A Criterion from its schema-checked entry: a legacy `kind`, or (schema_version 3) its measure's parts,
    which must be a measure the decision rule can bound."""
    where = dict(id=raw["id"], corpus=raw["corpus"], failure_class=raw["failure_class"],
                 threshold=float(raw["threshold"]))
    if "kind" in raw:
        if "vs" in raw and measures.legacy_measure(raw["kind"]).vs is None:
            raise GateInputError(path, f"criterion {raw['id']!r}: `vs` names the reference of a regression; kind "
                                       f"{raw['kind']!r} measures the candidate alone")
        return Criterion.of_kind(**where, kind=raw["kind"], vs=raw.get("vs", roles.BASELINE))
    measure = Measure(raw["metric"], raw["statistic"], raw["bound"], raw.get("vs"))
    problem = measure.problem(rule.kind)
    if problem:
        raise GateInputError(path, f"criterion {raw['id']!r} ({rule.kind} rule): {problem}")
    return Criterion(measure=measure, **where)


def load_criteria(path):
    """Parse and cross-check the criteria file at `path`."""
    data, digest = load_yaml(path, schema())
    rule = _decision_rule(data, path)
    classes = tuple(_failure_class(raw, path) for raw in data["failure_classes"])
    _unique([c.id for c in classes], "failure class", path)
    for c in classes:
        if c.id in _RESERVED:
            raise GateInputError(path, f"failure class id {c.id!r} is reserved ({', '.join(_RESERVED)})")
    criteria = tuple(_criterion(raw, rule, path) for raw in data["criteria"])
    _unique([c.id for c in criteria], "criterion", path)
    known = {ALL, EACH, UNCLASSIFIED, *(c.id for c in classes)}
    for c in criteria:
        if c.failure_class not in known:
            raise GateInputError(path, f"criterion {c.id!r} names unknown failure class {c.failure_class!r}; "
                                       f"known: {', '.join(sorted(known))}")
        if c.failure_class == EACH and not classes:
            raise GateInputError(path, f"criterion {c.id!r}: failure_class 'each' checks nothing, the taxonomy "
                                       "(failure_classes) is empty")
        if c.corpus == "test" and c.failure_class != ALL:
            raise GateInputError(path, f"criterion {c.id!r}: the test corpus has no failure classes (they come from "
                                       f"flagged CropRun rows), so {c.failure_class!r} would check nothing; use 'all'")
    return SuccessCriteria(str(path), digest, data["example_values"], float(data["iou_pass_threshold"]),
                           data["min_images"], classes, criteria,
                           float(data.get("max_empty_truth_share", DEFAULT_MAX_EMPTY_TRUTH_SHARE)), rule)
