"""The success criteria and failure-class taxonomy owned by #413 (configs/success_criteria.yaml).

The gate only reads this file: every threshold and every class comes from it. Parsing is strict (see
eval/inputs/yaml_config.py) and the cross-references are checked here, so a criterion can never silently
point at nothing.
"""

import dataclasses
import re

from eval.errors import GateInputError
from eval.inputs.yaml_config import load_yaml

CORPORA = ("test", "flagged")
POINT, CONFIDENCE = "point", "confidence"
KINDS = ("min_pass_rate", "min_mean_iou", "max_mean_iou_regression", "min_mean_boundary_iou",
         "max_mean_boundary_iou_regression")
ALL = "all"
EACH = "each"
UNCLASSIFIED = "unclassified"
_RESERVED = (ALL, EACH, UNCLASSIFIED)

_UNIT = {"type": "number", "minimum": 0, "maximum": 1}
_ID = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}\\Z"}  # \Z: Python's $ also matches before a final "\n"
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["schema_version", "example_values", "iou_pass_threshold", "min_images",
                 "failure_classes", "criteria"],
    "properties": {
        "schema_version": {"enum": [1, 2]},
        "decision_rule": {  # schema_version 2 only (checked below)
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
        "criteria": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "kind", "corpus", "failure_class", "threshold"],
            "properties": {
                "id": _ID,
                "kind": {"enum": list(KINDS)},
                "corpus": {"enum": list(CORPORA)},
                "failure_class": {"type": "string"},
                "threshold": _UNIT,
            },
        }},
    },
}


@dataclasses.dataclass(frozen=True)
class FailureClass:
    """A class of the #413 taxonomy and the rule that maps a CropRun row to it."""

    id: str
    description: str
    notes_patterns: tuple = ()
    source_match: tuple = ()  # ((field, (allowed values...)), ...)

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
    kind: str
    corpus: str
    failure_class: str  # a class id, ALL, or EACH (expanded by the decision step)
    threshold: float


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
    decision_rule: DecisionRule = DecisionRule()

    @property
    def class_ids(self):
        return tuple(c.id for c in self.failure_classes)

    def classify(self, notes, source):
        """Failure classes of one flagged row, in taxonomy order; (UNCLASSIFIED,) when none match."""
        matched = tuple(c.id for c in self.failure_classes if c.matches(notes, source))
        return matched or (UNCLASSIFIED,)


def _unique(ids, what, path):
    seen = set()
    for item in ids:
        if item in seen:
            raise GateInputError(path, f"duplicate {what} id {item!r}")
        seen.add(item)


def _failure_class(raw, path):
    patterns = []
    for pattern in raw["match"].get("notes_any", []):
        try:
            patterns.append(re.compile(pattern, re.IGNORECASE))
        except (re.error, OverflowError, RecursionError) as err:  # huge repeat counts, absurd nesting
            raise GateInputError(path, f"failure class {raw['id']!r}: bad regex {pattern!r} ({err})") from None
    source = tuple(sorted((f, tuple(v)) for f, v in raw["match"].get("source", {}).items()))
    return FailureClass(raw["id"], raw["description"], tuple(patterns), source)


def _decision_rule(data, path):
    """schema_version 1 has no decision_rule and decides on point values; version 2 must state its rule."""
    raw = data.get("decision_rule")
    if data["schema_version"] == 1:
        if raw is not None:
            raise GateInputError(path, "decision_rule needs schema_version: 2")
        return DecisionRule()
    if raw is None:
        raise GateInputError(path, "schema_version 2 requires decision_rule: {kind: point} or "
                                   "{kind: confidence, level: 0.95}")
    if raw["kind"] == CONFIDENCE and "level" not in raw:
        raise GateInputError(path, "decision_rule of kind confidence requires a level (e.g. 0.95)")
    if raw["kind"] == POINT and raw.get("holm"):
        raise GateInputError(path, "decision_rule: holm applies to the confidence rule only")
    return DecisionRule(raw["kind"], float(raw.get("level", DecisionRule.level)), bool(raw.get("holm", False)))


def load_criteria(path):
    """Parse and cross-check the criteria file at `path`."""
    data, digest = load_yaml(path, SCHEMA)
    rule = _decision_rule(data, path)
    classes = tuple(_failure_class(raw, path) for raw in data["failure_classes"])
    _unique([c.id for c in classes], "failure class", path)
    for c in classes:
        if c.id in _RESERVED:
            raise GateInputError(path, f"failure class id {c.id!r} is reserved ({', '.join(_RESERVED)})")
    criteria = tuple(Criterion(r["id"], r["kind"], r["corpus"], r["failure_class"], float(r["threshold"]))
                     for r in data["criteria"])
    _unique([c.id for c in criteria], "criterion", path)
    known = {ALL, EACH, UNCLASSIFIED, *(c.id for c in classes)}
    for c in criteria:
        if c.failure_class not in known:
            raise GateInputError(path, f"criterion {c.id!r} names unknown failure class {c.failure_class!r}; "
                                       f"known: {', '.join(sorted(known))}")
    return SuccessCriteria(str(path), digest, data["example_values"], float(data["iou_pass_threshold"]),
                           data["min_images"], classes, criteria, rule)
