"""One photo, one piece of evidence (issue 8.4): rows or test images showing the same photo count once.

Loader rules (eval/inputs/duplicates.py) on hand-made snapshots: the same pixels under other names and
encodings are one photo, equal ground truth merges (classes from every row), different ground truth is
never evaluated; the outcome does not depend on row order. Then end to end through the gate binary: a
criterion that passed only because one photo was counted three times is now insufficient data, and a
photo with two different masks is never a go.
"""

import json
import os
import pathlib
import random
import shutil
import sys
import tempfile

# Hypothesis keeps caches in ./.hypothesis: keep them out of the checkout (and Bazel's read-only runfiles).
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(os.environ.get("TEST_TMPDIR") or tempfile.gettempdir(), "pottery-gate-hypothesis"))

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from eval.inputs.criteria import UNCLASSIFIED, load_criteria
from eval.inputs.snapshot import load_snapshot
from tests.support import criteria_file, crop_run, pot_photo, run_cli, untrained_checkpoint, write_snapshot

EXIT_GO, EXIT_NO_GO, EXIT_ERROR = 0, 1, 2
CRITERIA = """\
schema_version: 1
example_values: false
iou_pass_threshold: 0.5
min_images: 2
failure_classes:
  - {id: gloss, description: glossy, match: {notes_any: [gloss]}}
  - {id: shadow, description: cast shadow, match: {notes_any: [shadow]}}
criteria:
  - {id: flagged_pass_rate, kind: min_pass_rate, corpus: flagged, failure_class: all, threshold: 0.0}
  - {id: test_mean_iou, kind: min_mean_iou, corpus: test, failure_class: all, threshold: 0.0}
"""
PHOTO, MASK = pot_photo(shift=10, color=(40, 90, 160))  # unlike every photo write_snapshot draws
OTHER_MASK = pot_photo(shift=13)[1]


def flagged(root, rel, image, **save_args):
    path = root / "flagged" / rel
    image.save(path, **save_args)
    return path


def same_photo_rows(root, ids_notes, mask=MASK):
    """Rows all showing PHOTO: the first ones share one file, the last has a byte copy under its own name."""
    flagged(root, "images/pot.png", PHOTO)
    flagged(root, "masks/pot.png", mask)
    shutil.copyfile(root / "flagged" / "images" / "pot.png", root / "flagged" / "images" / "pot-copy.png")
    last = len(ids_notes) - 1
    return [crop_run(row_id, notes, image="images/pot-copy.png" if k == last else "images/pot.png",
                     mask="masks/pot.png") for k, (row_id, notes) in enumerate(ids_notes)]


def rewrite_rows(root, rows):
    (root / "flagged" / "croprun.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def by_id(snap, corpus="flagged"):
    return {i.image_id: i for i in snap.items if i.corpus == corpus}


def test_one_photo_in_three_rows_is_one_image_with_every_rows_classes(tmp_path):
    root = write_snapshot(tmp_path / "snap", n_test=2, rows=[crop_run("other", "white on white")])
    rows = same_photo_rows(root, [("d3", ""), ("d1", "glossy glaze"), ("d2", "cast shadow")])  # d2: a byte copy
    rewrite_rows(root, [*rows, crop_run("other", "white on white")])
    snap = load_snapshot(root)
    items = by_id(snap)
    assert sorted(items) == ["d1", "other"]  # the smallest id is kept, whatever the row order
    assert [row[0] for row in items["d1"].rows] == ["d1", "d2", "d3"]
    assert [(e.row_id, e.reason) for e in snap.exclusions] == [
        ("d2", "duplicate of flagged image d1"), ("d3", "duplicate of flagged image d1")]
    assert snap.duplicates == snap.exclusions
    criteria = load_criteria(criteria_file(CRITERIA, tmp_path))
    assert criteria.classify_rows(items["d1"].rows) == ("gloss", "shadow")  # the union, in taxonomy order
    assert criteria.classify_rows(items["other"].rows) == (UNCLASSIFIED,)


def _exif_rotated(path):
    """PHOTO stored turned a quarter and tagged with EXIF orientation 6, which turns it back."""
    exif = Image.Exif()
    exif[0x0112] = 6
    PHOTO.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)


