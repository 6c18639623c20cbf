"""Loading the snapshot contract: corpora, exclusions by reason, ground-truth formats, digests."""

import sys

import numpy as np
import pytest

from eval.errors import GateInputError
from eval.inputs import images
from eval.decision.decide import decide
from eval.inputs import snapshot
from eval.inputs.criteria import Criterion, SuccessCriteria
from tests.support import DEMO_SNAPSHOT, crop_run, pot_photo, write_snapshot


def test_flagged_corpus_keeps_human_rows_with_ground_truth(tmp_path):
    rows = [crop_run("a", "gloss"), crop_run("b", source_type="automatic"), crop_run("c", annotation=None),
            crop_run("d", annotation="hand_label"), crop_run("e", source_type="automatic", annotation=None)]
    snap = snapshot.load_snapshot(write_snapshot(tmp_path, n_test=2, rows=rows))
    flagged = [i for i in snap.items if i.corpus == "flagged"]
    assert [i.image_id for i in flagged] == ["a", "d"]
    assert [i.truth_kind for i in flagged] == ["crop_annotation", "hand_label"]
    assert [(e.row_id, e.reason) for e in snap.exclusions] == [
        ("b", snapshot.NOT_HUMAN), ("c", snapshot.NO_ANNOTATION), ("e", snapshot.NOT_HUMAN)]
    assert [i.image_id for i in snap.items if i.corpus == "test"] == ["t0", "t1"]
    assert snap.version == "tiny-v1"


def test_demo_photos_come_in_several_shapes_in_both_corpora():
    """So the demo batches photos of mixed shapes, as customers' are (issue 9)."""
    sizes = {}
    for item in snapshot.load_snapshot(DEMO_SNAPSHOT).items:
        with images._PILLOW_OPEN(item.image_path) as img:
            sizes.setdefault(item.corpus, set()).add(img.size)
    for corpus, seen in sizes.items():
        assert any(w > h for w, h in seen) and any(w < h for w, h in seen) and any(w == h for w, h in seen), corpus
        assert any(w % 2 and h % 2 for w, h in seen), (corpus, seen)  # odd sizes too
        assert len(seen) >= 5, (corpus, seen)


def test_digest_changes_with_content_not_with_location(tmp_path):
    a = snapshot.load_snapshot(write_snapshot(tmp_path / "a"))
    b = snapshot.load_snapshot(write_snapshot(tmp_path / "b"))
    assert a.sha256 == b.sha256
    pot_photo(shift=5)[0].save(tmp_path / "b" / "test" / "images" / "t0.png")
    assert snapshot.load_snapshot(tmp_path / "b").sha256 != a.sha256


def test_yolo_polygon_labels_are_rasterised_at_image_size(tmp_path):
    root = write_snapshot(tmp_path, n_test=1)
    (root / "test" / "masks" / "t0.png").unlink()
    # a square covering x in [0.25, 0.75], y in [0.5, 1.0] of a 96x72 image
    (root / "test" / "labels").mkdir()
    (root / "test" / "labels" / "t0.txt").write_text("0 0.25 0.5 0.75 0.5 0.75 1.0 0.25 1.0\n")
    item = next(i for i in snapshot.load_snapshot(root).items if i.corpus == "test")
    assert (item.truth_format, item.truth_kind) == ("yolo", "polygons")
    mask = images.rasterise_polygons(item.truth_path, (96, 72))
    assert mask.shape == (72, 96)
    assert mask[40, 48] and not mask[30, 48] and not mask[40, 20]
    assert abs(int(mask.sum()) - 48 * 36) < 100  # polygon edges are inclusive


def test_missing_ground_truth_is_an_item_problem_not_a_crash(tmp_path):
    root = write_snapshot(tmp_path, n_test=2)
    (root / "test" / "masks" / "t1.png").unlink()
    item = next(i for i in snapshot.load_snapshot(root).items if i.image_id == "t1")
    assert "no ground truth" in item.problem


def test_anti_aliased_mask_splits_at_half_coverage(tmp_path):
    from PIL import Image

    photo = tmp_path / "p.png"
    Image.new("RGB", (4, 1)).save(photo)
    mask = tmp_path / "m.png"
    Image.fromarray(np.array([[0, 127, 128, 255]], dtype=np.uint8)).save(mask)
    assert images.load_mask(mask, (4, 1)).tolist() == [[False, False, True, True]]


@pytest.mark.parametrize("rows, message", [
    ([crop_run("a"), crop_run("a")], "duplicate CropRun id 'a'"),
    ([crop_run("a", image="../../etc/passwd")], "escapes the snapshot root"),
    ([crop_run("a", image="/etc/passwd")], "escapes the snapshot root"),
])
def test_structural_problems_are_refused(tmp_path, rows, message):
    with pytest.raises(GateInputError, match=message):
        snapshot.load_snapshot(write_snapshot(tmp_path, rows=rows))


def test_an_empty_croprun_jsonl_is_an_empty_flagged_corpus(tmp_path):
    """The rule (module docstring): no rows, or blank lines only, load as no flagged images, and a criterion
    on the flagged corpus is then insufficient data; the test split is still evaluated."""
    root = write_snapshot(tmp_path, rows=[])
    for text in ("", "\n  \n\n"):
        (root / "flagged" / "croprun.jsonl").write_text(text)
        loaded = snapshot.load_snapshot(root)
        assert not [i for i in loaded.items if i.corpus == "flagged"] and loaded.exclusions == ()
        assert [i for i in loaded.items if i.corpus == "test"]
    rate = Criterion.of_kind("flagged_rate", "min_pass_rate", "flagged", "all", 0.5)
    criteria = SuccessCriteria("c.yaml", "0" * 64, False, 0.5, 1, (), (rate,))
    result = decide(criteria, (), 0)
    assert result.recommendation == "no-go" and result.deciding.status == "insufficient_data"


def test_malformed_jsonl_names_the_line(tmp_path):
    root = write_snapshot(tmp_path)
    path = root / "flagged" / "croprun.jsonl"
    path.write_text(path.read_text() + '{"id": "x", \n')
    with pytest.raises(GateInputError, match=r"croprun.jsonl:4: malformed JSON"):
        snapshot.load_snapshot(root)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
