"""What the failure-class taxonomy did to the flagged rows, so #413's owners can audit the mapping.

Per class: how many rows it took, and the first few of them (by row id) with the span of the notes that
put them there. Pure: rows in, a value object out; the report escapes every piece of note text.
"""

import dataclasses

from eval.inputs.criteria import UNCLASSIFIED

EXAMPLES = 3  # rows shown per class
CONTEXT = 60  # characters of notes kept on each side of the matched span


@dataclasses.dataclass(frozen=True)
class AuditExample:
    row_id: str
    before: str  # notes before the matched span, clipped to CONTEXT characters ("…" marks a cut)
    matched: str  # the span a notes pattern matched; "" when the row came in by its source fields, or none
    after: str
    by: str  # "notes", "source" (every listed CropRun.source field matched) or "none" (unclassified)


@dataclasses.dataclass(frozen=True)
class ClassAudit:
    failure_class: str
    n_rows: int
    examples: tuple  # AuditExample


def _example(row_id, notes, span, by):
    notes = notes or ""
    start, end = span or (0, 0)
    while start < end and notes[start].isspace():  # bold (**x**) in Markdown must not start or end on a space
        start += 1
    while end > start and notes[end - 1].isspace():
        end -= 1
    before, after = notes[:start], notes[end:]
    before = before if len(before) <= CONTEXT else "…" + before[-CONTEXT:]
    after = after if len(after) <= CONTEXT else after[:CONTEXT] + "…"
    return AuditExample(row_id, before, notes[start:end], after, by)


def audit_classes(criteria, rows):
    """ClassAudit per class of `criteria` in taxonomy order, then `unclassified`; rows: (id, notes, source).

    Rows are classified by criteria.classify itself, so the audit shows exactly the gate's mapping.
    """
    classes = {c.id: c for c in criteria.failure_classes}
    taken = {class_id: [] for class_id in (*classes, UNCLASSIFIED)}
    for row_id, notes, source in sorted(rows, key=lambda row: row[0]):
        for class_id in criteria.classify(notes, source):
            span = classes[class_id].notes_span(notes) if class_id in classes else None
            by = "none" if class_id == UNCLASSIFIED else "source" if span is None else "notes"
            taken[class_id].append(_example(row_id, notes, span, by))
    return tuple(ClassAudit(class_id, len(examples), tuple(examples[:EXAMPLES]))
                 for class_id, examples in taken.items())
