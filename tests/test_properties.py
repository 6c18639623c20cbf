"""Property tests (#3): generated criteria files and CropRun JSONL rows thrown at the loaders.

Only GateInputError may escape load_criteria / load_snapshot, whatever the input; a document made
invalid by one known mutation never loads; and whatever does load satisfies every rule the gate relies
on (so an invalid document cannot slip through as a "valid" one and end in a go).
"""

import copy
import json
import math
import os
import re
import sys
import tempfile

# Hypothesis keeps caches in ./.hypothesis: keep them out of the checkout (and Bazel's read-only runfiles).
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(os.environ.get("TEST_TMPDIR") or tempfile.gettempdir(), "pottery-gate-hypothesis"))

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

import numpy as np
from PIL import Image

from eval.decision.decide import PASS, decide
from eval.errors import GateInputError
from eval.inputs.criteria import ALL, CORPORA, EACH, UNCLASSIFIED, load_criteria
from eval.inputs.images import load_mask
from eval.scoring.scores import aggregate, image_score
from eval.inputs.snapshot import NO_ANNOTATION, NOT_HUMAN, load_snapshot
from eval.measures import LEGACY_KINDS
from tests.support import write_snapshot

KINDS = tuple(LEGACY_KINDS)  # schema_version 1's criterion kinds
PROPERTY = settings(max_examples=80)
FEW = settings(max_examples=50)
RESERVED = (ALL, EACH, UNCLASSIFIED)
ID = re.compile(r"[a-z][a-z0-9_]{0,63}")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """One scratch folder per module (hypothesis reuses it across examples; each example rewrites its file)."""
    return tmp_path_factory.mktemp("properties")


# --- Criteria documents -----------------------------------------------------------------------------------------

ids = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(lambda s: s not in RESERVED)
unit = st.floats(0, 1)
texts = st.text(max_size=20)
source_fields = st.sampled_from(["type", "backend", "deployment", "version"])


@st.composite
def matches(draw):
    match = {}
    if draw(st.booleans()):
        match["notes_any"] = draw(st.lists(st.text(min_size=1, max_size=8).map(re.escape), min_size=1, max_size=3))
    if draw(st.booleans()) or not match:
        fields = draw(st.lists(source_fields, min_size=1, max_size=4, unique=True))
        match["source"] = {f: draw(st.lists(texts, min_size=1, max_size=3)) for f in fields}
    return match


@st.composite
def criteria_docs(draw):
    class_ids = draw(st.lists(ids, unique=True, max_size=4))
    classes = [{"id": i, "description": draw(texts), "match": draw(matches())} for i in class_ids]
    criteria = []
    for c in draw(st.lists(ids, unique=True, min_size=1, max_size=5)):
        corpus = draw(st.sampled_from(CORPORA))
        # Only what checks something: the test corpus has no classes; `each` needs a taxonomy.
        measurable = [ALL] if corpus == "test" else [ALL, UNCLASSIFIED, *class_ids, *([EACH] if class_ids else [])]
        criteria.append({"id": c, "kind": draw(st.sampled_from(KINDS)), "corpus": corpus,
                         "failure_class": draw(st.sampled_from(measurable)), "threshold": draw(unit)})
    doc = {"schema_version": 1, "example_values": draw(st.booleans()),
           "iou_pass_threshold": draw(st.floats(0, 1, exclude_min=True)), "min_images": draw(st.integers(1, 10**6)),
           "failure_classes": classes, "criteria": criteria}
    if draw(st.booleans()):
        doc["max_empty_truth_share"] = draw(unit)
    return doc


def dump(doc):
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)




