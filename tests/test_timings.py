"""timings.json's numbers: per-image latency from batch times, percentiles, peaks, merging shards."""

import itertools
import sys

import numpy as np
import pytest

from eval.backends.base import Backend
from eval.backends.timed import TimedBackend
from eval.timings import SCHEMA, Meter


class _Clock:
    """perf_counter stand-in: each measured call takes the next of `durations` seconds."""

    def __init__(self, durations):
        self._ticks = itertools.accumulate(itertools.chain.from_iterable((0.0, d) for d in durations))

    def __call__(self):
        return next(self._ticks)


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
    entry = meter.result()["candidate"]
    per_image_ms = [100.0] * 4 + [250.0] * 2 + [50.0]
    assert entry["images_timed"] == 7
    assert entry["latency_ms"]["median"] == pytest.approx(np.median(per_image_ms))
    assert entry["latency_ms"]["p90"] == pytest.approx(np.percentile(per_image_ms, 90))
    assert entry["peak_memory_mb"]["rss"] > 0 and entry["peak_memory_mb"]["accelerator"] is None


def test_peak_memory_sees_an_allocation_inside_the_call():
    meter = Meter()
    with meter.measure("rembg", 1):
        block = np.ones(64 * 1024 * 1024, dtype=np.uint8)  # 64 MB touched while measured
        del block
    with meter.measure("candidate", 1):
        pass
    summary = meter.result()
    assert summary["rembg"]["peak_memory_mb"]["rss"] >= summary["candidate"]["peak_memory_mb"]["rss"] + 32


def test_timed_backend_changes_no_mask_and_no_fingerprint():
    inner, meter = _Threshold(), Meter()
    timed = TimedBackend(inner, meter)
    images = [np.full((4, 5, 3), v, dtype=np.uint8) for v in (50, 150)]
    assert [m.tolist() for m in timed.predict(images)] == [m.tolist() for m in inner.predict(images)]
    assert timed.name == "candidate" and timed.fingerprint() == inner.fingerprint()
    assert meter.result()["candidate"]["images_timed"] == 2


def test_shards_merge_latencies_and_keep_the_highest_peak():
    first, second = Meter(clock=_Clock([0.2])), Meter(clock=_Clock([0.9]))
    with first.measure("candidate", 2):
        pass
    with second.measure("candidate", 1):
        pass
    first.merge(second)
    entry = first.result()["candidate"]
    assert entry["images_timed"] == 3
    assert entry["latency_ms"]["median"] == pytest.approx(100.0)
    document = first.document("k" * 64)
    assert document["schema"] == SCHEMA and document["run_key"] == "k" * 64
    assert document["device"]["torch_device"] == "cpu" and document["device"]["label"].startswith("cpu: ")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
