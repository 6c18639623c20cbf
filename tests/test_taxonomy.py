"""The shipped failure-class taxonomy maps notes by what they mean, and the mapping can be audited.

Every class has notes that must land in it and notes that must not (words that merely contain a
pattern: "something" is not thin, "sunshine" is not shiny, "ice cream" is not a cream glaze). The
patterns are also checked to mean the same under Python's re and RE2, the two engines the gate may use.
"""

import re
import sys

import pytest
import re2

from eval.inputs.criteria import UNCLASSIFIED, load_criteria
from eval.scoring import class_audit
from tests.support import CRITERIA, criteria_file

GLOSS, WHITE, SHADOW, BUSY, THIN = ("glossy_highlight", "white_on_white", "cast_shadow", "busy_background",
                                    "thin_structure")
NONE = (UNCLASSIFIED,)

# (notes, the classes they must land in[, the class whose pattern they must NOT trip: a false friend])
TABLE = [
    # glossy_highlight
    ("Very glossy glaze", (GLOSS,)),
    ("the GLAZE came out as holes", (GLOSS,)),
    ("Reflections on the glazed body", (GLOSS,)),
    ("Shiny celadon vase", (GLOSS,)),
    ("the shine on the shoulder became a hole", (GLOSS,)),
    ("strong highlights on the rim", (GLOSS,)),
    ("a specular spot", (GLOSS,)),
    ("sunshine through the window", NONE, GLOSS),
    ("unglazed bisque, matte", NONE, GLOSS),
    ("shin-high floor vase", NONE, GLOSS),
    ("see the glossary", NONE, GLOSS),
    # white_on_white
    ("white on white again", (WHITE,)),
    ("White against a white wall", (WHITE,)),
    ("white on off-white", (WHITE,)),
    ("pale bowl", (WHITE,)),
    ("paler than the backdrop", (WHITE,)),
    ("low-contrast edges", (WHITE,)),
    ("on a white background", (WHITE,)),
    ("cream mug", (WHITE,)),
    ("on a cream tablecloth", (WHITE,)),
    ("nice cream stoneware", (WHITE,)),
    ("Creamy stoneware", (WHITE,)),
    ("ice cream bowl", NONE, WHITE),
    ("the Ice-Cream dish", NONE, WHITE),
    ("an ICE  CREAM cup", NONE, WHITE),
    ("icecream", NONE, WHITE),
    ("a palette of colours", NONE, WHITE),
    ("the impaled label", NONE, WHITE),
    ("white mug", NONE, WHITE),
    # cast_shadow
    ("drop shadow kept", (SHADOW,)),
    ("Shadows on the table", (SHADOW,)),
    ("the shadowed side", (SHADOW,)),
    ("foreshadowing a problem", NONE, SHADOW),
    ("shadowbox frame on the wall", NONE, SHADOW),
    # busy_background
    ("busy background", (BUSY,)),
    ("Clutter around the piece", (BUSY,)),
    ("a cluttered studio", (BUSY,)),
    ("patterned cloth", (BUSY,)),
    ("the pattern bled in", (BUSY,)),
    ("Studio shelves in the back", (BUSY,)),
    ("bookshelf behind it", (BUSY,)),
    ("crop grabbed background objects", (BUSY,)),
    ("busybody customer", NONE, BUSY),
    ("unpatterned plain backdrop", NONE, BUSY),
    ("background is fine", NONE, BUSY),
    # thin_structure
    ("handle cut off", (THIN,)),
    ("Handles missing", (THIN,)),
    ("spout gone", (THIN,)),
    ("**Thin handle** cut off", (THIN,)),
    ("thinner walls lost", (THIN,)),
    ("lugs missing", (THIN,)),
    ("something is off", NONE, THIN),
    ("nothing to add", NONE, THIN),
    ("within the frame", NONE, THIN),
    ("thinking it over", NONE, THIN),
    ("the order was mishandled", NONE, THIN),
    ("plug visible", NONE, THIN),
    # several classes, and none
    ("Handle missing from the crop and the glossy glaze left gaps", (GLOSS, THIN)),
    ("Shiny pot on a busy shelf, shadow kept", (GLOSS, SHADOW, BUSY)),
    ("", NONE),
    (None, NONE),
]


