"""Fail-closed matrix (#3), input rows: every bad checkpoint, snapshot, criteria or baseline-config input
stops the gate with a GateInputError that names the file and the problem, never with another exception.

Mostly library calls (cheap); the checkpoint-loading and rembg rows construct the real backends.
"""

import builtins
import io
import json
import os
import pathlib
import struct
import sys
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

from eval.digests import file_digest
from eval.errors import GateInputError
from eval import gate as gate_lib
from eval.gate import score_items
from eval.inputs import checkpoint as checkpoint_lib
from eval.inputs import images
from eval.inputs import volumes
from eval.inputs.baseline_config import load_baseline_config
from eval.inputs.criteria import load_criteria
from eval.inputs.snapshot import load_snapshot
from tests.support import (BASELINE_CONFIG, CRITERIA, VALID_CRITERIA, criteria_file, crop_run, pot_photo,
                           untrained_checkpoint, write_snapshot)


def refused(call, where, *fragments):
    """Assert `call()` raises GateInputError naming `where` and every fragment; return the message."""
    with pytest.raises(GateInputError) as caught:
        call()
    message = str(caught.value)
    assert str(where) in caught.value.where, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def deny_reading(monkeypatch, path):
    """Make `path` unreadable. The tests may run as root (where chmod 000 changes nothing), so every
    open of it (builtins.open, and os.open, through which eval.inputs.safe_paths opens every input) fails
    as for a 0o000 file."""
    target = os.path.realpath(path)

    def guard(real_open):
        def guarded(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and os.path.realpath(file) == target:
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)
        return guarded

    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(os, "open", guard(os.open))


# --- Checkpoint ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seg_checkpoint():
    return untrained_checkpoint()


def _yolo(spec):
    from eval.backends.yolo_backend import YoloSegBackend

    return YoloSegBackend(checkpoint_lib.resolve_checkpoint(str(spec)))


def test_checkpoint_missing(tmp_path):
    refused(lambda: checkpoint_lib.resolve_checkpoint(str(tmp_path / "best.pt")), tmp_path / "best.pt",
            "checkpoint file not found")
    refused(lambda: checkpoint_lib.resolve_checkpoint(str(tmp_path)), tmp_path, "checkpoint file not found")


@pytest.mark.parametrize("content", [b"", b"hello, not a model", b"\x80\x02}q\x00.", b"\x89PNG\r\n\x1a\n"],
                         ids=["zero-byte", "text", "legacy-pickle", "png"])
def test_checkpoint_not_a_torch_file_is_refused_before_loading(tmp_path, content):
    path = tmp_path / "best.pt"
    path.write_bytes(content)
    refused(lambda: checkpoint_lib.resolve_checkpoint(str(path)), path, "not a torch checkpoint")


def test_checkpoint_unreadable(tmp_path, monkeypatch, seg_checkpoint):
    path = tmp_path / "best.pt"
    path.write_bytes(seg_checkpoint.read_bytes())
    deny_reading(monkeypatch, path)
    refused(lambda: checkpoint_lib.resolve_checkpoint(str(path)), path, "cannot read checkpoint",
            "Permission denied")


@pytest.mark.parametrize("cut", [0.5, 0.99, 100 / 7_000_000], ids=["half", "last-byte-ish", "100-bytes"])
def test_checkpoint_truncated_zip_fails_to_load_with_its_path(tmp_path, seg_checkpoint, cut):
    data = seg_checkpoint.read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[:max(8, int(len(data) * cut))])
    assert checkpoint_lib.resolve_checkpoint(str(path)).sha256  # the zip magic survives truncation
    refused(lambda: _yolo(path), path, "cannot load as an ultralytics checkpoint")


def test_checkpoint_torch_file_that_is_not_a_yolo_model(tmp_path):
    import torch

    torch.save({"weights": torch.zeros(2)}, tmp_path / "dict.pt")
    refused(lambda: _yolo(tmp_path / "dict.pt"), tmp_path / "dict.pt", "cannot load as an ultralytics checkpoint")


def test_checkpoint_detection_model_is_refused():
    detect = untrained_checkpoint("yolov8n.yaml")
    refused(lambda: _yolo(detect), detect, "is a 'detect' model", "segmentation")


def test_checkpoint_segmentation_model_loads(seg_checkpoint):
    """Control for the rows above: the same route accepts a real segmentation checkpoint."""
    assert _yolo(seg_checkpoint).provenance()["checkpoint_sha256"] == file_digest(seg_checkpoint)


def test_checkpoint_sha256_pin(seg_checkpoint):
    digest = file_digest(seg_checkpoint)
    other = ("0" if digest[0] != "0" else "1") + digest[1:]
    message = refused(lambda: checkpoint_lib.resolve_checkpoint(str(seg_checkpoint), other), seg_checkpoint,
                      "differs from the pinned --checkpoint_sha256")
    assert digest in message and other in message
    assert checkpoint_lib.resolve_checkpoint(str(seg_checkpoint), digest.upper()).sha256 == digest


@pytest.mark.parametrize("pin", ["", "abc", "g" * 64, "0" * 63, "0" * 65])
def test_checkpoint_malformed_pin_is_refused_not_ignored(seg_checkpoint, pin):
    """An empty or mistyped pin (CI passing an unset variable) must not silently mean "unpinned"."""
    refused(lambda: checkpoint_lib.resolve_checkpoint(str(seg_checkpoint), pin), "--checkpoint_sha256",
            "not a 64-hex-digit sha256")