def write(work, text, name="criteria.yaml"):
    path = work / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def assert_loaded_criteria_are_sound(loaded):
    """Every rule of the schema and the cross-checks, on what load_criteria returned."""
    assert math.isfinite(loaded.iou_pass_threshold) and 0 < loaded.iou_pass_threshold <= 1
    assert isinstance(loaded.min_images, int) and loaded.min_images >= 1
    assert isinstance(loaded.example_values, bool)
    class_ids = [c.id for c in loaded.failure_classes]
    assert len(set(class_ids)) == len(class_ids)
    assert all(ID.fullmatch(i) and i not in RESERVED for i in class_ids)
    assert loaded.criteria
    criterion_ids = [c.id for c in loaded.criteria]
    assert len(set(criterion_ids)) == len(criterion_ids) and all(ID.fullmatch(i) for i in criterion_ids)
    assert math.isfinite(loaded.max_empty_truth_share) and 0 <= loaded.max_empty_truth_share <= 1
    for c in loaded.criteria:
        assert c.kind in KINDS and c.corpus in CORPORA
        assert c.failure_class in (*RESERVED, *class_ids)
        assert math.isfinite(c.threshold) and 0 <= c.threshold <= 1
        assert c.failure_class != EACH or class_ids, "each over an empty taxonomy checks nothing"
        assert c.corpus != "test" or c.failure_class == ALL, "the test corpus has no failure classes"


def load_or_refuse(path):
    """load_criteria's result, or None when it refused with a GateInputError naming `path`."""
    try:
        loaded = load_criteria(path)
    except GateInputError as err:
        assert err.where == str(path), err
        return None
    assert_loaded_criteria_are_sound(loaded)
    return loaded


@PROPERTY
@given(doc=criteria_docs())
def test_valid_criteria_documents_load_as_written(work, doc):
    loaded = load_criteria(write(work, dump(doc)))
    assert_loaded_criteria_are_sound(loaded)
    assert loaded.iou_pass_threshold == doc["iou_pass_threshold"] and loaded.min_images == doc["min_images"]
    assert [c.id for c in loaded.failure_classes] == [c["id"] for c in doc["failure_classes"]]
    assert [(c.id, c.kind, c.corpus, c.failure_class, c.threshold) for c in loaded.criteria] == [
        (c["id"], c["kind"], c["corpus"], c["failure_class"], c["threshold"]) for c in doc["criteria"]]


def _not_in(values):
    return st.text(max_size=12).filter(lambda s: s not in values)


bad_ids = st.one_of(st.sampled_from(["gloss\n", "Gloss", "9lives", "a-b", "", "x" * 65, "all\n"]),
                    st.text(max_size=12).filter(lambda s: not ID.fullmatch(s)), st.integers(), st.none())
bad_unit = st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1 + 1e-9), st.just(math.nan),
                     st.just(math.inf), st.just(-math.inf), texts, st.booleans(), st.none(), st.lists(unit, max_size=2))