ENCODINGS = {
    "tiff_lzw": lambda path: PHOTO.save(path.with_suffix(".tif"), compression="tiff_lzw"),
    "bmp": lambda path: PHOTO.save(path.with_suffix(".bmp")),
    "exif_rotated_png": _exif_rotated,
    "rgba_png": lambda path: PHOTO.convert("RGBA").save(path),  # production drops the alpha: same pixels
}
SUFFIX = {"tiff_lzw": ".tif", "bmp": ".bmp"}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_the_same_pixels_in_another_file_format_are_the_same_photo(tmp_path, encoding):
    root = write_snapshot(tmp_path / "snap", n_test=1, rows=[])
    flagged(root, "images/a.png", PHOTO)
    ENCODINGS[encoding](root / "flagged" / "images" / "b.png")
    flagged(root, "masks/m.png", MASK)
    b = f"images/b{SUFFIX.get(encoding, '.png')}"
    rewrite_rows(root, [crop_run("b", "shadow", image=b, mask="masks/m.png"),
                        crop_run("a", "gloss", image="images/a.png", mask="masks/m.png")])
    snap = load_snapshot(root)
    assert list(by_id(snap)) == ["a"]
    assert [(e.row_id, e.reason) for e in snap.exclusions] == [("b", "duplicate of flagged image a")]


def test_a_reencoded_jpeg_is_a_near_duplicate_and_stays_a_photo_of_its_own(tmp_path):
    """Out of scope by design: other pixels, so another photo (two shots of one pot look alike too)."""
    root = write_snapshot(tmp_path / "snap", n_test=1, rows=[])
    flagged(root, "images/a.png", PHOTO)
    flagged(root, "images/b.jpg", PHOTO, quality=100)
    flagged(root, "masks/m.png", MASK)
    rewrite_rows(root, [crop_run("a", image="images/a.png", mask="masks/m.png"),
                        crop_run("b", image="images/b.jpg", mask="masks/m.png")])
    snap = load_snapshot(root)
    assert sorted(by_id(snap)) == ["a", "b"] and snap.exclusions == ()


@pytest.mark.parametrize("masks", [("m0", "m1"), ("m0", "m0", "m1")], ids=["two-disagree", "two-agree-one-not"])
def test_one_photo_with_different_ground_truth_is_never_evaluated(tmp_path, masks):
    root = write_snapshot(tmp_path / "snap", n_test=1, rows=[])
    flagged(root, "images/a.png", PHOTO)
    flagged(root, "masks/m0.png", MASK)
    flagged(root, "masks/m1.png", OTHER_MASK)
    ids = [f"c{k}" for k in range(len(masks))]
    rewrite_rows(root, [crop_run(i, image="images/a.png", mask=f"masks/{m}.png") for i, m in zip(ids, masks)])
    snap = load_snapshot(root)
    items = by_id(snap)
    assert sorted(items) == ids and snap.exclusions == ()  # none picked, none quietly dropped
    for row_id, item in items.items():
        assert item.problem.startswith("conflicting ground truth: the same photo as "), item.problem
        assert all(other in item.problem for other in ids if other != row_id)


def test_duplicates_in_the_test_split_count_once_and_a_photo_may_be_in_both_corpora(tmp_path):
    root = write_snapshot(tmp_path / "snap", n_test=3)  # flagged cr-1 shows the same photo as test t0
    for sub in ("images", "masks"):
        shutil.copyfile(root / "test" / sub / "t0.png", root / "test" / sub / "t9.png")
    snap = load_snapshot(root)
    assert sorted(by_id(snap, "test")) == ["t0", "t1", "t2"]
    assert [(e.row_id, e.reason) for e in snap.exclusions] == [("t9", "duplicate of test image t0")]
    assert "cr-1" in by_id(snap) and by_id(snap)["cr-1"].merged == ()