def test_checkpoint_allowlist(tmp_path, seg_checkpoint):
    digest = file_digest(seg_checkpoint)
    allowlist = tmp_path / "approved.txt"
    allowlist.write_text("# approved checkpoints\n" + "1" * 64 + "  run-41\n")
    refused(lambda: checkpoint_lib.resolve_checkpoint(str(seg_checkpoint), None,
                                                      checkpoint_lib.read_allowlist(allowlist)),
            seg_checkpoint, "not in the checkpoint allowlist")
    allowlist.write_text(f"{digest}  run-42\n")
    assert checkpoint_lib.resolve_checkpoint(str(seg_checkpoint), None,
                                             checkpoint_lib.read_allowlist(allowlist)).sha256 == digest
    allowlist.write_text(f"{digest}\nsha256:{digest}\n")
    refused(lambda: checkpoint_lib.read_allowlist(allowlist), f"{allowlist}:2", "64-hex-digit")
    allowlist.write_bytes(b"\xff\xfe" + digest.encode())
    refused(lambda: checkpoint_lib.read_allowlist(allowlist), allowlist, "not UTF-8")
    refused(lambda: checkpoint_lib.read_allowlist(tmp_path / "none.txt"), tmp_path / "none.txt", "cannot read")


@pytest.mark.parametrize("uri, problem", [
    ("modal://", "malformed Modal Volume URI"),
    ("modal://vol", "malformed Modal Volume URI"),
    ("modal://vol/", "malformed Modal Volume URI"),
    ("modal:///best.pt", "malformed Modal Volume URI"),
    ("modal://bad volume/best.pt", "malformed Modal Volume URI"),
    ("modal://-vol/best.pt", "malformed Modal Volume URI"),
    ("modal://vol/../best.pt", "may not contain '..'"),
    ("modal://vol/runs/../../best.pt", "may not contain '..'"),
    ("modal://vol//", "must be non-empty"),
])
def test_checkpoint_malformed_modal_uri_is_refused_before_any_volume_access(uri, problem):
    def no_store(name):
        raise AssertionError(f"volume {name!r} opened for a malformed URI")

    refused(lambda: checkpoint_lib.resolve_checkpoint(uri, open_store=no_store), uri, problem)


