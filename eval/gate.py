"""The evaluation itself: load -> predict -> score -> decide. Pure of output I/O (see eval.report.render)."""

import concurrent.futures
import dataclasses
import os

from eval import roles, timings
from eval.decision.decide import decide
from eval.accumulator import merged
from eval.decision.intervals import with_intervals
from eval.decision.work_order import work_orders
from eval.errors import GateInputError
from eval.inputs import images
from eval.inputs.snapshot import FLAGGED, TEST
from eval.report import gallery as gallery_lib
from eval.scoring.class_audit import audit_classes
from eval.roles import BASELINE, CANDIDATE
from eval.scoring.scores import aggregate, image_score


@dataclasses.dataclass(frozen=True)
class NotEvaluated:
    corpus: str
    image_id: str
    reason: str


@dataclasses.dataclass(frozen=True)
class GateResult:
    provenance: dict
    scores: tuple  # ImageScore, sorted by (corpus, image_id, backend)
    aggregates: tuple
    not_evaluated: tuple
    exclusions: tuple
    decision: object  # eval.decision.decide.Decision
    gallery_best: tuple
    gallery_worst: tuple
    example_values: bool
    class_audit: tuple = ()  # eval.scoring.class_audit.ClassAudit per failure class, for #413's owners
    strips: tuple = ()  # ((corpus, image_id), JPEG bytes) per scored image, for report.html; sorted
    work_orders: tuple = ()  # eval.decision.work_order.WorkOrder per undecided criterion on the flagged corpus


def _decode(item):
    if item.problem:
        raise GateInputError(item.image_path, item.problem)
    photo = images.load_rgb(item.image_path)
    return photo, images.load_truth(item.truth_path, item.truth_format, images.image_size(photo))


def _key(item):
    """Image ids are unique within a corpus only; a shard may mix corpora."""
    return item.corpus, item.image_id


def _try_decode(item):
    try:
        return _decode(item)
    except GateInputError as err:
        return err


def _predict(backend, photos, keys):
    """Masks per key; a batch that fails is retried image by image so one bad image cannot sink the rest."""
    try:
        return dict(zip(keys, backend.predict(photos))), {}
    except Exception:  # any backend failure becomes a reported, not-evaluated image
        masks, errors = {}, {}
        for key, photo in zip(keys, photos):
            try:
                masks[key] = backend.predict([photo])[0]
            except Exception as err:
                errors[key] = f"{backend.name} failed: {type(err).__name__}: {err}"
        return masks, errors


# What a batch may hold in photo pixels, whatever --batch_size says: two 12-Mpixel phone photos (rembg runs a
# batch's photos side by side, one per core). Memory in flight is bounded by pixels, not by photo count: every
# stage holds a few arrays per photo at its full resolution (RGB, BGR, masks, rembg's cutout).
BATCH_PIXELS = 25_000_000


def _oriented_size(item):
    return None if item.problem else images.oriented_size(item.image_path)


def _batching_order(size):
    """Sort key (from a photo's oriented size, None if unreadable) putting photos of one aspect ratio side by side.

    The candidate runs a batch as one forward pass per letterboxed shape (its masks do not depend on the
    batch), so batches of like-shaped photos keep batching fast. The order changes no result: scores,
    failures and the gallery are ordered by image id when shards are merged.
    """
    return (0, size[1] / size[0], size) if size else (1, 0.0, (0, 0))


def _cut(sized, batch_size, max_pixels):
    """(size, item) pairs cut in order into batches of at most `batch_size` items and `max_pixels` pixels."""
    out, batch, pixels = [], [], 0
    for size, item in sized:
        width, height = size or (0, 0)
        if batch and (len(batch) == batch_size or pixels + width * height > max_pixels):
            out.append(batch)
            batch, pixels = [], 0
        batch.append(item)
        pixels += width * height
    return out + [batch] if batch else out


def batches(items, batch_size, max_pixels=BATCH_PIXELS):
    """The batches a run infers `items` in: per corpus (test, then flagged), like-shaped photos together, each
    at most `batch_size` photos and `max_pixels` pixels (a larger photo is a batch of its own); sizes come from
    the photos' headers, read once. A single process and the Modal app's shards infer these same batches."""
    out = []
    for corpus in (TEST, FLAGGED):
        sized = sorted(((_oriented_size(i), i) for i in items if i.corpus == corpus),
                       key=lambda pair: _batching_order(pair[0]))
        out += _cut(sized, batch_size, max_pixels)
    return out


