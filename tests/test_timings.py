"""timings.json's numbers: stage wall and CPU times, per-image and batch-average latency, peaks, cache counts,
merging shards."""

import itertools
import sys

import numpy as np
import pytest

from eval.backends.base import Backend
from eval.backends.cached import CachedBackend
from eval.backends.timed import TimedBackend
from eval.timings import SCHEMA, Meter


class _Clock:
    """perf_counter stand-in: each measured call takes the next of `durations` seconds."""

    def __init__(self, durations):
        self._ticks = itertools.accumulate(itertools.chain.from_iterable((0.0, d) for d in durations))

    def __call__(self):
        return next(self._ticks)


class _OneByOne(Backend):
    """A backend inferring one photo per call, side by side (like eval.backends.rembg_backend)."""

    name = "rembg"

    def provenance(self):
        return {"backend": "one-by-one"}

    def predict(self, images):
        return self.each_image(self.predict_one, images)

    @staticmethod
    def each_image(predict_one, images):
        return [predict_one(image) for image in images]

    def predict_one(self, image):
        return image[..., 0] > 100


class _Threshold(Backend):
    name = "candidate"

    def provenance(self):
        return {"backend": "threshold"}

    def predict(self, images):
        return [image[..., 0] > 100 for image in images]


def test_latency_is_batch_time_per_image_with_numpy_percentiles():
    # Batches of 4, 2 and 1 images taking 0.4, 0.5 and 0.05 s: per image 0.1 (x4), 0.25 (x2), 0.05.
    meter = Meter(clock=_Clock([0.4, 0.5, 0.05]))
    for n in (4, 2, 1):
        with meter.measure("candidate", n):
            pass
    entry = meter.result()["backends"]["candidate"]
    per_image_ms = [100.0] * 4 + [250.0] * 2 + [50.0]
    assert entry["images_timed"] == 7
    assert entry["latency_ms"]["median"] == pytest.approx(np.median(per_image_ms))
    assert entry["latency_ms"]["p90"] == pytest.approx(np.percentile(per_image_ms, 90))
    assert entry["peak_memory_mb"]["rss"] > 0 and entry["peak_memory_mb"]["accelerator"] is None
    assert entry["latency_measured"] == "batch_average"


def test_peak_memory_sees_an_allocation_inside_the_call():
    meter = Meter()
    with meter.measure("rembg", 1):
        block = np.ones(64 * 1024 * 1024, dtype=np.uint8)  # 64 MB touched while measured
        del block
    with meter.measure("candidate", 1):
        pass
    summary = meter.result()["backends"]
    assert summary["rembg"]["peak_memory_mb"]["rss"] >= summary["candidate"]["peak_memory_mb"]["rss"] + 32


def test_timed_backend_changes_no_mask_and_no_fingerprint():
    inner, meter = _Threshold(), Meter()
    timed = TimedBackend(inner, meter)
    images = [np.full((4, 5, 3), v, dtype=np.uint8) for v in (50, 150)]
    assert [m.tolist() for m in timed.predict(images)] == [m.tolist() for m in inner.predict(images)]
    assert timed.name == "candidate" and timed.fingerprint() == inner.fingerprint()
    assert meter.result()["backends"]["candidate"]["images_timed"] == 2


def test_shards_merge_latencies_and_keep_the_highest_peak():
    first, second = Meter(clock=_Clock([0.2])), Meter(clock=_Clock([0.9]))
    with first.measure("candidate", 2):
        pass
    with second.measure("candidate", 1):
        pass
    first.merge(second)
    entry = first.result()["backends"]["candidate"]
    assert entry["images_timed"] == 3
    assert entry["latency_ms"]["median"] == pytest.approx(100.0)
    document = first.document("k" * 64)
    assert document["schema"] == SCHEMA and document["run_key"] == "k" * 64
    assert document["device"]["torch_device"] == "cpu" and document["device"]["label"].startswith("cpu: ")


def test_stages_sum_wall_and_cpu_time_over_their_calls():
    meter = Meter(clock=_Clock([0.3, 0.2]), cpu_clock=_Clock([0.5, 0.1]))
    for _ in range(2):
        with meter.stage("decode"):
            pass
    assert meter.result()["stages"] == {"decode": {"wall_s": 0.5, "cpu_s": 0.6, "calls": 2}}


def test_a_backend_inferring_one_photo_per_call_is_timed_photo_by_photo():
    # Each photo's own call takes 0.1 and 0.3 s; the predict() around them 1.0 s (its batch average would be 0.5).
    meter = Meter(clock=_Clock([1.0]))
    ticks = iter([0.0, 0.1, 0.0, 0.3])
    timed = TimedBackend(_OneByOne(), meter)
    images = [np.full((4, 5, 3), v, dtype=np.uint8) for v in (50, 150)]
    with meter.measure("rembg", 2) as call:
        call._clock = lambda: next(ticks)
        masks = timed._inner.each_image(call.each(timed._inner.predict_one), images)
    assert [m.any() for m in masks] == [False, True]
    entry = meter.result()["backends"]["rembg"]
    assert entry["latency_measured"] == "per_image" and entry["images_timed"] == 2
    assert entry["latency_ms"]["median"] == pytest.approx(200.0) and entry["latency_ms"]["mean"] == pytest.approx(200.0)
    assert meter.result()["stages"]["predict/rembg"]["calls"] == 1
    # Through TimedBackend itself: every photo goes through predict_one, so latency stays per image.
    real = Meter()
    assert [m.tolist() for m in TimedBackend(_OneByOne(), real).predict(images)] == [m.tolist() for m in masks]
    assert real.result()["backends"]["rembg"]["latency_measured"] == "per_image"


def test_cached_backends_are_listed_with_what_their_cache_served(tmp_path):
    meter = Meter()
    images = [np.full((4, 5, 3), v, dtype=np.uint8) for v in (50, 150)]
    cold = CachedBackend(TimedBackend(_Threshold(), meter), tmp_path, meter)
    cold.predict(images)
    warm_meter = Meter()
    warm = CachedBackend(TimedBackend(_Threshold(), warm_meter), tmp_path, warm_meter)
    entry = next(tmp_path.rglob("*.mask"))
    entry.write_bytes(entry.read_bytes()[:-1] + bytes([entry.read_bytes()[-1] ^ 1]))  # one flipped bit
    warm.predict(images)
    first, second = meter.result()["backends"]["candidate"], warm_meter.result()["backends"]["candidate"]
    assert first["cache"] == {"hits": 0, "misses": 2, "rejected": 0} and first["images_timed"] == 2
    assert second["cache"] == {"hits": 1, "misses": 1, "rejected": 1} and second["images_from_cache"] == 1
    assert second["images_timed"] == 1
    meter.merge(warm_meter)
    assert meter.result()["backends"]["candidate"]["cache"] == {"hits": 1, "misses": 3, "rejected": 1}
    assert meter.result()["stages"]["predict/candidate"]["calls"] == 2


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