def test_checkpoint_modal_uri_nothing_there(tmp_path, monkeypatch, seg_checkpoint):
    monkeypatch.setenv("GATE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "vol" / "runs").mkdir(parents=True)
    (tmp_path / "vol" / "runs" / "best.pt").write_bytes(seg_checkpoint.read_bytes())
    store = lambda name: volumes.LocalDirStore(tmp_path / name)  # noqa: E731
    refused(lambda: checkpoint_lib.resolve_checkpoint("modal://vol/runs/last.pt", open_store=store),
            "modal://vol/runs/last.pt", "nothing found")
    assert checkpoint_lib.resolve_checkpoint("modal://vol/runs/best.pt", open_store=store).path.is_file()


# --- Dataset snapshot: structure -----------------------------------------------------------------------


def test_snapshot_directory_missing_or_a_file(tmp_path):
    refused(lambda: load_snapshot(tmp_path / "nope"), tmp_path / "nope", "dataset snapshot directory not found")
    (tmp_path / "file").write_text("x")
    refused(lambda: load_snapshot(tmp_path / "file"), tmp_path / "file", "dataset snapshot directory not found")


def test_snapshot_manifest_missing_or_wrong(tmp_path):
    root = write_snapshot(tmp_path)
    manifest = root / "snapshot.yaml"
    manifest.write_text("format: pottery-gate-snapshot/v2\nversion: tiny-v1\n")
    refused(lambda: load_snapshot(root), manifest, "format")
    manifest.write_text("format: pottery-gate-snapshot/v1\nversion: ../../etc\n")
    refused(lambda: load_snapshot(root), manifest, "version")
    manifest.write_text('format: pottery-gate-snapshot/v1\nversion: "v1\\n"\n')  # would name the report folder
    refused(lambda: load_snapshot(root), manifest, "version")
    manifest.unlink()
    refused(lambda: load_snapshot(root), manifest, "file not found")


@pytest.mark.parametrize("remove, where, problem", [
    ("test/images", "test/images", "missing: the test split needs test/images/"),
    ("test", "test/images", "missing: the test split needs test/images/"),
    ("flagged/croprun.jsonl", "flagged/croprun.jsonl", "missing: the flagged corpus needs flagged/croprun.jsonl"),
    ("flagged", "flagged/croprun.jsonl", "missing: the flagged corpus needs flagged/croprun.jsonl"),
])
def test_snapshot_missing_split(tmp_path, remove, where, problem):
    import shutil

    root = write_snapshot(tmp_path)
    target = root / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    refused(lambda: load_snapshot(root), root / where, problem)


def test_snapshot_empty_corpora(tmp_path):
    root = write_snapshot(tmp_path / "a", n_test=0)
    (root / "test" / "images" / ".DS_Store").write_bytes(b"\x00")  # hidden files are not images
    refused(lambda: load_snapshot(root), root / "test" / "images", "empty corpus")


def test_snapshot_stray_file_in_the_test_split(tmp_path):
    root = write_snapshot(tmp_path)
    (root / "test" / "images" / "README.txt").write_text("exported by #415")
    refused(lambda: load_snapshot(root), root / "test" / "images" / "README.txt", "not an image file")


def test_snapshot_duplicate_test_image_ids(tmp_path):
    root = write_snapshot(tmp_path)
    pot_photo()[0].save(root / "test" / "images" / "t0.jpg")
    refused(lambda: load_snapshot(root), root / "test" / "images", "duplicate image id 't0'")


def test_snapshot_duplicate_croprun_ids_name_both_lines(tmp_path):
    root = write_snapshot(tmp_path, rows=[crop_run("a"), crop_run("b"), crop_run("a", "again")])
    refused(lambda: load_snapshot(root), f"{root / 'flagged' / 'croprun.jsonl'}:3",
            "duplicate CropRun id 'a'", "first on line 1")


def _good_line(row_id):
    return json.dumps(crop_run(row_id))


@pytest.mark.parametrize("bad_line, problem", [
    ('{"id": "x", ', "malformed JSON"),
    ('{"id": "x",}', "malformed JSON"),
    ("not json at all", "malformed JSON"),
    ("[1, 2, 3]", "is not of type 'object'"),
    ('"just a string"', "is not of type 'object'"),
    (json.dumps({k: v for k, v in crop_run("x").items() if k != "source"}), "'source' is a required property"),
    (json.dumps({**crop_run("x"), "id": 7}), "id: 7 is not of type 'string'"),
    (json.dumps({**crop_run("x"), "id": ""}), "id"),
    (json.dumps({**crop_run("x"), "extra": 1}), "Additional properties are not allowed"),
    (json.dumps({**crop_run("x"), "annotation": {"kind": "guess", "mask": "m.png"}}), "annotation"),
    (json.dumps({**crop_run("x"), "source": {"type": "human"}}), "source"),
    ('{"id": "x", "id": "y", "image": "i.png", "source": {}, "notes": "", "annotation": null}',
     "duplicate key 'id'"),
    ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    ('{"id": 1' + "0" * 5000 + "}", "malformed JSON"),
    (json.dumps(crop_run("x")).replace('"x"', '"\\ud800"', 1), "not valid Unicode"),
    ("\ufeff" + json.dumps(crop_run("x")), "BOM"),
], ids=["truncated", "trailing-comma", "text", "array", "string", "missing-field", "wrong-type", "empty-id",
        "unknown-field", "bad-annotation-kind", "partial-source", "duplicate-key", "deep-nesting", "huge-int",
        "lone-surrogate", "bom"])
def test_snapshot_malformed_jsonl_row_names_its_line(tmp_path, bad_line, problem):
    root = write_snapshot(tmp_path)
    jsonl = root / "flagged" / "croprun.jsonl"
    # line 1 good, line 2 blank (counted), line 3 bad, line 4 good
    jsonl.write_text(f"{_good_line('cr-1')}\n\n{bad_line}\n{_good_line('cr-2')}\n", encoding="utf-8")
    refused(lambda: load_snapshot(root), f"{jsonl}:3", problem)


def test_snapshot_unicode_line_separators_inside_notes_are_not_line_breaks(tmp_path):
    """JSON allows U+2028, U+2029 and U+0085 unescaped in strings; they must not split a row."""
    notes = "glossy\u2028glaze\u2029shine\x85end"
    root = write_snapshot(tmp_path, rows=[crop_run("cr-1", notes), crop_run("cr-2")])
    jsonl = root / "flagged" / "croprun.jsonl"
    rows = [json.dumps(crop_run("cr-1", notes), ensure_ascii=False), '{"broken', _good_line("cr-2")]
    jsonl.write_text("\n".join(rows) + "\n", encoding="utf-8")
    refused(lambda: load_snapshot(root), f"{jsonl}:2", "malformed JSON")  # line numbers stay right
    jsonl.write_text("\n".join(rows[::2]) + "\n", encoding="utf-8")
    flagged = [i for i in load_snapshot(root).items if i.corpus == "flagged"]
    assert [(i.image_id, i.notes) for i in flagged] == [("cr-1", notes), ("cr-2", "")]


# --- Dataset snapshot: paths that leave the root ---------------------------------------------------------


@pytest.mark.parametrize("field", ["image", "mask"])
@pytest.mark.parametrize("path, problem", [
    ("../../outside.png", "escapes the snapshot root"),
    ("images/../../outside.png", "escapes the snapshot root"),
    ("/etc/passwd", "escapes the snapshot root"),
    ("images\\..\\..\\outside.png", "escapes the snapshot root"),
    ("images/a\x00.png", "NUL character"),
])
def test_snapshot_row_paths_escaping_the_root_are_refused(tmp_path, field, path, problem):
    row = crop_run("evil", image=path) if field == "image" else crop_run("evil", mask=path)
    root = write_snapshot(tmp_path / "snap", rows=[crop_run("cr-1"), row])
    refused(lambda: load_snapshot(root), f"{root / 'flagged' / 'croprun.jsonl'}:2", problem)


def _outside_png(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    pot_photo()[0].save(outside / "secret.png")
    return outside


@pytest.mark.parametrize("link", [
    "flagged/images/cr-1.png", "flagged/masks/cr-1.png", "test/images/t0.png", "test/masks/t0.png",
])
def test_snapshot_symlinked_file_pointing_outside_is_refused(tmp_path, link):
    outside = _outside_png(tmp_path)
    root = write_snapshot(tmp_path / "snap")
    (root / link).unlink()
    (root / link).symlink_to(outside / "secret.png")
    refused(lambda: load_snapshot(root), "", "resolves outside the snapshot root")


@pytest.mark.parametrize("link", ["flagged", "flagged/croprun.jsonl", "test/images", "snapshot.yaml"])
def test_snapshot_symlinked_folder_or_index_pointing_outside_is_refused(tmp_path, link):
    import shutil

    root = write_snapshot(tmp_path / "snap")
    moved = tmp_path / "outside" / pathlib.Path(link).name
    moved.parent.mkdir()
    shutil.move(root / link, moved)
    (root / link).symlink_to(moved)
    refused(lambda: load_snapshot(root), "", "resolves outside the snapshot root")


def test_snapshot_symlink_inside_the_root_is_allowed(tmp_path):
    root = write_snapshot(tmp_path / "snap")
    (root / "flagged" / "images" / "cr-1.png").unlink()
    (root / "flagged" / "images" / "cr-1.png").symlink_to(root / "test" / "images" / "t0.png")
    assert all(i.problem is None for i in load_snapshot(root).items)


# --- Dataset snapshot: per-image problems ------------------------------------------------------------------


def test_snapshot_missing_or_unreadable_image_is_an_item_problem(tmp_path, monkeypatch):
    root = write_snapshot(tmp_path)
    (root / "flagged" / "images" / "cr-2.png").unlink()
    deny_reading(monkeypatch, root / "flagged" / "masks" / "cr-3.png")
    problems = {i.image_id: i.problem for i in load_snapshot(root).items}
    assert problems["cr-2"] == f"{root / 'flagged' / 'images' / 'cr-2.png'}: file not found"
    assert problems["cr-3"] == f"{root / 'flagged' / 'masks' / 'cr-3.png'}: cannot read (Permission denied)"
    assert [k for k, v in problems.items() if v] == ["cr-2", "cr-3"]


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


@pytest.mark.parametrize("spoil, problem", [
    (lambda p: p.write_bytes(b""), "cannot decode image"),
    (_truncated, "cannot decode image"),
    (lambda p: p.write_text("<html>404</html>"), "cannot decode image"),
], ids=["zero-byte", "truncated", "not-an-image"])
@pytest.mark.parametrize("loader", ["photo", "mask"])
def test_undecodable_image_names_the_file(tmp_path, spoil, problem, loader):
    photo, mask = pot_photo()
    path = tmp_path / "x.png"
    (photo if loader == "photo" else mask).save(path)
    spoil(path)
    call = (lambda: images.load_rgb(path)) if loader == "photo" else (lambda: images.load_mask(path, (96, 72)))
    refused(call, path, problem)


def test_unreadable_image_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "x.png"
    pot_photo()[0].save(path)
    deny_reading(monkeypatch, path)
    refused(lambda: images.load_rgb(path), path, "Permission denied")


def test_mask_size_differs_from_its_image(tmp_path):
    path = tmp_path / "m.png"
    pot_photo(width=100, height=72)[1].save(path)
    refused(lambda: images.load_mask(path, (96, 72)), path, "mask is 100x72 but its image is 96x72")


def _forged_png(path, width, height):
    """A tiny file whose header claims `width` x `height`: a decompression bomb that is never decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1))) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("size", [(7000, 6000), (50_000, 50_000)], ids=["just-over", "far-over"])
def test_decompression_bomb_is_refused_for_photos_and_masks(tmp_path, size):
    path = _forged_png(tmp_path / "bomb.png", *size)
    assert path.stat().st_size < 10_000
    refused(lambda: images.load_rgb(path), path, "more than 40000000 pixels")
    refused(lambda: images.load_mask(path, size), path, "more than 40000000 pixels")


# --- Dataset snapshot: pixel formats and the mask rule --------------------------------------------------------


def _png16_rgb(path, rgb16):
    """Pillow cannot write 48-bit RGB PNGs; build one by hand."""
    height, width, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


RGB = (200, 100, 50)
GREY = 124  # ITU-R 601 luma of RGB, what Pillow's "L" conversion gives


@pytest.mark.parametrize("name, make, expected", [
    ("cmyk.jpg", lambda p: Image.new("RGB", (8, 6), RGB).convert("CMYK").save(p, quality=100), RGB),
    ("cmyk.tif", lambda p: Image.new("RGB", (8, 6), RGB).convert("CMYK").save(p), RGB),
    ("rgb16.png", lambda p: _png16_rgb(p, np.full((6, 8, 3), [c * 257 for c in RGB], np.uint16)), RGB),
    ("palette.png", lambda p: Image.new("RGB", (8, 6), RGB).quantize(4).save(p), RGB),
    ("palette-transparent.png", lambda p: Image.new("RGB", (8, 6), RGB).quantize(4).save(p, transparency=0), RGB),
    ("rgba.png", lambda p: Image.new("RGBA", (8, 6), RGB + (0,)).save(p), RGB),
    ("la.png", lambda p: Image.new("RGB", (8, 6), RGB).convert("LA").save(p), (GREY,) * 3),
    ("bilevel.png", lambda p: Image.new("1", (8, 6), 1).save(p), (255,) * 3),
    ("rgb.webp", lambda p: Image.new("RGB", (8, 6), RGB).save(p, lossless=True), RGB),
])
def test_photo_pixel_formats_become_8bit_rgb(tmp_path, name, make, expected):
    path = tmp_path / name
    make(path)
    photo = images.load_rgb(path)
    assert photo.shape == (6, 8, 3) and photo.dtype == np.uint8
    assert np.abs(photo.astype(int) - expected).max() <= 3, photo[0, 0]
    # Every backend sees the photo as production's rembg decodes it (its own orientation fix, then
    # Pillow's convert("RGB") in its session), pixel for pixel.
    from rembg.bg import fix_image_orientation

    with Image.open(path) as img:
        assert np.array_equal(photo, np.asarray(fix_image_orientation(img).convert("RGB")))


@pytest.mark.parametrize("name, make", [
    ("grey16.png", lambda p: Image.fromarray(np.full((6, 8), 200 * 257, np.uint16)).save(p)),
    ("grey16-low.png", lambda p: Image.fromarray(np.full((6, 8), 200, np.uint16)).save(p)),
    ("grey32.tif", lambda p: Image.fromarray(np.full((6, 8), 70000, np.int32)).save(p)),
    ("float.tif", lambda p: Image.fromarray(np.full((6, 8), 0.5, np.float32)).save(p)),
])
def test_photos_with_more_than_8_bits_per_channel_are_refused(tmp_path, name, make):
    """Production's rembg clips them at 255 (convert("RGB")): a 16-bit photo of a pot turns nearly
    white. The gate neither scores that input nor a rescaled one production would never see."""
    path = tmp_path / name
    make(path)
    with Image.open(path) as img:
        clipped = np.asarray(img.convert("RGB"))
    if name == "grey16.png":
        assert (clipped == 255).all()  # what production would segment
    refused(lambda: images.load_rgb(path), path, "more than 8 bits per channel")


def test_a_16bit_photo_in_a_snapshot_is_not_evaluated_by_name(tmp_path):
    from eval.gate import _try_decode

    root = write_snapshot(tmp_path / "snap", n_test=1)
    Image.fromarray(np.full((72, 96), 200 * 257, np.uint16)).save(root / "test/images/t0.png")
    (item,) = [i for i in load_snapshot(root).items if i.image_id == "t0"]
    outcome = _try_decode(item)
    assert isinstance(outcome, GateInputError) and "t0.png" in str(outcome) and "I;16" in str(outcome)


@pytest.mark.parametrize("values, mode, expected", [
    ([0, 127, 128, 255], "L", [0, 0, 1, 1]),  # anti-aliased edges split at half coverage
    ([0, 32767, 32768, 65535], "I;16", [0, 0, 1, 1]),  # 16-bit masks on a 0-65535 scale
    ([0, 255, 0, 255], "1", [0, 1, 0, 1]),
    ([0, 0, 0, 0], "L", [0, 0, 0, 0]),  # an empty mask is a legitimate (empty) ground truth
])
def test_mask_rule(tmp_path, values, mode, expected):
    path = tmp_path / "m.png"
    dtype = np.uint16 if mode == "I;16" else np.uint8
    img = Image.fromarray(np.array([values], dtype=dtype))
    (img.convert("1") if mode == "1" else img).save(path)
    assert images.load_mask(path, (4, 1)).astype(int).tolist() == [expected]


def test_mask_with_alpha_is_read_from_the_alpha(tmp_path):
    path = tmp_path / "m.png"
    rgba = np.zeros((1, 4, 4), np.uint8)
    rgba[0, :, :3] = 255  # white everywhere: only the alpha says where the pot is
    rgba[0, :, 3] = [0, 127, 128, 255]
    Image.fromarray(rgba, "RGBA").save(path)
    assert images.load_mask(path, (4, 1)).tolist() == [[False, False, True, True]]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_mask_with_0_1_labels_is_refused_not_read_as_empty(tmp_path, dtype):
    """By the >= 128 rule a 0/1 label image is all background, which an empty prediction matches perfectly."""
    path = tmp_path / "labels.png"
    Image.fromarray(np.array([[0, 1, 1, 0]], dtype=dtype)).save(path)
    refused(lambda: images.load_mask(path, (4, 1)), path, "none >= 128", "0/1 label image")


POT = np.zeros((6, 8), bool)
POT[1:5, 2:6] = True  # the drawing: a 4x4 pot in an 8x6 frame


def _rgba(colour, alpha):
    """An RGBA image whose colour channels are 255 where `colour` and whose alpha is `alpha` everywhere."""
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., :3] = np.where(colour, 255, 0)[..., None]
    rgba[..., 3] = alpha
    return Image.fromarray(rgba, "RGBA")


def _palette(colour, transparent_index):
    img = Image.fromarray(np.where(colour, 1, 0).astype(np.uint8), "P")
    img.putpalette([0, 0, 0, 255, 255, 255, 9, 9, 9])
    img.info["transparency"] = transparent_index
    return img


@pytest.mark.parametrize("name, make", [
    ("rgba-transparent", lambda p: _rgba(POT, 0).save(p)),  # read from the alpha: silently empty
    ("rgba-opaque", lambda p: _rgba(POT, 255).save(p)),  # read from the alpha: silently full
    ("rgba-opaque-black", lambda p: _rgba(np.zeros_like(POT), 255).save(p)),  # full alpha, empty colour
    ("la-opaque", lambda p: _rgba(POT, 255).convert("LA").save(p)),
    ("la-transparent-tif", lambda p: _rgba(POT, 0).convert("LA").save(p.with_suffix(".tif"))),
    ("palette-unused-index-transparent", lambda p: _palette(POT, 2).save(p)),  # alpha all opaque
])
def test_mask_with_a_constant_alpha_over_a_drawing_is_refused(tmp_path, name, make):
    """Issue 8.1: the alpha draws nothing while the colour does; which one is the ground truth?"""
    path = tmp_path / "m.png"
    make(path)
    path = path if path.exists() else path.with_suffix(".tif")
    refused(lambda: images.load_mask(path, (8, 6)), path, "alpha is constant", "colour channels hold a drawing")


@pytest.mark.parametrize("name, make, expected", [
    ("rgba-transparent-black", lambda p: _rgba(np.zeros_like(POT), 0).save(p), np.zeros_like(POT)),
    ("rgba-opaque-white", lambda p: _rgba(np.ones_like(POT), 255).save(p), np.ones_like(POT)),
    ("rgba-alpha-drawing", lambda p: _rgba(np.ones_like(POT), np.where(POT, 255, 0)).save(p), POT),
    ("palette-background-transparent", lambda p: _palette(POT, 0).save(p), POT),  # alpha = the drawing
    ("palette-no-transparency", lambda p: _palette(POT, None).save(p), POT),
])
def test_mask_alpha_and_colour_that_agree_are_read(tmp_path, name, make, expected):
    path = tmp_path / "m.png"
    make(path)
    assert (images.load_mask(path, (8, 6)) == expected).all()


def _tiff(mode):
    def make(path):
        grey = Image.fromarray(np.where(POT, 255, 0).astype(np.uint8), "L")
        if mode in ("I;16", "I"):
            img = Image.fromarray(np.where(POT, 65535, 0).astype(np.uint16 if mode == "I;16" else np.int32))
        elif mode == "F":
            img = Image.fromarray(np.where(POT, 1.0, 0.0).astype(np.float32), "F")
        else:
            img = grey.convert(mode)
        img.save(path)
    return make


def _frames(suffix):
    def make(path):
        first = Image.fromarray(np.where(POT, 255, 0).astype(np.uint8), "L")
        first.save(path.with_suffix(suffix), save_all=True, append_images=[Image.new("L", (8, 6), 255)])
    return make


@pytest.mark.parametrize("name, make, outcome", [
    ("lab.tif", _tiff("LAB"), "mask pixel mode 'LAB' is not supported"),
    ("cmyk.tif", _tiff("CMYK"), "mask pixel mode 'CMYK' is not supported"),
    ("ycbcr.tif", _tiff("YCbCr"), "mask pixel mode 'YCbCr' is not supported"),
    ("float.tif", _tiff("F"), "mask pixel mode 'F' is not supported"),  # 0..1 or 0..255? refuse
    ("grey16.tif", _tiff("I;16"), POT),
    ("int32.tif", _tiff("I"), POT),
    ("bilevel.tif", _tiff("1"), POT),
    ("rgb.tif", _tiff("RGB"), POT),
    ("two-pages.tif", _frames(".tif"), "has 2 frames"),
    ("animated.png", _frames(".png"), "has 2 frames"),
])
def test_mask_in_any_pixel_mode_is_read_or_refused_naming_the_file(tmp_path, name, make, outcome):
    """Issue 8.14: a LAB TIFF mask ended the run in a ValueError traceback, multi-frame masks read frame 0."""
    path = tmp_path / name
    make(path)
    if isinstance(outcome, str):
        refused(lambda: images.load_mask(path, (8, 6)), path, outcome)
    else:
        assert (images.load_mask(path, (8, 6)) == outcome).all()


def test_odd_mode_mask_is_a_not_evaluated_image_in_the_gate_not_a_traceback(tmp_path):
    snap = write_snapshot(tmp_path / "snap", n_test=1, rows=[crop_run("cr-1", "gloss")])
    mask = snap / "flagged" / "masks" / "cr-1.png"
    lab = Image.open(mask).convert("RGB").convert("LAB")
    mask.unlink()
    lab.save(mask.with_suffix(".tif"))
    mask.with_suffix(".tif").rename(mask)  # a LAB TIFF under the .png name the row gives
    item = next(i for i in load_snapshot(snap).items if i.image_id == "cr-1")
    outcome = gate_lib._try_decode(item)
    assert isinstance(outcome, GateInputError) and outcome.where == str(mask), outcome
    assert "mask pixel mode 'LAB' is not supported" in outcome.problem


class _HeldFile(io.BytesIO):
    """A file whose first read waits for `release`: a decode held open at a chosen moment."""

    def __init__(self, data):
        super().__init__(data)
        self.reading, self.release = threading.Event(), threading.Event()

    def read(self, *args):
        self.reading.set()
        assert self.release.wait(30)
        return super().read(*args)


def test_size_guard_holds_when_decodes_overlap_in_threads(tmp_path):
    """Issue 8.16: the guard was a warnings filter set inside warnings.catch_warnings(), which is process-wide.

    Decode A enters the guard and is held; decode B of a 50-Mpixel image enters; A leaves, restoring the
    filters without B's "error"; B's size warning was then just a warning and its pixels were decoded.
    """
    small, big = io.BytesIO(), io.BytesIO()
    Image.new("L", (8, 6)).save(small, format="PNG")
    Image.new("1", (8000, 6250)).save(big, format="PNG", optimize=True)  # 50 Mpixel, a few kB
    first, second = _HeldFile(small.getvalue()), _HeldFile(big.getvalue())
    outcomes = {}

    def decode(name, handle):
        try:
            outcomes[name] = images.load_rgb(handle).shape
        except GateInputError as err:
            outcomes[name] = err

    threads = [threading.Thread(target=decode, args=("small", first)),
               threading.Thread(target=decode, args=("big", second))]
    threads[0].start()
    assert first.reading.wait(30)
    threads[1].start()
    assert second.reading.wait(30)
    first.release.set()
    threads[0].join(30)
    second.release.set()
    threads[1].join(60)
    assert outcomes["small"] == (6, 8, 3)
    assert isinstance(outcomes["big"], GateInputError), outcomes["big"]
    assert "8000x6250, more than 40000000 pixels" in outcomes["big"].problem


# --- Dataset snapshot: EXIF orientation -----------------------------------------------------------------------


def _exif(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


class _GreenBelow128:
    """A deterministic stand-in backend: the pot of pot_photo() is exactly the pixels with green < 128."""

    def __init__(self, name):
        self.name = name

    def predict(self, photos):
        return [photo[..., 1] < 128 for photo in photos]


@pytest.mark.parametrize("orientation, mask_has_exif", [(3, True), (6, True), (8, True), (6, False), (1, True)])
def test_exif_orientation_is_applied_to_photo_mask_and_predictions_alike(tmp_path, orientation, mask_has_exif):
    photo, mask = pot_photo(shift=9)  # off-centre: a rotation that misses one of them changes the overlap
    root = write_snapshot(tmp_path, n_test=1)
    photo.save(root / "test" / "images" / "t0.png", exif=_exif(orientation))
    if mask_has_exif:
        mask.save(root / "test" / "masks" / "t0.png", exif=_exif(orientation))
    else:  # exported already upright
        mask.transpose(Image.Transpose.ROTATE_270).save(root / "test" / "masks" / "t0.png")
    item = next(i for i in load_snapshot(root).items if i.corpus == "test")
    shape = images.load_rgb(item.image_path).shape[:2]
    assert shape == ((96, 72) if orientation in (6, 8) else (72, 96))
    scores, not_evaluated, *_ = score_items([item], load_criteria(CRITERIA), {
        name: _GreenBelow128(name) for name in ("rembg", "candidate")}).result()
    assert not_evaluated == ()
    assert [s.mask_iou for s in scores] == [1.0, 1.0]


def test_exif_rotated_photo_with_an_unrotated_mask_is_refused(tmp_path):
    photo, mask = pot_photo()
    photo.save(tmp_path / "p.png", exif=_exif(6))
    mask.save(tmp_path / "m.png")
    size = images.image_size(images.load_rgb(tmp_path / "p.png"))
    refused(lambda: images.load_mask(tmp_path / "m.png", size), tmp_path / "m.png",
            "mask is 96x72 but its image is 72x96")


# --- Criteria file ---------------------------------------------------------------------------------------------

VALID = VALID_CRITERIA


def test_criteria_control_valid_file_loads(tmp_path):
    assert [c.id for c in load_criteria(criteria_file(VALID, tmp_path)).criteria] == ["pass_rate", "regress"]


def test_criteria_missing_or_unreadable(tmp_path):
    refused(lambda: load_criteria(tmp_path / "nope.yaml"), tmp_path / "nope.yaml", "file not found")
    refused(lambda: load_criteria(tmp_path), tmp_path, "not a regular file (a folder)")
    path = tmp_path / "latin1.yaml"
    path.write_bytes(VALID.replace("glossy", "glac\xe9").encode("latin-1"))
    refused(lambda: load_criteria(path), path, "not UTF-8")


@pytest.mark.parametrize("text, position", [
    (VALID.replace("min_images: 2", "min_images: [2"), "line 5, column 16"),
    (VALID.replace("    description: glossy", "    description: glossy\n   bad_indent: 1"), "line 8, column 4"),
    (VALID.replace("example_values: false", "example_values:\tfalse\n\tmore: 1"), "line 2, column 16"),
    (VALID.replace("threshold: 0.5}", "threshold: 0.5"), "line 14, column 5"),
    (VALID.replace("description: glossy", "description: 'unterminated"), "line"),
    (VALID.replace("glossy", "glossy\x00"), "line 7, column 24: unacceptable character #x0000"),
], ids=["unclosed-list", "bad-indent", "tab", "unclosed-flow-map", "unterminated-quote", "nul"])
def test_criteria_yaml_syntax_error_has_line_and_column(tmp_path, text, position):
    path = criteria_file(text, tmp_path)
    refused(lambda: load_criteria(path), path, "YAML error at", position)


CRITERIA_CASES = [
    # unknown or misspelt keys
    (("min_images: 2", "min_imagse: 2"), ["unknown key 'min_imagse' (did you mean 'min_images'?)"]),
    (("threshold: 0.5}", "treshold: 0.5}"), ["criteria[0]", "did you mean 'threshold'?"]),
    (("match: {notes_any", "match: {note_any"), ["failure_classes[0].match", "did you mean 'notes_any'?"]),
    (("deployment: [studio-b]", "deploy: [studio-b]"), ["failure_classes[1].match.source"]),
    (("min_images: 2", "min_images: 2\n1: one"), ["unknown key 1"]),
    (("min_images: 2", "min_images: 2\n2024-01-01: date\nnull: nothing"), ["unknown key"]),
    (("schema_version: 1", "version: 1"), ["'schema_version' is a required property"]),
    # wrong types
    (("threshold: 0.5}", "threshold: high}"), ["criteria[0].threshold", "'high' is not of type 'number'"]),
    (("threshold: 0.5}", "threshold: '0.5'}"), ["'0.5' is not of type 'number'"]),
    (("min_images: 2", "min_images: '2'"), ["min_images: '2' is not of type 'integer'"]),
    (("min_images: 2", "min_images: 2.5"), ["min_images: 2.5 is not of type 'integer'"]),
    (("min_images: 2", "min_images: true"), ["min_images: True is not of type 'integer'"]),
    (("example_values: false", "example_values: 'no'"), ["example_values"]),
    (("notes_any: ['gloss', 'shiny']", "notes_any: gloss"), ["notes_any", "is not of type 'array'"]),
    (("schema_version: 1", "schema_version: 2"), ["schema_version"]),
    # out of range
    (("iou_pass_threshold: 0.8", "iou_pass_threshold: 1.5"), ["1.5 is greater than the maximum of 1"]),
    (("iou_pass_threshold: 0.8", "iou_pass_threshold: 0"), ["iou_pass_threshold"]),
    (("iou_pass_threshold: 0.8", "iou_pass_threshold: -0.2"), ["iou_pass_threshold"]),
    (("iou_pass_threshold: 0.8", "iou_pass_threshold: .nan"), ["line 3", "'.nan' is not a finite number"]),
    (("iou_pass_threshold: 0.8", "iou_pass_threshold: .inf"), ["'.inf' is not a finite number"]),
    (("threshold: 0.5}", "threshold: 1.5}"), ["criteria[0].threshold: 1.5 is greater than the maximum of 1"]),
    (("threshold: 0.1}", "threshold: -0.1}"), ["criteria[1].threshold"]),
    (("threshold: 0.5}", "threshold: .NaN}"), ["not a finite number"]),
    (("min_images: 2", "min_images: 0"), ["min_images: 0 is less than the minimum of 1"]),
    # unknown corpus / failure class / kind, duplicates, reserved ids
    (("corpus: flagged, failure_class: all", "corpus: flaged, failure_class: all"),
     ["criteria[0].corpus", "is not one of ['test', 'flagged']"]),
    (("failure_class: all", "failure_class: glossy"), ["criterion 'pass_rate' names unknown failure class 'glossy'"]),
    (("kind: min_pass_rate", "kind: min_pass"), ["criteria[0].kind", "is not one of"]),
    (("id: regress", "id: pass_rate"), ["duplicate criterion id 'pass_rate'"]),
    (("id: studio_b", "id: gloss"), ["duplicate failure class id 'gloss'"]),
    (("id: studio_b", "id: each"), ["failure class id 'each' is reserved"]),
    (("id: studio_b", "id: Studio-B"), ["failure_classes[1].id"]),
    (("criteria:\n  - {id: pass_rate", "criteria: []\nunused:\n  - {id: pass_rate"), ["criteria"]),
    # regexes
    (("'gloss', 'shiny'", "'gloss', '(unclosed'"), ["failure class 'gloss': bad regex '(unclosed'"]),
    (("'gloss', 'shiny'", "'a{4294967296}'"), ["bad regex"]),
    # YAML features a config never needs
    (("min_images: 2", "min_images: 2\nmin_images: 3"), ["line 5", "duplicate key 'min_images'"]),
    (("example_values: false", "example_values: !!python/object/apply:os.system ['true']"), ["YAML error"]),
    (("example_values: false", "example_values: !!python/name:os.system"), ["YAML error"]),
    (("min_images: 2", "min_images: &n 2\nextra: *n"), ["aliases (*name) are not allowed"]),
    (("min_images: 2", "min_images: 2\n? [a, b]\n: 1"), ["cannot be a key"]),
    (("min_images: 2", "min_images: 2\nextra: " + "[" * 5000 + "]" * 5000), ["nested too deeply"]),
    (("id: studio_b", "id: \"studio_b\\n\""), ["failure_classes[1].id"]),  # Python's $ matches before a final \n
]


@pytest.mark.parametrize("change, problems", CRITERIA_CASES,
                         ids=[f"{n:02d}-{new.splitlines()[-1][:40]}" for n, ((_, new), _) in enumerate(CRITERIA_CASES)])
def test_criteria_invalid_file_names_file_and_problem(tmp_path, change, problems):
    assert change[0] in VALID
    path = criteria_file(VALID.replace(*change), tmp_path)
    refused(lambda: load_criteria(path), path, *problems)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a list\n", "just a string\n", "!!binary aGVsbG8=\n",
                                  "!!set {a, b}\n"])
def test_criteria_document_of_the_wrong_shape(tmp_path, text):
    path = criteria_file(text, tmp_path)
    refused(lambda: load_criteria(path), path, "<top level>", "is not of type 'object'")


def test_criteria_error_messages_stay_short(tmp_path):
    path = criteria_file(VALID.replace("description: glossy", "description: [" + "x, " * 100_000 + "x]"), tmp_path)
    message = refused(lambda: load_criteria(path), path, "failure_classes[0].description")
    assert len(message) < 1000


# --- Baseline config ------------------------------------------------------------------------------------------


def _baseline(tmp_path, text):
    path = tmp_path / "rembg_production.yaml"
    path.write_text(text)
    return path


def _rembg(path):
    from eval.backends.rembg_backend import RembgBackend

    return RembgBackend(load_baseline_config(path))


def test_baseline_unknown_rembg_model(tmp_path):
    path = _baseline(tmp_path, BASELINE_CONFIG.read_text().replace("model: u2net", "model: u2nett"))
    refused(lambda: _rembg(path), path, "unknown rembg model 'u2nett'", "rembg knows:", "u2net,")


def test_baseline_weights_not_installed_says_where_and_how(tmp_path, monkeypatch):
    empty = tmp_path / "u2net-home"
    empty.mkdir()
    monkeypatch.setenv("U2NET_HOME", str(empty))
    refused(lambda: _rembg(BASELINE_CONFIG), BASELINE_CONFIG, "weights for rembg model 'u2net' are not installed",
            f"rembg looks in {empty / 'models' / 'u2net'} and {empty}", "U2NET_HOME", "scripts/bootstrap.sh")


def test_baseline_weights_that_are_not_productions(tmp_path):
    path = _baseline(tmp_path, BASELINE_CONFIG.read_text().replace("60024c5c889badc19c04ad937298a77b", "f" * 32))
    message = refused(lambda: _rembg(path), "u2net.onnx", "differs from the production weights'")
    assert str(path) in message


@pytest.mark.parametrize("change, problem", [
    (("alpha_threshold: 128", "alpha_treshold: 128"), "did you mean 'alpha_threshold'?"),
    (("exif_transpose: true", "exif_transpose: false"), "exif_transpose"),
    (("alpha_threshold: 128", "alpha_threshold: 0"), "alpha_threshold"),
    (("intra_op_num_threads: 1", "intra_op_num_threads: 0"), "session.intra_op_num_threads"),
    (("model_md5: 60024c5c889badc19c04ad937298a77b", "model_md5: 60024C5C"), "model_md5"),
    (("providers: [CPUExecutionProvider]", "providers: []"), "session.providers"),
    (("model: u2net", "model: ''"), "model"),
])
def test_baseline_config_schema(tmp_path, change, problem):
    assert change[0] in BASELINE_CONFIG.read_text()
    path = _baseline(tmp_path, BASELINE_CONFIG.read_text().replace(*change))
    refused(lambda: load_baseline_config(path), path, problem)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
