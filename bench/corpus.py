"""A scaled synthetic pottery corpus for the benchmark: photos, exact masks and a valid snapshot directory.

Each image is drawn from its own generator keyed by (seed, index), so a corpus of 4N images starts with
the N images of the corpus of N, and the output does not depend on how many processes drew it. A scene
is a wall above a table (sometimes a striped backdrop), one thrown pot (bowl, vase or cup) shaded from a
random side, and sensor noise; the ground truth is exactly the pixels the pot covers. Photos are JPEG
(quality 90, like exported camera images), masks 8-bit PNG (0 or 255). Every third photo is stored as a
phone stores a shot taken with the phone turned: its pixels rotated a quarter turn and an EXIF Orientation
tag (6) that turns them back, so the decoder's EXIF handling is on the measured path.
"""

import concurrent.futures
import json
import multiprocessing
import os
import pathlib

import numpy as np
from PIL import ExifTags, Image

SNAPSHOT_FORMAT = "pottery-gate-snapshot/v1"
JPEG_QUALITY = 90
FLAGGED_FRACTION = 0.25
ROTATED_EVERY = 3
# CropRun notes cycling through the failure classes of configs/success_criteria.yaml (and one in none).
NOTES = ("glossy glaze reflection lost", "white on white, low contrast", "cast shadow kept", "busy shelves behind",
         "handle cut off", "")
_WALLS = ((0.78, 0.74, 0.68), (0.6, 0.65, 0.7), (0.36, 0.36, 0.38), (0.85, 0.8, 0.72))
_TABLES = ((0.55, 0.4, 0.28), (0.5, 0.5, 0.5), (0.8, 0.76, 0.68), (0.42, 0.3, 0.22))
_GLAZES = ((0.16, 0.26, 0.55), (0.36, 0.2, 0.12), (0.62, 0.3, 0.16), (0.2, 0.48, 0.5), (0.76, 0.6, 0.3),
           (0.5, 0.28, 0.42), (0.93, 0.92, 0.88))


def split(n_images):
    """(n_test, n_flagged): a quarter of the images are flagged CropRun rows, at least one of each."""
    n_flagged = min(max(1, round(n_images * FLAGGED_FRACTION)), n_images - 1)
    return n_images - n_flagged, n_flagged


def _pick(rng, palette):
    return np.array(palette[rng.integers(len(palette))], dtype=np.float32)


def draw(seed, index, width, height):
    """(photo as (H, W, 3) uint8, mask as (H, W) bool) of scene `index`."""
    rng = np.random.default_rng([seed, index])
    Y, X = np.ogrid[0:height, 0:width]
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    horizon = rng.uniform(0.5, 0.66) * height
    wall, table = _pick(rng, _WALLS), _pick(rng, _TABLES)
    rgb = np.where((Y < horizon)[..., None], wall * (0.96 + 0.06 * Y / height)[..., None],
                   table * (0.92 + 0.1 * (Y - horizon) / height)[..., None])
    rgb = np.broadcast_to(rgb, (height, width, 3)).astype(np.float32)
    if rng.random() < 0.3:  # striped fabric behind the pot
        period = rng.uniform(0.03, 0.07) * width
        band = (np.floor(X / period).astype(np.int32) % 2 == 0) & (Y < horizon)
        rgb = np.where(band[..., None], rng.uniform(0.15, 0.9, 3).astype(np.float32), rgb)

    kind = ("bowl", "vase", "cup")[rng.integers(3)]
    pot_height = {"bowl": rng.uniform(0.2, 0.3), "vase": rng.uniform(0.45, 0.6), "cup": rng.uniform(0.28, 0.36)}[kind]
    pot_height *= height
    base = rng.uniform(horizon + 0.1 * height, 0.92 * height)
    pot_height = min(pot_height, base - 0.06 * height)
    top, cx = base - pot_height, width / 2 + rng.uniform(-0.15, 0.15) * width
    rim = rng.uniform(0.08, 0.22) * width
    t = np.clip((Y - top) / pot_height, 0, 1)
    if kind == "bowl":
        radius = rim * (0.45 + 0.55 * np.sqrt(np.clip(1 - t ** 2, 0, 1)))
    elif kind == "vase":
        radius = rim * (0.45 + 0.55 * np.sin(np.pi * (0.15 + 0.85 * t)) ** 2)
    else:
        radius = rim * (1.0 - 0.15 * t)
    body = (np.abs(X - cx) <= radius) & (Y >= top) & (Y <= base)
    light = rng.choice([-1.0, 1.0])
    u = np.clip((X - cx) / radius, -1, 1)
    shade = 0.3 + 0.7 * np.maximum(0, 0.6 * light * u + 0.8 * np.sqrt(1 - u ** 2))
    rgb = np.where(body[..., None], _pick(rng, _GLAZES) * shade[..., None], rgb)
    rgb += rng.normal(0.0, 0.02, rgb.shape).astype(np.float32)
    photo = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
    return photo, body


def _crop_run(row_id, notes):
    return {"id": row_id, "image": f"images/{row_id}.jpg",
            "source": {"type": "human", "backend": "rembg", "deployment": "piece_image_crop_service",
                       "version": "2.0.50"},
            "notes": notes, "annotation": {"kind": "crop_annotation", "mask": f"masks/{row_id}.png"}}


def _names(n_images):
    n_test, _ = split(n_images)
    for index in range(n_images):
        if index < n_test:
            yield index, "test", f"t{index:06d}"
        else:
            yield index, "flagged", f"cr-{index:06d}"


def _write_one(job):
    root, seed, index, corpus, stem, width, height = job
    photo, mask = draw(seed, index, width, height)
    image, exif = Image.fromarray(photo), Image.Exif()
    if index % ROTATED_EVERY == ROTATED_EVERY - 1:
        image = image.transpose(Image.Transpose.ROTATE_90)  # EXIF orientation 6 turns it back (ROTATE_270)
        exif[ExifTags.Base.Orientation] = 6
    image.save(root / corpus / "images" / f"{stem}.jpg", quality=JPEG_QUALITY, exif=exif)
    Image.fromarray(mask.astype(np.uint8) * 255).save(root / corpus / "masks" / f"{stem}.png")
    return stem


def write_corpus(root, n_images, width=1024, height=768, seed=0, version=None, workers=None):
    """Write a valid snapshot of `n_images` images at `root` (drawn on `workers` processes); returns root."""
    root = pathlib.Path(root)
    for sub in ("test/images", "test/masks", "flagged/images", "flagged/masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    version = version or f"bench-{n_images}-{width}x{height}-s{seed}"
    (root / "snapshot.yaml").write_text(f"format: {SNAPSHOT_FORMAT}\nversion: {version}\n")
    jobs = [(root, seed, index, corpus, stem, width, height) for index, corpus, stem in _names(n_images)]
    workers = workers or os.cpu_count() or 1
    # fork: the parent holds no threads or models yet, and the workers only need numpy and Pillow.
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        list(pool.map(_write_one, jobs, chunksize=4))
    rows = [_crop_run(stem, NOTES[index % len(NOTES)]) for index, corpus, stem in _names(n_images)
            if corpus == "flagged"]
    (root / "flagged" / "croprun.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def pairs(root):
    """(corpus, image_id, photo path, mask path) of every image, in the gate's order (corpus, id)."""
    root = pathlib.Path(root)
    out = []
    for corpus in ("flagged", "test"):
        for mask in sorted((root / corpus / "masks").glob("*.png")):
            out.append((corpus, mask.stem, root / corpus / "images" / f"{mask.stem}.jpg", mask))
    return out