@st.composite
def invalid_criteria_docs(draw):
    """A valid document with one change the schema or the cross-checks must refuse; (doc, what changed)."""
    doc = copy.deepcopy(draw(criteria_docs()))
    crit = doc["criteria"][draw(st.integers(0, len(doc["criteria"]) - 1))]
    mutation = draw(st.sampled_from([
        "drop_top_key", "unknown_top_key", "iou", "min_images", "threshold", "kind", "corpus", "failure_class",
        "duplicate_criterion", "duplicate_class", "reserved_class", "bad_class_id", "unknown_criterion_key",
        "unknown_match_key", "schema_version", "example_values", "no_criteria", "drop_criterion_key", "bad_regex",
        "empty_match", "bad_criterion_id", "each_without_classes", "test_corpus_class", "not_re2",
        "max_empty_truth_share"]))
    if mutation == "drop_top_key":
        del doc[draw(st.sampled_from(sorted(doc)))]
    elif mutation == "unknown_top_key":
        doc[draw(_not_in(doc))] = draw(texts)
    elif mutation == "iou":
        doc["iou_pass_threshold"] = draw(st.one_of(bad_unit, st.just(0), st.just(0.0)))
    elif mutation == "min_images":
        doc["min_images"] = draw(st.one_of(st.integers(max_value=0), st.floats(allow_nan=True).filter(
            lambda v: not (math.isfinite(v) and v == int(v) and v >= 1)), texts, st.booleans(), st.none()))
    elif mutation == "threshold":
        crit["threshold"] = draw(bad_unit)
    elif mutation == "kind":
        crit["kind"] = draw(_not_in(KINDS))
    elif mutation == "corpus":
        crit["corpus"] = draw(_not_in(CORPORA))
    elif mutation == "failure_class":
        crit["failure_class"] = draw(st.one_of(
            _not_in([*RESERVED, *(c["id"] for c in doc["failure_classes"])]), st.integers(), st.none()))
    elif mutation == "duplicate_criterion":
        doc["criteria"].append(dict(crit))
    elif mutation == "duplicate_class":
        extra = {"id": draw(ids), "description": "d", "match": {"notes_any": ["x"]}}
        doc["failure_classes"] += [extra, dict(extra)]
    elif mutation == "reserved_class":
        doc["failure_classes"].append({"id": draw(st.sampled_from(RESERVED)), "description": "d",
                                       "match": {"notes_any": ["x"]}})
    elif mutation == "bad_class_id":
        doc["failure_classes"].append({"id": draw(bad_ids), "description": "d", "match": {"notes_any": ["x"]}})
    elif mutation == "bad_criterion_id":
        crit["id"] = draw(bad_ids)
    elif mutation == "unknown_criterion_key":
        crit[draw(_not_in(crit))] = 1
    elif mutation == "unknown_match_key":
        doc["failure_classes"].append({"id": "zz_extra", "description": "d",
                                       "match": {draw(_not_in(["notes_any", "source"])): ["x"]}})
    elif mutation == "schema_version":
        doc["schema_version"] = draw(st.one_of(st.integers().filter(lambda v: v != 1), texts, st.none()))
    elif mutation == "example_values":
        doc["example_values"] = draw(st.one_of(st.integers(), texts, st.none()))
    elif mutation == "no_criteria":
        doc["criteria"] = draw(st.sampled_from([[], None, {}, "all"]))
    elif mutation == "drop_criterion_key":
        del crit[draw(st.sampled_from(sorted(crit)))]
    elif mutation == "bad_regex":
        doc["failure_classes"].append({"id": "zz_regex", "description": "d",
                                       "match": {"notes_any": [draw(st.sampled_from(
                                           ["(", "[a-", "a{99999999999}", "a{1001}", "*", "(?P<x", "\\"]))]}})
    elif mutation == "each_without_classes":
        doc["failure_classes"] = []
        crit["failure_class"] = EACH
    elif mutation == "test_corpus_class":
        crit.update(corpus="test", failure_class=draw(st.sampled_from(
            [EACH, UNCLASSIFIED, *(c["id"] for c in doc["failure_classes"])])))
    elif mutation == "not_re2":  # valid for Python's backtracking re, not for RE2
        doc["failure_classes"].append({"id": "zz_re2", "description": "d", "match": {"notes_any": [draw(
            st.sampled_from(["(a)\\1", "(?=gloss)", "(?!x)y", "(?<=a)b", "(?<!a)b", "gloss\\Z", "(?>a)"]))]}})
    elif mutation == "max_empty_truth_share":
        doc["max_empty_truth_share"] = draw(bad_unit)
    elif mutation == "empty_match":
        doc["failure_classes"].append({"id": "zz_empty", "description": "d", "match": {}})
    return doc, mutation


BASE = {"schema_version": 1, "example_values": False, "iou_pass_threshold": 0.8, "min_images": 2,
        "failure_classes": [{"id": "gloss", "description": "d", "match": {"notes_any": ["gloss"]}}],
        "criteria": [{"id": "pass_rate", "kind": "min_pass_rate", "corpus": "flagged", "failure_class": "all",
                      "threshold": 0.5}]}


def changed(top=None, criterion=None, failure_class=None):
    """BASE with some top-level, criterion or failure-class fields replaced: a fixed example for a mutation."""
    doc = copy.deepcopy(BASE)
    doc.update(top or {})
    doc["criteria"][0].update(criterion or {})
    doc["failure_classes"][0].update(failure_class or {})
    return doc


