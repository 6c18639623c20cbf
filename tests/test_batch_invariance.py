"""A candidate mask does not depend on its batch-mates (issue 9): batch size, order and an added image
change no score. Real ultralytics inference with the demo checkpoint (which predicts real masks) on the
demo's photos, which come in six sizes (landscape, portrait, square, odd)."""

import dataclasses
import random
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from eval import gate
from eval.backends import yolo_backend
from eval.inputs.checkpoint import resolve_checkpoint
from eval.inputs.criteria import load_criteria
from eval.inputs.snapshot import TEST, load_snapshot
from eval.options import GateOptions
from eval.scoring.scores import ImageScore
from eval.pipeline import make_backends, prepare_run
from tests.support import BASELINE_CONFIG, CRITERIA, DEMO_CHECKPOINT, DEMO_INCUMBENT, DEMO_SNAPSHOT, scratch_dir


@pytest.fixture(scope="module")
def backends():
    options = GateOptions(checkpoint=str(DEMO_CHECKPOINT), dataset=str(DEMO_SNAPSHOT), criteria=str(CRITERIA),
                          baseline_config=str(BASELINE_CONFIG), reports_root=str(scratch_dir()), torch_threads=2)
    checkpoint = resolve_checkpoint(str(DEMO_CHECKPOINT))
    backends = make_backends(options, prepare_run(options).model_inputs)
    # The candidate's own masks are under test, not its mask cache's (rembg's stays cached).
    return {**backends, "candidate": yolo_backend.YoloSegBackend(checkpoint, torch_threads=2)}


@pytest.fixture(scope="module")
def small():
    """The demo snapshot cut down to 18 photos, in all six of its sizes."""
    return _small_snapshot(scratch_dir() / "small")


@pytest.fixture(scope="module")
def photos(small):
    return [gate._decode(item)[0] for item in small.items]


