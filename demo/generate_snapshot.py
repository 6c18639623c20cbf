"""Synthetic pottery photos with exact masks, and the demo gate's dataset snapshot made from them.

The demo has to run anywhere without customer photos, so the pictures are drawn: one thrown pot (bowl,
vase, or cup with a ring handle whose hole is background) on a table in front of a wall, with the
failure modes named in configs/success_criteria.yaml: glossy highlights, white on white, cast shadows
(darkened table, never part of the pot), busy backgrounds, thin handles.

Photos come in several shapes (PHOTO_SIZES: landscape, portrait, square, odd sizes), as customers'
do, so the demo runs the candidate on mixed-shape batches; training images keep the one TRAIN_SIZE.
Scenes are drawn at SCALE x the output size and averaged down. The ground truth is the pot's coverage
>= 0.5, the same half-coverage rule the gate uses to read masks, so it is exact by construction. The
output depends only on the seed (and the numpy, Pillow and OpenCV versions): every image draws from
its own generator, keyed by (seed, stream, index).
"""

import dataclasses
import json
import pathlib

import cv2
import numpy as np
from PIL import Image, ImageFilter

TRAIN_SIZE = (256, 192)  # (width, height) of every training image
# Sizes of the snapshot's photos, cycled through the test split and the CropRun rows: landscape, portrait,
# square, and odd sizes whose letterboxed shapes coincide with (or differ from) the others'.
PHOTO_SIZES = ((256, 192), (192, 256), (224, 224), (241, 179), (163, 287), (320, 160))
SCALE = 2
JPEG_QUALITY = 90
KINDS = ("bowl", "vase", "cup")
BUSY = ("stripes", "shelves", "blobs")
TEST_STREAM, FLAGGED_STREAM, TRAIN_STREAM = 1, 2, 3

_GLAZES = [(0.55, 0.68, 0.58), (0.16, 0.26, 0.55), (0.36, 0.2, 0.12), (0.62, 0.3, 0.16), (0.2, 0.48, 0.5),
           (0.76, 0.6, 0.3), (0.22, 0.22, 0.24), (0.5, 0.28, 0.42), (0.45, 0.55, 0.35), (0.7, 0.42, 0.3)]
_PALE_GLAZES = [(0.95, 0.94, 0.9), (0.93, 0.92, 0.88), (0.96, 0.95, 0.93), (0.92, 0.9, 0.84)]
_CLAYS = [(0.8, 0.7, 0.55), (0.72, 0.42, 0.3), (0.62, 0.6, 0.56)]
_WALLS = [(0.78, 0.74, 0.68), (0.6, 0.65, 0.7), (0.36, 0.36, 0.38), (0.63, 0.67, 0.58), (0.85, 0.8, 0.72)]
_TABLES = [(0.55, 0.4, 0.28), (0.5, 0.5, 0.5), (0.8, 0.76, 0.68), (0.42, 0.3, 0.22), (0.66, 0.6, 0.52)]
_PALE_BACKDROPS = [(0.95, 0.95, 0.94), (0.93, 0.92, 0.9), (0.96, 0.95, 0.92), (0.92, 0.93, 0.94)]


@dataclasses.dataclass(frozen=True)
class Scene:
    """What to draw; sizes, colours and positions come from the image's generator."""

    kind: str  # one of KINDS
    glossy: bool = False  # specular highlights on the glaze
    pale: bool = False  # pale pot on a pale backdrop
    shadow: bool = False  # long cast shadow on the table
    busy: str | None = None  # one of BUSY, or None for a plain wall


def scene(kind, *variants):
    """Scene(kind) with `variants` among 'glossy', 'pale', 'shadow' and the BUSY styles."""
    unknown = set(variants) - {"glossy", "pale", "shadow", *BUSY}
    assert kind in KINDS and not unknown, (kind, unknown)
    busy = [v for v in variants if v in BUSY]
    return Scene(kind, "glossy" in variants, "pale" in variants, "shadow" in variants, busy[0] if busy else None)


