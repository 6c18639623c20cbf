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

from eval.scoring.scores import round_metric

THUMB_HEIGHT = 160
_COLORS = {"tp": (46, 204, 64), "fp": (255, 65, 54), "fn": (0, 116, 217)}


def iou_delta(baseline_iou, candidate_iou):
    """Candidate minus rembg IoU, rounded like every metric so ties rank the same everywhere."""
    return round_metric(candidate_iou - baseline_iou)


@dataclasses.dataclass(frozen=True)
class GalleryCase:
    corpus: str
    image_id: str
    baseline_iou: float
    candidate_iou: float
    thumbnails: tuple  # (photo, truth, baseline, candidate) as small arrays

    @property
    def delta(self):
        return iou_delta(self.baseline_iou, self.candidate_iou)

    def file_name(self, kind, rank):
        """A safe, unique file name: user ids can hold any character."""
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", self.image_id)[:40]
        tag = hashlib.sha256(f"{self.corpus}/{self.image_id}".encode()).hexdigest()[:8]
        return f"{kind}-{rank:02d}-{self.corpus}-{slug}-{tag}.png"


def _thumb(array, height=THUMB_HEIGHT):
    img = Image.fromarray(array)
    width = max(1, round(img.width * height / img.height))
    return np.asarray(img.resize((width, height), Image.Resampling.NEAREST if array.dtype == bool
                                 else Image.Resampling.BILINEAR))


def make_case(corpus, image_id, baseline_iou, candidate_iou, image, truth, baseline_mask, candidate_mask):
    thumbs = (_thumb(image), _thumb(truth), _thumb(baseline_mask), _thumb(candidate_mask))
    return GalleryCase(corpus, image_id, baseline_iou, candidate_iou, thumbs)


class GalleryPicker:
    """Keeps the k largest improvements (candidate - rembg IoU > 0) and the k worst regressions (< 0)."""

    def __init__(self, k):
        self.k = k
        self._best, self._worst = [], []

    def wants(self, delta, corpus, image_id):
        """Whether a case with this delta would enter the gallery (thumbnails are only made if so)."""
        if delta > 0:
            return len(self._best) < self.k or (-delta, corpus, image_id) < self._best_key(self._best[-1])
        if delta < 0:
            return len(self._worst) < self.k or (delta, corpus, image_id) < self._worst_key(self._worst[-1])
        return False

    @classmethod
    def from_cases(cls, cases, k):
        """The picks among already-made cases (shard results being merged)."""
        picker = cls(k)
        for case in cases:
            if picker.wants(case.delta, case.corpus, case.image_id):
                picker.add(case)
        return picker

    @staticmethod
    def _best_key(case):
        return -case.delta, case.corpus, case.image_id

    @staticmethod
    def _worst_key(case):
        return case.delta, case.corpus, case.image_id

    def add(self, case):
        if case.delta > 0:
            self._best = sorted([*self._best, case], key=self._best_key)[:self.k]
        elif case.delta < 0:
            self._worst = sorted([*self._worst, case], key=self._worst_key)[:self.k]

    @property
    def best(self):
        return tuple(self._best)

    @property
    def worst(self):
        return tuple(self._worst)


def _overlay(photo, prediction, truth):
    """Photo dimmed, with true positives green, false positives red and misses blue."""
    out = photo.astype(np.float32) * 0.45
    for name, region in (("tp", prediction & truth), ("fp", prediction & ~truth), ("fn", ~prediction & truth)):
        out[region] = out[region] * 0.3 + np.array(_COLORS[name], np.float32) * 0.7
    return out.astype(np.uint8)


def render_panel(case):
    """PNG bytes: photo | ground truth | rembg | candidate, with captions."""
    photo, truth, baseline, candidate = case.thumbnails
    truth_tile = np.where(truth[..., None], photo, (photo * 0.2).astype(np.uint8))
    tiles = [(photo, "photo"), (truth_tile, "ground truth"),
             (_overlay(photo, baseline, truth), f"rembg IoU {case.baseline_iou:.3f}"),
             (_overlay(photo, candidate, truth), f"candidate IoU {case.candidate_iou:.3f}")]
    caption, gap = 18, 4
    width = sum(t.shape[1] for t, _ in tiles) + gap * (len(tiles) + 1)
    panel = Image.new("RGB", (width, THUMB_HEIGHT + caption + 2 * gap), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    font = ImageFont.load_default()
    x = gap
    for tile, label in tiles:
        draw.text((x, gap), label, fill=(0, 0, 0), font=font)
        panel.paste(Image.fromarray(tile), (x, gap + caption))
        x += tile.shape[1] + gap
    buffer = io.BytesIO()
    panel.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
