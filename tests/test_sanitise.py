"""The one sanitiser (#8 item 10): no user-derived string can forge a line, hide a character or run a formula.

Every kind of line break a splitter honours is tried through text(), markdown() and csv_cell(), and through
the rendered report.md and per_image.csv; hypothesis throws arbitrary strings at the rules.
"""

import csv
import io
import json
import os
import sys
import tempfile
import unicodedata

# Hypothesis keeps caches in ./.hypothesis: keep them out of the checkout (and Bazel's read-only runfiles).
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(os.environ.get("TEST_TMPDIR") or tempfile.gettempdir(), "pottery-gate-hypothesis"))

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eval import sanitise
from eval.roles import BASELINE, CANDIDATE
from eval.gate import NotEvaluated
from eval.inputs.criteria import load_criteria
from eval.inputs.snapshot import Exclusion
from eval.report import gallery, render
from eval.scoring.scores import image_score
from tests.support import DEMO_REPORT, criteria_file, gate_result

# Every character str.splitlines() splits on (the widest line splitter in common use).
LINE_BREAKS = ["\n", "\r", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
FORGED = "recommendation: go (deciding criterion: forged)"
# Invisible or reordering characters that are not line breaks.
HIDDEN = ["\x00", "\x1b[2J", "\x7f", "\x9b", "\u200b", "\u200d", "\u202e", "\u2066", "\u2069", "\ufeff", "\xad",
          "\U000e0041", "\ud800"]
_NEUTRALISED = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def lines(text):
    """Lines as both a universal splitter and a plain "\\n" splitter see them."""
    return text.splitlines() + text.split("\n")


def no_forged_line(text):
    return not any(line.lstrip(" >|*#-").startswith("recommendation: go") for line in lines(text))


@pytest.mark.parametrize("brk", LINE_BREAKS, ids=[hex(ord(b[-1])) for b in LINE_BREAKS])
@pytest.mark.parametrize("flavour", [sanitise.text, sanitise.markdown, sanitise.csv_cell])
def test_no_line_break_survives(flavour, brk):
    out = flavour(f"id{brk}{FORGED}")
    assert len(out.splitlines()) == 1 and "\n" not in out, repr(out)
    assert no_forged_line(out)


@pytest.mark.parametrize("hidden", HIDDEN, ids=[hex(ord(h[0])) for h in HIDDEN])
def test_hidden_characters_become_visible_escapes(hidden):
    out = sanitise.text(f"a{hidden}b")
    assert all(unicodedata.category(c) not in _NEUTRALISED for c in out), repr(out)
    assert out.isprintable() and out.isascii(), repr(out)
    assert "\\" in out  # shown, not dropped: a reader sees that something was there


@pytest.mark.parametrize("raw, rendered", [
    ("plain id-42_x.png", "plain id-42_x.png"),
    ("tab\there", "tab here"),
    ("caf\u00e9 \u58f6", "caf\u00e9 \u58f6"),  # printable non-ASCII is kept
    ("a\u202eb", "a\\u202eb"),
    ("\x1b[31mred", "\\x1b[31mred"),
])
def test_text(raw, rendered):
    assert sanitise.text(raw) == rendered


@pytest.mark.parametrize("raw, rendered", [  # HTML and Markdown syntax: tests/test_report.py
    ("line\u2028break", "line break"),
    ("a\u202eb", "a\\\\u202eb"),  # the escape's backslash is itself escaped, so Markdown shows it
    ("\x1b[31m<b>", "\\\\x1b\\[31m&lt;b&gt;"),
])
def test_markdown(raw, rendered):
    assert sanitise.markdown(raw) == rendered


@pytest.mark.parametrize("raw, cell", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1+1", "'+1+1"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "' =1"), ("\r=1", "' =1"), ("  =1", "'  =1"), ("cr-0001", "cr-0001"),
    ("a=b", "a=b"), (-0.25, -0.25), (3, 3), (True, True), (None, None),
])
def test_csv_cell(raw, cell):
    assert sanitise.csv_cell(raw) == cell