@PROPERTY
@given(case=invalid_criteria_docs())
@example(case=(changed(top={"iou_pass_threshold": math.nan}), "NaN passes minimum and maximum"))
@example(case=(changed(criterion={"threshold": math.nan}), "NaN threshold"))
@example(case=(changed(criterion={"threshold": math.inf}), "infinite threshold"))
@example(case=(changed(criterion={"id": "pass_rate\n"}), "$ matches before a final newline"))
@example(case=(changed(failure_class={"id": "gloss\n"}), "$ matches before a final newline"))
@example(case=(changed(failure_class={"match": {"notes_any": ["a{99999999999}"]}}), "OverflowError"))
@example(case=(changed(failure_class={"match": {"notes_any": ["a{1001}"]}}), "RE2: repeat count over 1000"))
@example(case=(changed(top={"min_images": 2.5}), "fractional count"))
def test_invalid_criteria_documents_never_load(work, case):
    doc, mutation = case
    path = write(work, dump(doc))
    with pytest.raises(GateInputError) as err:
        load_criteria(path)
    assert err.value.where == str(path), (mutation, err.value)


@FEW
@given(text=st.text(max_size=400))
@example(text="? [a]\n: 1\n")
@example(text="a: 1\na: 2\n")
@example(text="x: &a [1]\ny: *a\n")
@example(text="[" * 3000)
@example(text="a: !!python/object/apply:os.getcwd []\n")
@example(text="1: x\nfoo: y\n")
@example(text="a: \x00\n")
def test_arbitrary_text_only_ever_raises_gate_input_error(work, text):
    assert load_or_refuse(write(work, text)) is None


@FEW
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_only_ever_raise_gate_input_error(work, data):
    assert load_or_refuse(write(work, data)) is None


yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), texts),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.one_of(texts, st.integers(), st.booleans()), children, max_size=4)),
    max_leaves=20)


@st.composite
def grafted_docs(draw):
    """A valid document with one value (anywhere in the tree) replaced by an arbitrary YAML value."""
    doc = draw(criteria_docs())
    paths = []

    def walk(node, path):
        paths.append(path)
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            walk(child, path + (key,))

    walk(doc, ())
    path = draw(st.sampled_from(paths))
    value = draw(yaml_values)
    if not path:
        return value
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@PROPERTY
@given(doc=grafted_docs())
def test_grafted_criteria_documents_load_soundly_or_are_refused(work, doc):
    load_or_refuse(write(work, dump(doc)))


@st.composite
def edited_texts(draw):
    """A valid document's YAML with a few character-level edits (deletions, insertions, replacements)."""
    text = dump(draw(criteria_docs()))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, min(6, len(text) - at)))
        text = text[:at] + draw(st.sampled_from(["", ":", "-", " ", "\n", "'", '"', "[", "{", "#", "&a ", "*a",
                                                 "!!", "\t", "0", "9", "x", ".nan"])) + text[at + cut:]
    return text


@PROPERTY
@given(text=edited_texts())
@example(text='schema_version: 1\ndescription: "\\U090A66CA"\n')  # escape past U+10FFFF: PyYAML's ValueError
def test_edited_criteria_files_load_soundly_or_are_refused(work, text):
    load_or_refuse(write(work, text))


# --- Deciding: every criterion is a row; empty ground truth is never the evidence ----------------------------------

MASKS = {"empty": np.zeros((2, 2), bool), "half": np.array([[1, 1], [0, 0]], bool), "full": np.ones((2, 2), bool)}


@st.composite
def scored_images(draw, class_ids):
    """Per-image scores of both backends: random ground truth (often empty), predictions, corpus and classes."""
    scores = []
    for i in range(draw(st.integers(0, 12))):
        corpus = draw(st.sampled_from(CORPORA))
        classes = tuple(draw(st.lists(st.sampled_from(class_ids), unique=True))) if class_ids else ()
        classes = (classes or (UNCLASSIFIED,)) if corpus == "flagged" else ()
        truth = MASKS[draw(st.sampled_from(sorted(MASKS)))]
        for backend in ("candidate", "rembg"):
            prediction = MASKS[draw(st.sampled_from(sorted(MASKS)))]
            scores.append(image_score(backend, corpus, f"i{i}", classes, truth, prediction, 0.5))
    return scores