def test_the_digest_covers_what_merging_depends_on(tmp_path):
    root = write_snapshot(tmp_path / "snap", n_test=1, rows=[])
    rewrite_rows(root, same_photo_rows(root, [("d1", "gloss"), ("d2", "")]))
    merged = load_snapshot(root)
    flagged(root, "masks/other.png", OTHER_MASK)
    rows = same_photo_rows(root, [("d1", "gloss"), ("d2", "")])
    rows[1]["annotation"]["mask"] = "masks/other.png"
    rewrite_rows(root, rows)
    conflicting = load_snapshot(root)
    assert merged.sha256 != conflicting.sha256
    assert all(i.problem for i in by_id(conflicting).values())


# --- Any rows, any order: the property ----------------------------------------------------------------------------

STORAGE = ("shared", "copy", "tiff")
NOTES = ("glossy", "cast shadow", "")
rows_strategy = st.lists(
    st.tuples(st.from_regex(r"r[0-9a-z]{1,3}", fullmatch=True), st.integers(0, 2), st.integers(0, 1),
              st.sampled_from(STORAGE), st.sampled_from(NOTES)),
    min_size=1, max_size=7, unique_by=lambda r: r[0])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("duplicates")


def _write(root, rows):
    photos = {k: pot_photo(shift=5 * k, color=(60 + 40 * k, 80, 40)) for k in range(3)}
    for k, (photo, mask) in photos.items():
        flagged(root, f"images/p{k}.png", photo)
        flagged(root, f"masks/p{k}-m0.png", mask)
        flagged(root, f"masks/p{k}-m1.png", pot_photo(shift=5 * k + 2)[1])
    lines = []
    for row_id, k, v, storage, notes in rows:
        image = {"shared": f"images/p{k}.png", "copy": f"images/{row_id}.png", "tiff": f"images/{row_id}.tif"}[storage]
        if storage != "shared":
            photos[k][0].save(root / "flagged" / image)
        lines.append(crop_run(row_id, notes, image=image, mask=f"masks/p{k}-m{v}.png"))
    return lines


@settings(max_examples=40)
@given(rows=rows_strategy, seed=st.integers(0, 2**16))
def test_each_photo_is_evaluated_once_and_row_order_changes_nothing(work, rows, seed):
    root = write_snapshot(pathlib.Path(tempfile.mkdtemp(dir=work)), n_test=1, rows=[])
    lines = _write(root, rows)
    rewrite_rows(root, lines)
    snap = load_snapshot(root)
    random.Random(seed).shuffle(lines)
    rewrite_rows(root, lines)
    shuffled = load_snapshot(root)
    assert (shuffled.items, shuffled.exclusions) == (snap.items, snap.exclusions)

    items, criteria = by_id(snap), load_criteria(criteria_file(CRITERIA, root))
    for k in {r[1] for r in rows}:
        group = sorted(r for r in rows if r[1] == k)
        ids = [r[0] for r in group]
        if len({r[2] for r in group}) == 1:  # one ground truth: merged into the smallest id
            kept = items[ids[0]]
            assert kept.problem is None and [row[0] for row in kept.rows] == ids
            assert not set(ids[1:]) & set(items)
            expected = [c for c, word in (("gloss", "gloss"), ("shadow", "shadow")) if any(word in r[4] for r in group)]
            assert criteria.classify_rows(kept.rows) == (tuple(expected) or (UNCLASSIFIED,))
        else:  # a contradiction: every row stays, none evaluated
            assert all(items[i].problem.startswith("conflicting ground truth") for i in ids)
    n_merged = sum(len(i.merged) for i in items.values())
    assert len(snap.duplicates) == n_merged and len(items) + n_merged == len(rows)
    assert all(e.reason.startswith("duplicate of flagged image ") for e in snap.exclusions)


