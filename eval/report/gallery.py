"""Best-improvement and worst-regression cases, picked while streaming and drawn as PNG panels.

Only the current top-k and bottom-k cases are kept (as small thumbnails), so memory does not grow with
the corpus. Ties break on (corpus, image_id) so the picks are deterministic.
"""

import dataclasses
import hashlib
import io
import re

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from eval import roles
from eval.roles import BASELINE, CANDIDATE
from eval.scoring.scores import round_metric

THUMB_HEIGHT = 256  # panel tiles are at least this high, whatever the photo's size
STRIP_HEIGHT = 40  # report.html's per-image strips: small, so 2,000 of them stay a page one can open
STRIP_QUALITY = 70  # JPEG: a strip is a photo; PNG would be several times larger
_COLORS = {"tp": (46, 204, 64), "fp": (255, 65, 54), "fn": (0, 116, 217)}
_LEGEND = (("tp", "correct foreground"), ("fp", "false foreground"), ("fn", "missed foreground"))
# The smallest candidate - rembg IoU gain the gallery calls an improvement: below it a gain is a few
# boundary pixels, and a candidate worse everywhere would lead its report with "improvements" of +0.02.
MIN_IMPROVEMENT = 0.05


def iou_delta(baseline_iou, candidate_iou):
    """Candidate minus rembg IoU, rounded like every metric so ties rank the same everywhere."""
    return round_metric(candidate_iou - baseline_iou)


@dataclasses.dataclass(frozen=True)
class GalleryCase:
    corpus: str
    image_id: str
    baseline_iou: float
    candidate_iou: float
    baseline_boundary_iou: float
    candidate_boundary_iou: float
    thumbnails: tuple  # (photo, truth, baseline, candidate, *one per comparator) as small arrays
    comparators: tuple = ()  # (backend name, mask IoU, Boundary IoU) per comparator (eval.roles), in column order

    @property
    def delta(self):
        return iou_delta(self.baseline_iou, self.candidate_iou)

    def file_name(self, kind, rank):
        """A safe, unique file name: user ids can hold any character."""
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", self.image_id)[:40]
        tag = hashlib.sha256(f"{self.corpus}/{self.image_id}".encode()).hexdigest()[:8]
        return f"{kind}-{rank:02d}-{self.corpus}-{slug}-{tag}.png"


def _thumb(array, height=THUMB_HEIGHT, reducing_gap=None):
    img = Image.fromarray(array)
    width = max(1, round(img.width * height / img.height))
    return np.asarray(img.resize((width, height), Image.Resampling.NEAREST if array.dtype == bool
                                 else Image.Resampling.BILINEAR, reducing_gap=reducing_gap))


def make_case(scored, image, truth, masks):
    """A case from one image's ImageScores and masks, each by backend name, its photo and truth: rembg and the
    candidate, then every comparator (eval.roles.comparators) that scored it."""
    baseline, candidate = scored[BASELINE], scored[CANDIDATE]
    others = roles.comparators(scored)
    thumbnails = (image, truth, masks[BASELINE], masks[CANDIDATE], *(masks[name] for name in others))
    return GalleryCase(candidate.corpus, candidate.image_id, baseline.mask_iou, candidate.mask_iou,
                       baseline.boundary_iou, candidate.boundary_iou, tuple(_thumb(m) for m in thumbnails),
                       tuple((name, scored[name].mask_iou, scored[name].boundary_iou) for name in others))


class GalleryPicker:
    """Keeps the k largest improvements (candidate - rembg IoU >= MIN_IMPROVEMENT) and the k worst
    regressions (< 0).

    An accumulator (eval.accumulator): `update` with a case (`wants` first says whether making its
    thumbnails is worth it), `merge` another picker (a shard's), `result` the (best, worst) picks.
    """

    def __init__(self, k):
        self.k = k
        self._best, self._worst = [], []

    def wants(self, delta, corpus, image_id):
        """Whether a case with this delta would enter the gallery (thumbnails are only made if so)."""
        if delta >= MIN_IMPROVEMENT:
            return len(self._best) < self.k or (-delta, corpus, image_id) < self._best_key(self._best[-1])
        if delta < 0:
            return len(self._worst) < self.k or (delta, corpus, image_id) < self._worst_key(self._worst[-1])
        return False

    @staticmethod
    def _best_key(case):
        return -case.delta, case.corpus, case.image_id

    @staticmethod
    def _worst_key(case):
        return case.delta, case.corpus, case.image_id

    def update(self, case):
        if case.delta >= MIN_IMPROVEMENT:
            self._best = sorted([*self._best, case], key=self._best_key)[:self.k]
        elif case.delta < 0:
            self._worst = sorted([*self._worst, case], key=self._worst_key)[:self.k]

    def merge(self, other):
        """Add another picker's picks; the result is the same whatever the grouping (ties break on ids)."""
        for case in (*other._best, *other._worst):
            if self.wants(case.delta, case.corpus, case.image_id):
                self.update(case)
        return self

    def result(self):
        """(best improvements, worst regressions), each ordered best first."""
        return tuple(self._best), tuple(self._worst)