@PROPERTY
@given(data=st.data(), doc=criteria_docs())
def test_every_criterion_is_decided_and_empty_truth_never_earns_a_go(work, data, doc):
    doc["min_images"] = data.draw(st.integers(1, 4))
    criteria = load_criteria(write(work, dump(doc)))
    aggregates = aggregate(data.draw(scored_images(criteria.class_ids)))
    decision = decide(criteria, aggregates, 0)
    table = {a.key: a for a in aggregates}
    for criterion in criteria.criteria:
        rows = [r for r in decision.results if r.id == criterion.id or r.id.startswith(f"{criterion.id}[")]
        assert rows, f"criterion {criterion.id} is missing from the decision"
        assert len(rows) == (len(criteria.class_ids) if criterion.failure_class == EACH else 1)
        for r in rows:
            measured = table.get(("candidate", r.corpus, r.failure_class))
            if r.status == PASS:  # passing needs real evidence: enough non-empty truths, few empty ones
                assert measured.n_images - measured.n_empty_truth >= criteria.min_images
                assert measured.n_empty_truth <= criteria.max_empty_truth_share * measured.n_images + 1e-9
    assert (decision.recommendation == "go") == all(r.status == PASS for r in decision.results)


# --- Masks: the alpha rule, any pixel mode ----------------------------------------------------------------------

small_arrays = st.integers(1, 5).flatmap(lambda h: st.integers(1, 5).flatmap(
    lambda w: st.lists(st.lists(st.integers(0, 255), min_size=w, max_size=w), min_size=h, max_size=h)))


@PROPERTY
@given(colour=small_arrays, data=st.data())
def test_an_alpha_mask_is_its_alpha_unless_the_alpha_draws_nothing(work, colour, data):
    colour = np.array(colour, np.uint8)
    constant = data.draw(st.booleans())
    alpha = (np.full(colour.shape, data.draw(st.sampled_from([0, 255])), np.uint8) if constant else
             np.array(data.draw(st.lists(st.integers(0, 255), min_size=colour.size, max_size=colour.size)),
                      np.uint8).reshape(colour.shape))
    path = work / "alpha-mask.png"
    Image.fromarray(np.dstack([colour, colour, colour, alpha]), "RGBA").save(path)
    size = (colour.shape[1], colour.shape[0])
    truth_from_alpha = alpha >= 128
    try:
        mask = load_mask(path, size)
    except GateInputError as err:
        assert err.where == str(path)
        refused_for_constant = alpha.min() == alpha.max() and ((colour >= 128) != truth_from_alpha).any()
        refused_as_labels = 0 < alpha.max() < 128
        assert refused_for_constant or refused_as_labels, err
        return
    assert (mask == truth_from_alpha).all()
    if alpha.min() == alpha.max():
        assert ((colour >= 128) == mask).all(), "a constant alpha must agree with the colour"


MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "PA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "I;16", "RGBX"]


@FEW
@given(mode=st.sampled_from(MODES), values=small_arrays, fmt=st.sampled_from(["PNG", "TIFF"]))
def test_a_mask_in_any_mode_loads_as_bool_or_is_refused_naming_the_file(work, mode, values, fmt):
    grey = Image.fromarray(np.array(values, np.uint8), "L")
    path = work / f"mode-mask.{fmt.lower()}"
    try:
        (grey.convert(mode) if mode != "I;16" else grey.convert("I").convert("I;16")).save(path, format=fmt)
    except (OSError, ValueError):  # Pillow cannot write this mode in this format: nothing to test
        return
    try:
        mask = load_mask(path, grey.size)
    except GateInputError as err:
        assert err.where == str(path)
        return
    assert mask.dtype == bool and mask.shape == (grey.size[1], grey.size[0])