# --- End to end: the gate binary ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    return {"GATE_CACHE_DIR": str(tmp_path_factory.mktemp("gate-cache"))}


def run_gate(tmp_path, cache_env, root):
    out = tmp_path / "out"
    proc = run_cli("--checkpoint", str(untrained_checkpoint()), "--dataset", str(root), "--output_dir", str(out),
                   "--criteria", str(criteria_file(CRITERIA, tmp_path)), "--quiet", env=cache_env)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, out


def test_a_criterion_met_only_by_counting_one_photo_three_times_is_insufficient_data(tmp_path, cache_env):
    """One photo in three flagged rows counts once: insufficient data at min_images 2, not a go on n = 3."""
    root = write_snapshot(tmp_path / "snap", n_test=2, rows=[])
    rewrite_rows(root, same_photo_rows(root, [("d1", "glossy glaze"), ("d2", "cast shadow"), ("d3", "")]))
    for sub in ("images", "masks"):  # and a test image twice: the test corpus still has 2 photos
        shutil.copyfile(root / "test" / sub / "t1.png", root / "test" / sub / "t7.png")
    proc, out = run_gate(tmp_path, cache_env, root)
    assert proc.returncode == EXIT_NO_GO, (proc.stdout, proc.stderr)
    metrics = json.loads((out / "metrics.json").read_text())
    results = {r["id"]: r for r in metrics["criteria_results"]}
    flagged = results["flagged_pass_rate"]
    assert (flagged["status"], flagged["n_images"]) == ("insufficient_data", 1)
    assert (results["test_mean_iou"]["status"], results["test_mean_iou"]["n_images"]) == ("pass", 2)
    flagged_all = [a for a in metrics["aggregates"] if a["corpus"] == "flagged" and a["failure_class"] == "all"]
    assert flagged_all and all(a["n_images"] == 1 for a in flagged_all)
    candidate = [s for s in metrics["per_image"] if s["source_backend"] == "candidate" and s["corpus"] == "flagged"]
    assert [(s["image_id"], s["failure_classes"]) for s in candidate] == [("d1", ["gloss", "shadow"])]
    expected = [{"row_id": "d2", "reason": "duplicate of flagged image d1"},
                {"row_id": "d3", "reason": "duplicate of flagged image d1"},
                {"row_id": "t7", "reason": "duplicate of test image t1"}]
    assert metrics["excluded_rows"] == expected and metrics["not_evaluated"] == []
    report = (out / "report.md").read_text()
    for row in expected:
        assert f"- {row['row_id']}: {row['reason']}\n" in report
    audit = {a["failure_class"]: a["n_rows"] for a in metrics["failure_class_audit"]}
    assert audit == {"gloss": 1, "shadow": 1, UNCLASSIFIED: 1}  # every row's notes are audited, merged ones too


def test_one_photo_with_two_different_masks_is_never_a_go(tmp_path, cache_env):
    """Two rows of one photo with different masks are both not evaluated (exit 2), never both scored."""
    root = write_snapshot(tmp_path / "snap", n_test=2, rows=[])
    flagged(root, "masks/other.png", OTHER_MASK)
    rows = same_photo_rows(root, [("c1", "gloss"), ("c2", "gloss")])
    rows[1]["annotation"]["mask"] = "masks/other.png"
    rewrite_rows(root, rows)
    proc, out = run_gate(tmp_path, cache_env, root)
    assert proc.returncode == EXIT_ERROR, (proc.stdout, proc.stderr)
    assert "recommendation: go" not in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recommendation"] == "no-go"
    assert [m["image_id"] for m in metrics["not_evaluated"]] == ["c1", "c2"]
    for m, other in zip(metrics["not_evaluated"], ("c2", "c1")):
        assert f"conflicting ground truth: the same photo as {other} with a different mask" in m["reason"], m


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v", "-p", "no:cacheprovider"]))