def make_strip(photo, truth, masks):
    """JPEG bytes of one image's strip for report.html: photo | ground truth | one overlay per mask (in the
    report's backend order), STRIP_HEIGHT pixels high. Encoding is deterministic: same pixels, same bytes."""
    # reducing_gap: a 12-Mpixel photo is box-reduced before the filter, ~10x faster at this size.
    photo_thumb, truth_thumb, *mask_thumbs = (_thumb(a, STRIP_HEIGHT, reducing_gap=2.0)
                                              for a in (photo, truth, *masks))
    tiles = [photo_thumb, np.where(truth_thumb[..., None], photo_thumb, (photo_thumb * 0.2).astype(np.uint8))]
    tiles += [_overlay(photo_thumb, mask, truth_thumb) for mask in mask_thumbs]
    buffer = io.BytesIO()
    Image.fromarray(np.concatenate(tiles, axis=1)).save(buffer, format="JPEG", quality=STRIP_QUALITY,
                                                        optimize=False, progressive=False)
    return buffer.getvalue()


def _overlay(photo, prediction, truth):
    """Photo dimmed, with true positives green, false positives red and misses blue."""
    out = photo.astype(np.float32) * 0.45
    for name, region in (("tp", prediction & truth), ("fp", prediction & ~truth), ("fn", ~prediction & truth)):
        out[region] = out[region] * 0.3 + np.array(_COLORS[name], np.float32) * 0.7
    return out.astype(np.uint8)


def _font(size):
    return ImageFont.load_default(size=size)  # Pillow's bundled font: the same pixels on every machine


def render_panel(case):
    """PNG bytes: photo | ground truth | rembg | candidate [| each comparator], each captioned with its IoUs, and
    the legend."""
    photo, truth, baseline, candidate, *others = case.thumbnails
    truth_tile = np.where(truth[..., None], photo, (photo * 0.2).astype(np.uint8))
    tiles = [(photo, ("photo", "")), (truth_tile, ("ground truth", "")),
             (_overlay(photo, baseline, truth),
              (f"rembg: IoU {case.baseline_iou:.3f}", f"Boundary IoU {case.baseline_boundary_iou:.3f}")),
             (_overlay(photo, candidate, truth),
              (f"candidate: IoU {case.candidate_iou:.3f}", f"Boundary IoU {case.candidate_boundary_iou:.3f}"))]
    tiles += [(_overlay(photo, mask, truth), (f"{name}: IoU {iou:.3f}", f"Boundary IoU {boundary:.3f}"))
              for mask, (name, iou, boundary) in zip(others, case.comparators)]
    font, line, gap = _font(13), 17, 6
    caption = 2 * line
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # A column is as wide as its tile or its caption, whichever is wider (portrait photos make narrow tiles).
    columns = [max(tile.shape[1], *(round(measure.textlength(label, font=font)) for label in labels))
               for tile, labels in tiles]
    legend = [(name, label, 18 + round(measure.textlength(label, font=font))) for name, label in _LEGEND]
    width = max(sum(columns) + gap * (len(tiles) + 1), sum(w for *_, w in legend) + 3 * gap * len(legend))
    legend_top = gap + caption + THUMB_HEIGHT + gap
    panel = Image.new("RGB", (width, legend_top + line + gap), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    x = gap
    for (tile, labels), column in zip(tiles, columns):
        for row, label in enumerate(labels):
            draw.text((x, gap + row * line), label, fill=(0, 0, 0), font=font)
        panel.paste(Image.fromarray(tile), (x, gap + caption))
        x += column + gap
    x = gap
    for name, label, label_width in legend:
        draw.rectangle((x, legend_top + 2, x + 12, legend_top + 14), fill=_COLORS[name])
        draw.text((x + 18, legend_top), label, fill=(0, 0, 0), font=font)
        x += label_width + 3 * gap
    buffer = io.BytesIO()
    panel.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