# --- CropRun JSONL rows -------------------------------------------------------------------------------------------

SEPARATORS = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\r", "\t"]
notes_text = st.lists(st.one_of(st.text(max_size=8), st.sampled_from(SEPARATORS)), max_size=5).map("".join)
source_values = st.one_of(st.none(), st.text(max_size=10))


@st.composite
def crop_rows(draw):
    return {
        "id": draw(st.text(min_size=1, max_size=30)),
        "image": draw(st.from_regex(r"images/[A-Za-z0-9_-]{1,16}\.(png|jpg)", fullmatch=True)),
        "source": {"type": draw(st.one_of(st.sampled_from(["human", "automatic"]), source_values)),
                   "backend": draw(source_values), "deployment": draw(source_values), "version": draw(source_values)},
        "notes": draw(st.one_of(st.none(), notes_text)),
        "annotation": draw(st.one_of(st.none(), st.fixed_dictionaries({
            "kind": st.sampled_from(["crop_annotation", "hand_label"]),
            "mask": st.from_regex(r"masks/[A-Za-z0-9_-]{1,16}\.png", fullmatch=True)}))),
    }


row_lists = st.lists(crop_rows(), min_size=1, max_size=6, unique_by=lambda r: r["id"])


@pytest.fixture(scope="module")
def snapshot_root(work):
    return write_snapshot(work / "snap", n_test=1, rows=[])


def write_jsonl(root, lines):
    path = root / "flagged" / "croprun.jsonl"
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8", newline="\n")
    return path


@st.composite
def laid_out(draw, rows):
    """JSON lines for `rows` with blank lines interspersed; returns (lines, line number of each row)."""
    lines, numbers = [], []
    for row in rows:
        lines += [""] * draw(st.integers(0, 2))
        lines.append(json.dumps(row, ensure_ascii=draw(st.booleans())))
        numbers.append(len(lines))
    return lines, numbers


@PROPERTY
@given(data=st.data(), rows=row_lists)
def test_valid_jsonl_rows_load_with_every_row_accounted_for(snapshot_root, data, rows):
    lines, _ = data.draw(laid_out(rows))
    write_jsonl(snapshot_root, lines)
    snap = load_snapshot(snapshot_root)
    flagged = {i.image_id: i for i in snap.items if i.corpus == "flagged"}
    kept = [r for r in rows if r["source"]["type"] == "human" and r["annotation"] is not None]
    assert sorted(flagged) == sorted(r["id"] for r in kept)
    for r in kept:
        assert flagged[r["id"]].notes == (r["notes"] or "")  # separators inside notes do not split rows
        assert flagged[r["id"]].problem.endswith("file not found")  # images were never written
    expected = sorted((r["id"], NOT_HUMAN if r["source"]["type"] != "human" else NO_ANNOTATION)
                      for r in rows if r not in kept)  # by row id: row order changes no output
    assert [(e.row_id, e.reason) for e in snap.exclusions] == expected