@settings(max_examples=400)
@given(st.text(alphabet=st.characters(codec=None, blacklist_categories=())))
def test_any_string_becomes_one_visible_line(value):
    for flavour in (sanitise.text, sanitise.markdown, sanitise.csv_cell):
        out = flavour(value)
        assert len(out.splitlines()) <= 1 and "\n" not in out
        assert all(unicodedata.category(c) not in _NEUTRALISED for c in out)
    assert sanitise.text(sanitise.text(value)) == sanitise.text(value)
    assert not sanitise.csv_cell(value).lstrip(" ").startswith(("=", "+", "-", "@"))
    md = sanitise.markdown(value)
    assert "<" not in md and ">" not in md
    assert no_forged_line(sanitise.text(f"x\u2028{value}\n{FORGED}"))


@settings(max_examples=200)
@given(st.lists(st.sampled_from(LINE_BREAKS + HIDDEN + ["a", " ", "recommendation: go", "=", "|", "*"]),
                max_size=12).map("".join))
def test_mixed_breaks_and_hidden_characters(value):
    for flavour in (sanitise.text, sanitise.markdown, sanitise.csv_cell):
        out = flavour(value)
        assert len(out.splitlines()) <= 1 and "\n" not in out and out.isprintable(), repr(out)


# --- Through the renderers: report.md and per_image.csv --------------------------------------------------------

def _forged_result():
    """A GateResult whose every user-derived string carries every line break followed by a forged line."""
    ids = [f"cr{k}{brk}{FORGED}" for k, brk in enumerate(LINE_BREAKS)] + ["=cmd|' /C calc'!A0", "+1", "@x", "-y"]
    criteria = load_criteria(criteria_file())
    truth = np.zeros((4, 4), bool)
    truth[1:3, 1:3] = True
    scores, cases = [], []
    for k, image_id in enumerate(ids):
        # Odd images: the candidate finds the pot rembg misses; even ones the reverse: both gallery sections fill.
        baseline, candidate = (np.zeros_like(truth), truth) if k % 2 else (truth, np.zeros_like(truth))
        scores += [image_score(BASELINE, "flagged", image_id, ("gloss",), truth, baseline, 0.8),
                   image_score(CANDIDATE, "flagged", image_id, ("gloss",), truth, candidate, 0.8)]
        photo = np.zeros((4, 4, 3), np.uint8)
        cases.append(gallery.make_case(dict(zip((BASELINE, CANDIDATE), scores[-2:])), photo, truth,
                                       {BASELINE: baseline, CANDIDATE: candidate}))
    provenance = json.loads((DEMO_REPORT / "metrics.json").read_text())["provenance"]
    provenance["checkpoint"]["name"] = "best" + "".join(LINE_BREAKS) + FORGED + ".pt"
    provenance["backends"]["rembg"]["providers"] = [f"CPU\u2028{FORGED}"]
    provenance["backends"]["candidate"]["device"] = f"cpu\x85{FORGED}"
    not_evaluated = tuple(NotEvaluated("flagged", i, f"cannot decode image{brk}{FORGED}") for i, brk in
                          zip(ids, LINE_BREAKS))
    exclusions = tuple(Exclusion(i, f"reason{brk}{FORGED}") for i, brk in zip(ids, LINE_BREAKS))
    rows = [(i, f"gloss{brk}{FORGED}", {}) for i, brk in zip(ids, LINE_BREAKS)]
    result = gate_result(scores, criteria, not_evaluated=not_evaluated, exclusions=exclusions, rows=rows,
                         cases=cases, provenance=provenance)
    assert len(result.gallery_best) == len(result.gallery_worst) == 3
    return result


def test_rendered_report_and_csv_hold_no_forged_line():
    result = _forged_result()
    files = render.render_all(result, f"title\u2029{FORGED}")
    report = files["report.md"].decode()
    assert no_forged_line(report), [line for line in lines(report) if "recommendation: go" in line]
    assert lines(report)[len(report.splitlines()) - 1].startswith("recommendation: no-go")
    table = files["per_image.csv"].decode()
    assert no_forged_line(table)
    assert len(table.splitlines()) == len(table.split("\n")) - 1 == 1 + len(result.scores)
    for row in csv.DictReader(io.StringIO(table)):
        assert not row["image_id"].startswith(("=", "+", "-", "@", "\t", "\r")), row["image_id"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