@pytest.fixture(scope="module")
def shipped():
    return load_criteria(CRITERIA)


@pytest.mark.parametrize("notes, expected", [row[:2] for row in TABLE])
def test_shipped_taxonomy(shipped, notes, expected):
    assert shipped.classify(notes, {}) == expected


def test_every_class_has_positive_notes_and_false_friends(shipped):
    for class_id in shipped.class_ids:
        assert len([row for row in TABLE if row[1] == (class_id,)]) >= 3, class_id
        assert len([row for row in TABLE if row[2:] == (class_id,)]) >= 2, class_id


def test_patterns_mean_the_same_in_python_re_and_re2(shipped):
    """Whichever engine the loader uses, the shipped patterns find the same spans in both."""
    options = re2.Options()
    options.case_sensitive = False
    for failure_class in shipped.failure_classes:
        for source in (p.pattern for p in failure_class.notes_patterns):
            python, google = re.compile(source, re.IGNORECASE), re2.compile(source, options)
            for notes, *_ in TABLE:
                a, b = python.search(notes or ""), google.search(notes or "")
                assert (a and a.span()) == (b and b.span()), (source, notes)


def _criteria():
    return load_criteria(criteria_file())  # classes: gloss ('gloss', 'shiny' in notes), studio_b (source deployment)


def test_audit_counts_rows_and_shows_the_matched_span():
    long_tail = "x" * 100
    rows = [("r4", "very SHINY pot " + long_tail, {}), ("r2", "glossy", {"deployment": "studio-b"}),
            ("r1", "shiny", {}), ("r3", "nothing to see", {}), ("r5", "gloss", {}),
            ("r6", "plain", {"deployment": "studio-b"})]
    audit = {a.failure_class: a for a in class_audit.audit_classes(_criteria(), rows)}
    assert list(audit) == ["gloss", "studio_b", UNCLASSIFIED]
    assert (audit["gloss"].n_rows, audit["studio_b"].n_rows, audit[UNCLASSIFIED].n_rows) == (4, 2, 1)
    assert [x.row_id for x in audit["gloss"].examples] == ["r1", "r2", "r4"]  # first EXAMPLES by id
    r4 = audit["gloss"].examples[2]
    assert (r4.before, r4.matched, r4.by) == ("very ", "SHINY", "notes")
    assert r4.after == " pot " + "x" * (class_audit.CONTEXT - 5) + "…"
    r2 = audit["gloss"].examples[1]
    assert (r2.matched, r2.by) == ("gloss", "notes")  # the first pattern in file order that matches
    r6 = audit["studio_b"].examples[1]
    assert (r6.row_id, r6.matched, r6.after, r6.by) == ("r6", "", "plain", "source")
    assert audit[UNCLASSIFIED].examples[0] == class_audit.AuditExample("r3", "", "", "nothing to see", "none")


def test_audit_of_the_shipped_taxonomy_matches_classify(shipped):
    rows = [(f"r{i:02d}", notes, {}) for i, (notes, *_) in enumerate(TABLE)]
    audit = class_audit.audit_classes(shipped, rows)
    for entry in audit:
        expected = [r for r, (_, classes, *_) in zip(rows, TABLE) if entry.failure_class in classes]
        assert entry.n_rows == len(expected), entry.failure_class
        for example in entry.examples:
            notes = dict((r[0], r[1]) for r in rows)[example.row_id] or ""
            assert example.before + example.matched + example.after == notes
            if example.by == "notes":
                assert re.fullmatch(r"\S(.*\S)?", example.matched), example  # bold never starts on a space


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