@st.composite
def invalid_rows(draw):
    """Valid rows, one of which gets a change the loader must refuse; (rows, index, raw line or None, change)."""
    rows = copy.deepcopy(draw(row_lists))
    index = draw(st.integers(0, len(rows) - 1))
    row, raw = rows[index], None
    change = draw(st.sampled_from(["drop_field", "extra_field", "id_type", "empty_id", "image_type", "notes_type",
                                   "source_field", "annotation_kind", "escaping_path", "nul_path", "duplicate_id",
                                   "truncated", "duplicate_key", "not_an_object", "lone_surrogate", "long_id"]))
    if change == "drop_field":
        del row[draw(st.sampled_from(sorted(row)))]
    elif change == "extra_field":
        row[draw(_not_in(row))] = draw(source_values)
    elif change == "id_type":
        row["id"] = draw(st.one_of(st.integers(), st.none(), st.lists(st.text(), max_size=2)))
    elif change == "empty_id":
        row["id"] = ""
    elif change == "image_type":
        row["image"] = draw(st.one_of(st.integers(), st.none(), st.just("")))
    elif change == "notes_type":
        row["notes"] = draw(st.one_of(st.integers(), st.floats(), st.lists(st.text(), max_size=2), st.booleans()))
    elif change == "source_field":
        row["source"].pop(draw(source_fields)) if draw(st.booleans()) else row["source"].update(extra="x")
    elif change == "annotation_kind":
        row["annotation"] = {"kind": draw(_not_in(["crop_annotation", "hand_label"])), "mask": "masks/m.png"}
    elif change in ("escaping_path", "nul_path"):
        bad = (draw(st.sampled_from(["../../x.png", "images/../../x.png", "/etc/passwd", "images\\x.png", ".."]))
               if change == "escaping_path" else "images/a\x00b.png")
        row["source"]["type"] = "human"  # paths are only resolved for rows in the corpus
        row["annotation"] = {"kind": "hand_label", "mask": "masks/m.png"}
        row[draw(st.sampled_from(["image", "mask"]))] = bad
        if "mask" in row:
            row["annotation"]["mask"] = row.pop("mask")
    elif change == "duplicate_id":
        if index == 0:
            rows.append(copy.deepcopy(row))
            index = len(rows) - 1
        else:
            row["id"] = rows[0]["id"]
    elif change == "truncated":
        text = json.dumps(row)
        raw = text[:draw(st.integers(1, len(text) - 1))]
    elif change == "duplicate_key":
        raw = '{"id": "shadowed", ' + json.dumps(row)[1:]
    elif change == "not_an_object":
        raw = json.dumps(draw(st.one_of(st.lists(st.integers(), max_size=3), st.text(max_size=5), st.integers(),
                                        st.none(), st.booleans())))
    elif change == "lone_surrogate":
        raw = json.dumps(row).replace('"id": "', '"id": "\\udc80', 1)
    elif change == "long_id":
        row["id"] = "x" * 201
    return rows, index, raw, change


@PROPERTY
@given(data=st.data(), case=invalid_rows())
def test_a_row_made_invalid_is_refused_with_its_line_number(snapshot_root, data, case):
    rows, index, raw, change = case
    lines, numbers = data.draw(laid_out(rows))
    if raw is not None:
        lines[numbers[index] - 1] = raw
    jsonl = write_jsonl(snapshot_root, lines)
    with pytest.raises(GateInputError) as err:
        load_snapshot(snapshot_root)
    assert err.value.where == f"{jsonl}:{numbers[index]}", (change, str(err.value))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children,
                                                                              max_size=5)),
    max_leaves=15)
arbitrary_lines = st.one_of(
    st.text(max_size=80).map(lambda s: s.replace("\n", " ")),
    json_values.map(json.dumps),
    st.builds(lambda row, key, value: json.dumps({**row, key: value}), crop_rows(), st.sampled_from(
        ["id", "image", "source", "notes", "annotation", "other"]), json_values),
)


@PROPERTY
@given(lines=st.lists(arbitrary_lines, max_size=5))
@example(lines=["[" * 100_000])
@example(lines=['{"id": 1' + "0" * 5000 + "}"])
@example(lines=['{"id": "\\ud800", "image": "i.png", "source": {"type": null, "backend": null, "deployment": null, '
                '"version": null}, "notes": null, "annotation": null}'])
def test_arbitrary_jsonl_lines_load_soundly_or_raise_gate_input_error(snapshot_root, lines):
    write_jsonl(snapshot_root, lines)
    try:
        snap = load_snapshot(snapshot_root)
    except GateInputError as err:
        assert "croprun.jsonl" in err.where, err
        return
    flagged = [i.image_id for i in snap.items if i.corpus == "flagged"]
    assert all(isinstance(i, str) and i for i in flagged) and len(set(flagged)) == len(flagged)
    for item in snap.items:
        for path in (item.image_path, item.truth_path):
            assert path is None or str(path.resolve()).startswith(str(snapshot_root.resolve()))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