def _equal(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


def test_masks_equal_one_photo_requests_at_every_batch_size_and_order(backends, photos):
    candidate = backends["candidate"]
    alone = [candidate.predict([photo])[0] for photo in photos]
    assert len({p.shape for p in photos}) == 6, "the demo must mix photo shapes"
    assert sum(m.any() for m in alone) >= 0.9 * len(alone), "the demo checkpoint predicts real masks"
    assert all(m.shape == p.shape[:2] and m.dtype == bool for m, p in zip(alone, photos))
    order = list(range(len(photos)))
    random.Random(9).shuffle(order)
    for indices in (list(range(len(photos))), order):  # snapshot order, and shuffled: mixed-shape batches
        for batch_size in (3, 8):
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                for index, mask in zip(chunk, candidate.predict([photos[i] for i in chunk])):
                    assert _equal(mask, alone[index]), (batch_size, index)


def test_ultralytics_own_mixed_batch_letterbox_would_change_masks(photos):
    """Why the backend letterboxes per photo: ultralytics' own batch letterbox makes this test's check
    fail on these photos (a mixed-shape batch goes to the full square). If ultralytics ever letterboxes
    per image itself, this test says so and the grouping can be revisited."""
    from ultralytics import YOLO

    model = YOLO(str(DEMO_CHECKPOINT))

    def union(results):
        return [np.zeros(p.shape[:2], bool) if r.masks is None else (r.masks.data.numpy() > 0.5).any(axis=0)
                for p, r in zip(photos, results)]

    settings = dict(imgsz=256, conf=0.25, retina_masks=True, verbose=False, device="cpu")
    bgr = [np.ascontiguousarray(p[..., ::-1]) for p in photos[:8]]
    alone = union([model.predict(b, batch=1, **settings)[0] for b in bgr])
    batched = union(model.predict(bgr, batch=8, **settings))
    assert len({b.shape for b in bgr}) > 1
    assert not all(_equal(a, b) for a, b in zip(alone, batched))


@pytest.mark.parametrize("content, shape", [
    ((120, 160), (3024, 4032)), ((160, 120), (4032, 3024)),  # phone photos, both ways up
    ((224, 256), (171, 199)), ((37, 91), (1000, 333)),  # smaller than the content; odd sizes
    ((100, 80), (100, 433)), ((60, 433), (250, 433)),  # one side already at size
])
def test_resized_columns_are_torchs_bilinear_resize_bit_for_bit(content, shape):
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(sum(shape))
    padded = torch.randn(content[0] + 3, content[1] + 5, generator=generator) * 4
    image = padded[1:-2, 2:-3]  # a cut, not contiguous, as the letterbox content is
    whole = F.interpolate(image[None, None], shape, mode="bilinear")[0, 0]
    width = shape[1]
    for start, stop in ((0, width), (0, 1), (width - 1, width), (width // 3, width // 2)):
        part = yolo_backend.resized_columns(image, shape, (start, stop))
        assert torch.equal(part.view(torch.int32), whole[:, start:stop].view(torch.int32)), (start, stop)
    assert yolo_backend.separable_resize_is_exact("cpu")  # the gate's own check agrees: the box-only path runs


_LETTERBOXES = [
    ((3024, 4032), 640, True), ((4032, 3024), 640, True),  # phone photos; prototype logits upsampled 1x
    ((3024, 4032), 256, False),  # a square letterbox: padding above and below
    ((171, 199), 256, True), ((1000, 37), 320, True),  # odd sizes; upsampled 2x
    ((300, 1000), 256, True), ((641, 479), 320, False),  # upsampled 4x
    ((160, 160), 640, True),  # prototypes already the photo's size: no resize
]


# exact=False: a device whose resize does not split into two passes, where instances take ultralytics' own path
# (tried on the small photos: that path is process_mask_native itself, the slow reference at phone size).
@pytest.mark.parametrize("shape, imgsz, auto, exact", [(*case, True) for case in _LETTERBOXES] + [
    (*case, False) for case in _LETTERBOXES if case[0][0] * case[0][1] < 1_000_000])
def test_instance_masks_are_ultralytics_process_mask_native_pixel_for_pixel(shape, imgsz, auto, exact, monkeypatch):
    import torch
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils import ops

    monkeypatch.setattr(yolo_backend, "separable_resize_is_exact", lambda device: exact)
    height, width = shape
    letterboxed = LetterBox((imgsz, imgsz), auto=auto, stride=32)(image=np.zeros((*shape, 3), np.uint8)).shape
    generator = torch.Generator().manual_seed(imgsz + width)
    proto = torch.randn(32, letterboxed[0] // 4, letterboxed[1] // 4, generator=generator)
    corners = torch.rand(6, 2, 2, generator=generator) * torch.tensor([width, height])
    boxes = torch.tensor([
        [0, 0, width, height], [-5.5, -3, width + 7, height + 2],  # the photo, and beyond its edges
        [width - 0.5, height - 0.5, width, height], [2.5, 2.5, 3.5, 3.5],  # one pixel: the corner, inside
        [3.2, 3.2, 3.7, 3.7], [width / 2, 0, width / 2, height],  # no pixel: inside one, and zero width
        *torch.cat([corners.amin(1), corners.amax(1)], 1).tolist()])  # anywhere, fractional edges
    coefficients = torch.randn(len(boxes), 32, generator=generator) * 0.5
    for c, box in zip(coefficients, boxes):
        expected = ops.process_mask_native(proto, c[None], box[None], shape)[0]
        assert torch.equal(yolo_backend.instance_or(proto, c, box, torch.zeros(shape, dtype=torch.uint8)),
                           expected), box.tolist()
    union = torch.zeros(shape, dtype=torch.uint8)
    for c, box in zip(coefficients, boxes):
        yolo_backend.instance_or(proto, c, box, union)
    assert torch.equal(union, ops.process_mask_native(proto, coefficients, boxes, shape).amax(0))


def _small_snapshot(root, add_photo=False):
    """The demo snapshot's first 12 test photos (all six sizes) and 6 CropRun rows, copied under `root`;
    with `add_photo`, one more test photo of yet another shape, whose id sorts first."""
    shutil.copytree(DEMO_SNAPSHOT, root)
    keep = {p.stem for p in sorted((root / "test" / "images").iterdir())[:12]}
    for folder in ("images", "masks", "labels"):
        for path in (root / "test" / folder).iterdir():
            if path.stem not in keep:
                path.unlink()
    jsonl = root / "flagged" / "croprun.jsonl"
    jsonl.write_text("".join(jsonl.read_text().splitlines(keepends=True)[:6]))
    if add_photo:
        source = sorted((root / "test" / "masks").iterdir())[0]
        box = (9, 0, 9 + 199, 171)  # 199x171: odd, and no other photo's size
        Image.open(root / "test" / "images" / f"{source.stem}.jpg").crop(box).save(root / "test/images/t00-added.png")
        Image.open(source).crop(box).save(root / "test/masks/t00-added.png")
    return load_snapshot(root)


def test_gate_scores_do_not_depend_on_batch_size_order_or_an_added_photo(backends, small, photos, tmp_path):
    criteria = load_criteria(CRITERIA)
    snapshot = small
    assert len({p.shape for p in photos}) == 6

    def scores(snap, batch_size):
        result = gate.evaluate(snap, criteria, backends, {"run_key": "batch-invariance"}, batch_size=batch_size)
        assert result.not_evaluated == ()
        return {(s.corpus, s.image_id, s.source_backend): s for s in result.scores}, result

    reference, reference_result = scores(snapshot, 8)
    assert {b for _, _, b in reference} == {"rembg", "candidate"}
    assert sum(s.predicted_pixels > 0 for k, s in reference.items() if k[2] == "candidate") >= 0.9 * len(reference) / 2
    items = list(snapshot.items)
    random.Random(3).shuffle(items)
    variants = {f"batch {n}": (snapshot, n) for n in (1, 3)}
    variants["shuffled"] = (dataclasses.replace(snapshot, items=tuple(items)), 8)
    variants["one photo added"] = (_small_snapshot(tmp_path / "added", add_photo=True), 8)
    for name, (snap, batch_size) in variants.items():
        got, result = scores(snap, batch_size)
        added = {key for key in got if key[1] == "t00-added"}
        assert added == ({(TEST, "t00-added", "candidate"), (TEST, "t00-added", "rembg")}
                         if name == "one photo added" else set()), name
        assert {k: v for k, v in got.items() if k not in added} == reference, name
        if not added:
            assert result.aggregates == reference_result.aggregates and result.decision == reference_result.decision


def test_an_incumbent_never_moves_the_candidate_vs_rembg_intervals():
    """Regression: adding --incumbent_checkpoint changed the run key, which seeded every resample, and so
    moved test_mean_iou's and no_test_regression's intervals by up to 4.3e-4. Two real run keys (from
    prepare_run, with and without the incumbent), the same candidate and rembg scores: the same bounds."""
    base = dict(checkpoint=str(DEMO_CHECKPOINT), dataset=str(DEMO_SNAPSHOT), criteria=str(CRITERIA),
                baseline_config=str(BASELINE_CONFIG), reports_root=str(scratch_dir()))
    keys = [prepare_run(GateOptions(**base, **extra)).run_key
            for extra in ({}, {"incumbent_checkpoint": str(DEMO_INCUMBENT)})]
    assert keys[0] != keys[1]
    rng = np.random.default_rng(0)
    ious = {b: rng.uniform(0.6, 1.0, 30) for b in ("candidate", "rembg", "incumbent")}

    def row(backend, i):
        return ImageScore(backend, "test", f"i{i:02d}", (), mask_iou=float(ious[backend][i]), precision=1.0,
                          recall=1.0, bbox_iou_secondary=1.0, boundary_iou=float(ious[backend][i]),
                          passed=bool(ious[backend][i] > 0.85), true_positive_pixels=1, predicted_pixels=1,
                          ground_truth_pixels=1)

    snapshot = type("Snapshot", (), {"items": (), "exclusions": (), "unlabelled": ()})()
    intervals = []
    for key, backends in zip(keys, (("candidate", "rembg"), ("candidate", "rembg", "incumbent"))):
        part = gate.ShardResult.empty(3)
        for i in range(30):
            part.update([row(b, i) for b in backends])
        result = gate.combine([part], snapshot, load_criteria(CRITERIA), {"run_key": key})
        candidate = next(a for a in result.aggregates if a.source_backend == "candidate")
        intervals.append({k: v for k, v in candidate.intervals.items() if "incumbent" not in k})
    assert intervals[0] == intervals[1] and "mask_iou_regression_vs_rembg" in intervals[0]


def test_run_key_covers_every_candidate_setting_and_not_the_batch_size():
    base = dict(checkpoint=str(DEMO_CHECKPOINT), dataset=str(DEMO_SNAPSHOT), criteria=str(CRITERIA),
                baseline_config=str(BASELINE_CONFIG), reports_root=str(scratch_dir()))
    key = prepare_run(GateOptions(**base)).run_key
    assert prepare_run(GateOptions(**base, batch_size=1)).run_key == key
    for change in ({"conf": 0.3}, {"imgsz": 320}, {"device": "cuda:0"}, {"torch_threads": 1}):
        assert prepare_run(GateOptions(**base, **change)).run_key != key, change
    settings = yolo_backend.request_settings(0.25, 256, "cpu", 2)
    for name in ("imgsz", "conf", "iou", "max_det", "retina_masks", "letterbox", "rect", "device", "torch_threads"):
        assert name in settings, name


def test_provenance_records_what_ultralytics_resolved(backends, photos):
    provenance = backends["candidate"].provenance()
    assert provenance["imgsz"] == 256  # the demo checkpoint's training size
    assert provenance["imgsz_effective"] == [256, 256] and provenance["stride"] == 32
    assert provenance["half"] is False and provenance["device_resolved"] == "cpu"
    assert provenance["torch_threads"] == 2
    import torch

    # Setting up any ultralytics predictor on a CPU resets torch's threads to min(8, cores - 1), as the
    # other test's plain YOLO model just did; the backend runs every request with its own count.
    torch.set_num_threads(1)
    backends["candidate"].predict([photos[0]])
    assert torch.get_num_threads() == 2
    for name in ("ultralytics", "torch", "torchvision", "channels_last", "iou", "max_det"):
        assert name in provenance, name


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