def random_scene(rng):
    """A training scene: every failure mode appears often, alone or combined."""
    return Scene(kind=KINDS[rng.integers(3)], glossy=rng.random() < 0.35, pale=rng.random() < 0.25,
                 shadow=rng.random() < 0.35, busy=BUSY[rng.integers(3)] if rng.random() < 0.45 else None)


# ---------------------------------------------------------------------------------------------- drawing


def _pick(rng, palette):
    return np.array(palette[rng.integers(len(palette))], dtype=np.float32)


def _ellipse(X, Y, cx, cy, rx, ry):
    return ((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2 <= 1.0


def _blur(alpha, radius):
    """Gaussian-blur a [0, 1] map through Pillow (8-bit is plenty for shadows and highlights)."""
    image = Image.fromarray(np.round(alpha * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(image, dtype=np.float32) / 255


def _paint(canvas, where, color, alpha=1.0):
    """Blend `color` into `canvas` where `where` (bool or [0, 1] map), in place."""
    weight = (np.asarray(where, dtype=np.float32) * alpha)[..., None]
    canvas *= 1 - weight
    canvas += weight * color


def _backdrop(scene, rng, X, Y):
    """Wall above the horizon, table below (both slightly graded); returns (rgb, horizon y)."""
    h, w = X.shape
    horizon = rng.uniform(0.5, 0.66) * h
    if scene.pale:
        wall, table = _pick(rng, _PALE_BACKDROPS), _pick(rng, _PALE_BACKDROPS) * rng.uniform(0.95, 0.99)
    else:
        wall, table = _pick(rng, _WALLS), _pick(rng, _TABLES)
    shade = (1.0 - 0.12 * (Y / h - 0.5) ** 2 - 0.08 * (X / w - 0.5) ** 2)[..., None]
    rgb = np.where((Y < horizon)[..., None], wall * (0.96 + 0.06 * Y / h)[..., None],
                   table * (0.92 + 0.1 * (Y - horizon) / h)[..., None]) * shade
    rgb = rgb.astype(np.float32)
    if scene.busy:
        _BUSY_PAINTERS[scene.busy](rgb, rng, X, Y, horizon)
    return rgb, horizon


def _stripes(rgb, rng, X, Y, horizon):
    """Striped fabric hung behind the pot."""
    colors = [rng.uniform(0.15, 0.9, 3).astype(np.float32) for _ in range(3)]
    period = rng.uniform(14, 34) * SCALE
    slant = rng.choice([0.0, 0.5, -0.5])
    band = np.floor((X + slant * Y) / (period / 2)).astype(int) % 3
    for index, color in enumerate(colors):
        _paint(rgb, (band == index) & (Y < horizon), color)


def _shelves(rgb, rng, X, Y, horizon):
    """Studio shelves with books, boxes and other pots on them."""
    for top in np.arange(horizon - rng.uniform(8, 20) * SCALE, 6 * SCALE, -rng.uniform(34, 48) * SCALE):
        wood = rng.uniform(0.3, 0.65) * np.array([1.0, 0.78, 0.58], dtype=np.float32)
        x = rng.uniform(-10, 10) * SCALE
        while x < X.shape[1]:
            height, width = rng.uniform(10, 26) * SCALE, rng.uniform(4, 20) * SCALE
            color = rng.uniform(0.1, 0.9, 3).astype(np.float32)
            if rng.random() < 0.3:  # a small jar
                _paint(rgb, _ellipse(X, Y, x + width / 2, top - height / 2, width / 2 + SCALE, height / 2), color)
            else:
                _paint(rgb, (X >= x) & (X < x + width) & (Y >= top - height) & (Y < top), color)
            x += width + rng.uniform(0, 14) * SCALE
        _paint(rgb, (Y >= top) & (Y < top + 5 * SCALE), wood)
        _paint(rgb, (Y >= top + 5 * SCALE) & (Y < top + 8 * SCALE), np.zeros(3, np.float32), 0.35)


def _blobs(rgb, rng, X, Y, horizon):
    """Clutter: coloured shapes all over wall and table."""
    for _ in range(rng.integers(14, 28)):
        cx, cy = rng.uniform(0, X.shape[1]), rng.uniform(0, X.shape[0])
        rx, ry = rng.uniform(5, 24, 2) * SCALE
        _paint(rgb, _ellipse(X, Y, cx, cy, rx, ry), rng.uniform(0.1, 0.95, 3).astype(np.float32))


_BUSY_PAINTERS = {"stripes": _stripes, "shelves": _shelves, "blobs": _blobs}


def _cosine_profile(knots):
    """Radius as a function of t (0 = rim, 1 = foot) through (t, r) knots, flat at each knot."""
    ts, rs = np.array(knots, dtype=np.float32).T

    def radius(t):
        i = np.clip(np.searchsorted(ts, t, side="right") - 1, 0, len(ts) - 2)
        f = np.clip((t - ts[i]) / (ts[i + 1] - ts[i]), 0, 1)
        return rs[i] + (rs[i + 1] - rs[i]) * (1 - np.cos(np.pi * f)) / 2

    return radius


def _geometry(kind, rng, w, h):
    """(height, radius function, wall thickness) of a pot of `kind`, in drawing pixels."""
    if kind == "bowl":
        height, rim = rng.uniform(0.2, 0.3) * h, rng.uniform(0.2, 0.29) * w
        foot = rim * rng.uniform(0.38, 0.5)
        return height, lambda t: foot + (rim - foot) * np.sqrt(np.clip(1 - t ** 2, 0, 1)), 0.06 * rim
    if kind == "vase":
        height, belly = rng.uniform(0.5, 0.66) * h, rng.uniform(0.1, 0.15) * w
        neck = belly * rng.uniform(0.35, 0.55)
        knots = [(0, neck * rng.uniform(1.15, 1.45)), (rng.uniform(0.12, 0.2), neck),
                 (rng.uniform(0.5, 0.65), belly), (1, belly * rng.uniform(0.5, 0.7))]
        return height, _cosine_profile(knots), 0.12 * neck
    height, rim = rng.uniform(0.28, 0.38) * h, rng.uniform(0.09, 0.12) * w
    knots = [(0, rim), (rng.uniform(0.4, 0.7), rim * rng.uniform(1.0, 1.08)), (1, rim * rng.uniform(0.8, 0.9))]
    return height, _cosine_profile(knots), 0.08 * rim


def _pot(scene, rng, X, Y, horizon):
    """Draw the pot; returns (its rgb, valid where it covers; coverage bool; base y; light side)."""
    h, w = X.shape
    height, radius, wall = _geometry(scene.kind, rng, w, h)
    tilt = rng.uniform(0.18, 0.3)  # minor/major axis of the rim ellipse: how far above we look from
    base = rng.uniform(horizon + 0.1 * h, 0.92 * h - tilt * radius(1.0))
    height = min(height, base - 0.05 * h - tilt * radius(0.0))
    top, cx = base - height, w / 2 + rng.uniform(-0.12, 0.12) * w
    light = rng.choice([-1.0, 1.0])  # the side the light comes from
    glaze = _pick(rng, _PALE_GLAZES if scene.pale else _GLAZES)
    clay = np.array([0.88, 0.85, 0.8], np.float32) if scene.pale else _pick(rng, _CLAYS)

    t = np.clip((Y - top) / height, 0, 1)
    r = radius(t)
    u = np.clip((X - cx) / r, -1, 1)
    lambert = np.maximum(0, 0.6 * light * u + 0.8 * np.sqrt(1 - u ** 2))
    rings = 1 + 0.025 * np.sin(2 * np.pi * Y / (rng.uniform(5, 9) * SCALE) + rng.uniform(0, 6.3))
    shade = ((0.3 + 0.7 * lambert) * rings)[..., None]
    foot_line = rng.uniform(0.9, 0.95)
    rgb = np.where((t > foot_line)[..., None], clay, glaze) * shade

    body = (np.abs(X - cx) <= r) & (Y >= top) & (Y <= base)
    body |= _ellipse(X, Y, cx, base, radius(1.0), tilt * radius(1.0))
    covered = body.copy()
    if scene.kind == "cup":  # a ring handle; its hole shows the backdrop
        side, mid = rng.choice([-1.0, 1.0]), top + 0.45 * height
        ry = 0.3 * height
        rx, thick = 0.65 * ry, 0.18 * ry
        hx = cx + side * (radius(0.45) + 0.35 * rx)
        ring = _ellipse(X, Y, hx, mid, rx, ry) & ~_ellipse(X, Y, hx, mid, rx - thick, ry - thick)
        ring &= ~body
        along = np.clip(light * (X - hx) / rx, -1, 1)
        _paint(rgb, ring, glaze * (0.45 + 0.4 * (along[..., None] + 1) / 2))
        covered |= ring
    r0 = radius(0.0)
    rim = _ellipse(X, Y, cx, top, r0, tilt * r0)
    opening = _ellipse(X, Y, cx, top, r0 - wall, tilt * (r0 - wall))
    depth = 0.15 if scene.kind == "vase" else 0.5 if scene.kind == "bowl" else 0.35
    inside = depth + 0.2 * np.clip(-light * (X - cx) / r0, -1, 1)
    _paint(rgb, rim, glaze * 0.9)
    _paint(rgb, opening, glaze * inside[..., None])
    covered |= rim
    if rng.random() < 0.5:  # speckled stoneware
        _paint(rgb, covered & (rng.random(X.shape) < 0.004), clay * 0.35)
    if scene.glossy:
        _paint(rgb, covered, np.float32([1.0, 1.0, 0.98]), _highlights(rng, X, Y, cx, top, height, radius, light))
    return rgb, covered, base, light


def _highlights(rng, X, Y, cx, top, height, radius, light):
    """Near-white reflections of a window on the glaze, on the lit side of the body and at the lip."""
    t = rng.uniform(0.3, 0.5)
    y = top + t * height
    x = cx + light * rng.uniform(0.35, 0.55) * radius(t)
    spots = _ellipse(X, Y, x, y, 0.08 * radius(t), rng.uniform(0.15, 0.25) * height).astype(np.float32)
    x2 = x - light * 0.22 * radius(t)
    spots = np.maximum(spots, _ellipse(X, Y, x2, y + 0.05 * height, 0.04 * radius(t), 0.09 * height))
    r0 = radius(0.0)
    spots = np.maximum(spots, _ellipse(X, Y, cx + light * 0.5 * r0, top + 0.02 * height, 0.1 * r0, 2.2 * SCALE))
    return np.clip(_blur(spots, 1.2 * SCALE) * 1.15, 0, 0.97)


def _cast_shadow(covered, base, light, rng, long):
    """Shadow on the table: the silhouette projected away from the light, blurred; never pot."""
    reach = rng.uniform(0.8, 1.3) if long else 0.12
    rise = rng.uniform(0.22, 0.35) if long else 0.05
    dx, dy = -light * reach, -rise  # table offset per pixel of height above the base
    # Inverse map for Pillow: silhouette point (x, y) lands at (x + dx*z, base + dy*z), z = base - y.
    coeffs = (1, -dx / dy, dx * base / dy, 0, -1 / dy, base * (1 + 1 / dy))
    silhouette = Image.fromarray(covered.astype(np.uint8) * 255)
    projected = silhouette.transform(silhouette.size, Image.AFFINE, coeffs, resample=Image.BILINEAR)
    alpha = _blur(np.asarray(projected, np.float32) / 255, (3 if long else 2) * SCALE)
    return alpha * (rng.uniform(0.45, 0.6) if long else 0.35)


def render(scene, rng, size=TRAIN_SIZE):
    """Draw `scene` at `size` (width, height); returns (RGB uint8 (H, W, 3), mask bool (H, W))."""
    width, height = size
    Y, X = np.mgrid[0:height * SCALE, 0:width * SCALE].astype(np.float32) + 0.5
    rgb, horizon = _backdrop(scene, rng, X, Y)
    pot, covered, base, light = _pot(scene, rng, X, Y, horizon)
    rgb *= 1 - _cast_shadow(covered, base, light, rng, long=scene.shadow)[..., None]
    rgb = np.where(covered[..., None], pot, rgb)
    rgb = rgb.reshape(height, SCALE, width, SCALE, 3).mean(axis=(1, 3))
    coverage = covered.reshape(height, SCALE, width, SCALE).mean(axis=(1, 3))
    rgb += rng.normal(0, 0.012, rgb.shape)
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8), coverage >= 0.5


def render_indexed(scene, seed, stream, index, size=TRAIN_SIZE):
    """render() with the image's own generator, so one image never depends on another."""
    return render(scene, np.random.default_rng([seed, stream, index]), size)


# ---------------------------------------------------------------------------------------------- writing


def polygons(mask):
    """YOLO-seg polygons ((N, 2) arrays of normalised x, y) whose union rasterises back to `mask`.

    A hole (the inside of a cup handle) is spliced into its outer contour through a zero-width cut at
    the closest pair of points, since a label line is one polygon and the union of lines cannot subtract.
    """
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    result = []
    for index, contour in enumerate(contours):
        if hierarchy[0][index][3] != -1:
            continue  # a hole: spliced into its parent below
        outline = contour[:, 0, :]
        child = hierarchy[0][index][2]
        while child != -1:
            hole = contours[child][:, 0, :]
            distances = ((outline[:, None, :] - hole[None, :, :]) ** 2).sum(-1)
            i, j = np.unravel_index(distances.argmin(), distances.shape)
            outline = np.concatenate([outline[:i + 1], hole[j:], hole[:j + 1], outline[i:]])
            child = hierarchy[0][child][0]
        if len(outline) >= 3:
            result.append(outline / [mask.shape[1], mask.shape[0]])
    return result


def write_labels(path, mask, cls=0):
    """One YOLO-seg line per polygon. Vertices are pixel centres, where a rasteriser's inside/outside
    test is decided by the last bits, so coordinates are written at full (round-trip) precision."""
    lines = [" ".join([str(cls)] + [repr(float(v)) for v in polygon.ravel()]) for polygon in polygons(mask)]
    path.write_text("".join(line + "\n" for line in lines))


def _save(rgb, mask, image_path, mask_path=None):
    image_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(image_path, quality=JPEG_QUALITY)
    if mask_path is not None:
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(mask_path)


# The held-out test split: (kind, variants, ground truth as "mask" PNG or YOLO "labels").
TEST_SPLIT = [
    ("bowl", (), "mask"), ("vase", (), "labels"), ("cup", (), "mask"), ("bowl", (), "mask"),
    ("vase", (), "mask"), ("cup", (), "mask"), ("bowl", ("glossy",), "mask"), ("vase", ("glossy",), "mask"),
    ("cup", ("glossy",), "mask"), ("vase", ("glossy", "stripes"), "mask"), ("bowl", ("pale",), "labels"),
    ("vase", ("pale",), "mask"), ("cup", ("pale",), "mask"), ("bowl", ("shadow",), "mask"),
    ("vase", ("shadow",), "labels"), ("cup", ("shadow", "glossy"), "mask"), ("bowl", ("stripes",), "mask"),
    ("vase", ("shelves",), "mask"), ("cup", ("blobs",), "mask"), ("bowl", ("shelves",), "labels"),
    ("vase", ("blobs",), "mask"), ("cup", ("pale", "shadow"), "mask"), ("bowl", ("glossy", "pale"), "mask"),
    ("vase", ("stripes", "shadow"), "mask"),
]

# CropRun rows: (kind, variants, source.type, annotation kind or None, notes). The notes are what a
# reporter wrote; the taxonomy's regexes turn them into failure classes (the comment says which).
FLAGGED_ROWS = [
    ("bowl", ("glossy", "pale"), "human", "crop_annotation",
     "Glaze reflection punched holes in the bowl; white on white backdrop"),  # glossy, white
    ("vase", ("glossy",), "human", "crop_annotation",
     "Shiny celadon vase, the bright spot on the shoulder came out as a hole in the crop"),  # glossy
    ("cup", ("glossy",), "human", "hand_label",
     "Handle missing from the crop and the glossy glaze left gaps"),  # glossy, thin
    ("vase", ("glossy",), "human", "crop_annotation", "Reflections on the glazed body treated as background"),
    ("bowl", ("glossy", "shadow"), "human", "crop_annotation",
     "Strong highlight on the rim; the shadow beside the bowl was kept in the cut-out"),  # glossy, shadow
    ("vase", ("pale",), "human", "hand_label", "White porcelain vase against a white background, edges lost"),
    ("bowl", ("pale",), "human", "crop_annotation", "pale bowl on a cream tablecloth - rim disappeared"),
    ("cup", ("pale",), "human", "crop_annotation",
     "Low contrast: cream mug on white paper, handle cut off"),  # white, thin
    ("bowl", ("pale",), "human", "hand_label", "white on white again, customer says the crop eats into the foot"),
    ("vase", ("shadow",), "human", "crop_annotation", "Shadow on the table included in the mask"),
    ("cup", ("shadow",), "human", "crop_annotation", "The cast shadow got kept as part of the mug"),
    ("bowl", ("shadow",), "human", "hand_label", "drop shadow kept, looks like a dark blob stuck to the bowl"),
    ("vase", ("shadow", "shelves"), "human", "crop_annotation",
     "Shadow and a shelf edge both leaked into the cutout"),  # shadow, busy
    ("vase", ("stripes",), "human", "crop_annotation",
     "Striped fabric behind the vase – the pattern bled into the mask"),  # busy
    ("bowl", ("shelves",), "human", "hand_label", "Studio shelves in the back, bits of them in the crop"),
    ("cup", ("blobs",), "human", "crop_annotation",
     "busy background with other pots; crop grabbed some background objects"),  # busy
    ("vase", ("blobs",), "human", "crop_annotation", "Clutter around the piece ended up in the cut-out"),
    ("bowl", ("glossy", "stripes"), "human", "hand_label",
     "Glossy bowl on a patterned cloth: both the reflection and the pattern show in the crop"),  # glossy, busy
    ("cup", (), "human", "crop_annotation", "Handle missing from the crop"),  # thin
    ("cup", (), "human", "hand_label", "mug handle hole filled in instead of transparent"),  # thin
    ("cup", (), "human", "crop_annotation",
     "**Thin handle** cut off | customer said <b>again</b> & wants a redo"),  # thin; tests escaping
    ("cup", ("shelves",), "human", "crop_annotation",
     "handle gone, shelf behind it visible through the ring"),  # thin, busy
    ("vase", (), "human", "crop_annotation", "Crop looks a bit soft at the rim, please double-check"),  # none
    ("bowl", (), "human", "hand_label", "Customer complaint #2: foot ring cut off at the bottom edge"),  # none
    # Excluded from the flagged corpus: no annotation, or not reported by a person.
    ("cup", ("glossy",), "human", None, "Handle reflection looks odd, not annotated yet"),
    ("vase", (), "human", None, "Customer says the crop is too tight"),
    ("bowl", ("shadow",), "human", None, "shadow again??"),
    ("bowl", (), "automatic", "crop_annotation", "auto-flag: mask area ratio 0.18 below 0.25"),
    ("vase", ("pale",), "automatic", None, None),
    ("cup", (), "automatic", "hand_label", "auto-flag: low confidence (0.41)"),
]
SOURCE = {"backend": "rembg", "deployment": "piece_image_crop_service", "version": "2.0.50-u2net"}


def write_snapshot(root, seed):
    """Write the snapshot contract of eval/inputs/snapshot.py under `root` (which must not exist yet).

    Returns what the gate will evaluate, as (corpus, image path relative to `root`, ground-truth mask).
    """
    root = pathlib.Path(root)
    evaluated = []
    root.mkdir(parents=True)
    (root / "snapshot.yaml").write_text(
        "format: pottery-gate-snapshot/v1\n"
        'version: "demo-v1"\n'
        f'description: "Synthetic demo data: drawn pottery photos with exact masks '
        f'(demo/generate_snapshot.py, seed {seed}). Not customer photos."\n')
    for number, (kind, variants, truth) in enumerate(TEST_SPLIT, start=1):
        stem = "-".join([f"t{number:02d}", kind, *variants])
        size = PHOTO_SIZES[(number - 1) % len(PHOTO_SIZES)]
        rgb, mask = render_indexed(scene(kind, *variants), seed, TEST_STREAM, number, size)
        test = root / "test"
        _save(rgb, mask, test / "images" / f"{stem}.jpg",
              test / "masks" / f"{stem}.png" if truth == "mask" else None)
        if truth == "labels":
            (test / "labels").mkdir(exist_ok=True)
            write_labels(test / "labels" / f"{stem}.txt", mask)
        evaluated.append(("test", f"test/images/{stem}.jpg", mask))

    # Ids look like a real export's: sparse, and not in the order of the table above.
    rng = np.random.default_rng([seed, FLAGGED_STREAM])
    numbers = np.sort(rng.choice(np.arange(1, 400), size=len(FLAGGED_ROWS), replace=False))
    lines = []
    for number, index in zip(numbers, rng.permutation(len(FLAGGED_ROWS))):
        kind, variants, source_type, annotation, notes = FLAGGED_ROWS[index]
        row_id = f"cr-{number:04d}"
        size = PHOTO_SIZES[int(index) % len(PHOTO_SIZES)]
        rgb, mask = render_indexed(scene(kind, *variants), seed, FLAGGED_STREAM, int(index), size)
        flagged = root / "flagged"
        _save(rgb, mask, flagged / "images" / f"{row_id}.jpg",
              flagged / "masks" / f"{row_id}.png" if annotation else None)
        row = {"id": row_id, "image": f"images/{row_id}.jpg", "source": {"type": source_type, **SOURCE},
               "notes": notes,
               "annotation": {"kind": annotation, "mask": f"masks/{row_id}.png"} if annotation else None}
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
        if source_type == "human" and annotation:
            evaluated.append(("flagged", f"flagged/images/{row_id}.jpg", mask))
    (root / "flagged" / "croprun.jsonl").write_text("".join(lines), encoding="utf-8")
    return evaluated


def write_training_set(root, seed, n_train=64, n_val=16):
    """Write an ultralytics YOLO-seg dataset (images/, labels/, data.yaml) of random scenes under `root`."""
    root = pathlib.Path(root)
    for split, start, count in (("train", 0, n_train), ("val", n_train, n_val)):
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for index in range(start, start + count):
            rng = np.random.default_rng([seed, TRAIN_STREAM, index])
            rgb, mask = render(random_scene(rng), rng)
            _save(rgb, mask, root / "images" / split / f"{index:03d}.jpg")
            write_labels(root / "labels" / split / f"{index:03d}.txt", mask)
    data = root / "data.yaml"
    data.write_text(f"path: {json.dumps(str(root.resolve()))}\ntrain: images/train\nval: images/val\n"
                    "names:\n  0: pot\n")
    return data