@dataclasses.dataclass
class ShardResult:
    """What scoring a subset of the images yields: an accumulator (eval.accumulator) of the per-image
    scores, the images not evaluated and the gallery picks. Shards merge in any grouping to the same
    `result`."""

    gallery: gallery_lib.GalleryPicker
    scores: list = dataclasses.field(default_factory=list)
    not_evaluated: list = dataclasses.field(default_factory=list)
    strips: list = dataclasses.field(default_factory=list)  # ((corpus, image_id), JPEG bytes) for report.html

    @classmethod
    def empty(cls, gallery_size):
        return cls(gallery_lib.GalleryPicker(gallery_size))

    def update(self, scores=(), missing=(), case=None, strip=None):
        """Add one image's scores (one per backend), failures, its gallery case when the picker wanted it and
        its report.html strip."""
        self.scores.extend(scores)
        self.not_evaluated.extend(missing)
        if case is not None:
            self.gallery.update(case)
        if strip is not None:
            self.strips.append(strip)

    def merge(self, other):
        self.scores.extend(other.scores)
        self.not_evaluated.extend(other.not_evaluated)
        self.gallery.merge(other.gallery)
        self.strips.extend(other.strips)
        return self

    def result(self):
        """(scores sorted by (corpus, image_id, backend), NotEvaluated sorted and one per image with every
        reason, (best, worst) gallery picks, strips sorted by (corpus, image_id))."""
        reasons = {}
        for m in self.not_evaluated:
            key = (m.corpus, m.image_id)  # one image may fail in several backends: report it once
            reasons[key] = f"{reasons[key]}; {m.reason}" if key in reasons else m.reason
        not_evaluated = tuple(NotEvaluated(c, i, r) for (c, i), r in sorted(reasons.items()))
        scores = tuple(sorted(self.scores, key=lambda s: (s.corpus, s.image_id, s.source_backend)))
        return scores, not_evaluated, self.gallery.result(), tuple(sorted(self.strips))


def _gallery_case(picker, item, scored, photo, truth, masks):
    """The image's gallery case when `picker` wants it (thumbnails are made only then), else None."""
    delta = gallery_lib.iou_delta(scored[BASELINE].mask_iou, scored[CANDIDATE].mask_iou)
    if not picker.wants(delta, item.corpus, item.image_id):
        return None
    return gallery_lib.make_case(scored, photo, truth, masks)


def score_items(items, criteria, backends, batch_size=8, gallery_size=3, progress=None, label="", meter=None):
    """Run every backend ({role name: Backend}, eval.roles; rembg and the candidate at least) on `items` (one
    corpus or a shard) and score every prediction; a ShardResult.

    An image is scored only when every backend predicted it, so all backends are compared on the same images.
    A `meter` (eval.timings.Meter) times decoding and scoring (the backends time themselves: eval.backends.timed).
    """
    names = tuple(roles.ordered(backends))
    shard = ShardResult.empty(gallery_size)
    if progress:
        progress.start(label, len(items))
    # Decoding (Pillow releases the GIL) overlaps across cores; inference stays in this thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for batch in batches(items, batch_size):
            decoded = {}
            with timings.stage(meter, "decode"):
                outcomes = list(pool.map(_try_decode, batch))  # map keeps the input order
            for item, outcome in zip(batch, outcomes):
                if isinstance(outcome, GateInputError):
                    shard.update(missing=[NotEvaluated(item.corpus, item.image_id, str(outcome))])
                else:
                    decoded[_key(item)] = outcome
            keys = list(decoded)
            photos = [decoded[k][0] for k in keys]
            predictions = {}
            for name in names:
                masks, errors = _predict(backends[name], photos, keys)
                predictions[name] = masks
                shard.update(missing=[NotEvaluated(*key, reason) for key, reason in errors.items()])
            with timings.stage(meter, "scoring"):
                for item in batch:
                    key = _key(item)
                    if not all(key in predictions[b] for b in names):
                        continue
                    photo, truth = decoded[key]
                    classes = criteria.classify_rows(item.rows) if item.corpus == FLAGGED else ()
                    scored = {b: image_score(b, item.corpus, item.image_id, classes, truth, predictions[b][key],
                                             criteria.iou_pass_threshold) for b in names}
                    masks = {b: predictions[b][key] for b in names}
                    strip = gallery_lib.make_strip(photo, truth, list(masks.values()))
                    shard.update(scored.values(), case=_gallery_case(shard.gallery, item, scored, photo, truth, masks),
                                 strip=(key, strip))
            if progress:
                progress.advance(len(batch))
    return shard


def combine(shards, snapshot, criteria, provenance, gallery_size=3, meter=None):
    """Merge the shards' results, aggregate and decide; independent of how items were sharded. A `meter` times
    the intervals."""
    scores, not_evaluated, (best, worst), strips = merged(ShardResult.empty(gallery_size), shards).result()
    with timings.stage(meter, "intervals"):
        aggregates = with_intervals(aggregate(scores), scores, criteria.decision_rule.level,
                                    [c.measure for c in criteria.criteria])
    decision = decide(criteria, aggregates, len(not_evaluated))
    flagged = [row for i in snapshot.items if i.corpus == FLAGGED for row in i.rows]
    return GateResult(provenance, scores, aggregates, not_evaluated, snapshot.exclusions, decision,
                      best, worst, criteria.example_values, audit_classes(criteria, flagged), strips,
                      work_orders(decision, criteria, snapshot.unlabelled))


def evaluate(snapshot, criteria, backends, provenance, batch_size=8, gallery_size=3, progress=None, meter=None):
    """Run every backend ({role name: Backend}) on every eligible image of both corpora and decide; a GateResult."""
    shards = [score_items([i for i in snapshot.items if i.corpus == corpus], criteria, backends, batch_size,
                          gallery_size, progress, corpus, meter)
              for corpus in (TEST, FLAGGED)]
    return combine(shards, snapshot, criteria, provenance, gallery_size, meter)
