"""Cost of serving: each stage's wall and CPU time, each backend's per-image latency, peak memory and cache use.

Written to timings.json beside the report, never into metrics.json or report.md: these numbers depend
on the machine and its load, and the decision record must stay byte-reproducible.

Stages: duplicate_check, decode, predict/<backend> (real inference only), scoring (per-image scores and the
gallery's thumbnails), intervals, rendering and publishing (writing every report file but timings.json itself).
Wall time is a monotonic clock; CPU time is the whole process's (every thread: decoding and rembg run photos side
by side, so CPU can exceed wall). Latency is measured per image where the backend infers one photo per call
(rembg), else it is the call's wall time over its photos, labelled `batch_average` (the candidate and the
incumbent infer a batch in one forward pass). A cached backend lists the masks served from its cache (they are
not timed) with its misses and rejected entries, so a warm run shows where its masks came from. Peak memory is
the process's resident set sampled every few milliseconds while the backend runs (so it includes what is
already loaded), and the accelerator's peak allocation when the backend ran on CUDA.
"""

import contextlib
import json
import os
import platform
import sys
import threading
import time

import numpy as np
import psutil

SCHEMA = "pottery-gate-timings/v2"
METHOD = ("stages: wall (monotonic clock) and CPU (whole process, all threads) seconds summed over calls; latency: "
          "per_image = each photo's own call, batch_average = call wall time / photos; cache hits are counted, "
          "not timed; peak RSS of the gate process sampled every 5 ms while the backend ran")
_SAMPLE_S = 0.005
_MB = 1024 * 1024


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cuda():
    """torch.cuda when this process has already initialised it (never imports torch or starts CUDA)."""
    torch = sys.modules.get("torch")
    return torch.cuda if torch is not None and torch.cuda.is_initialized() else None


def device_description(torch_device):
    """Where the numbers were measured: the torch device, the CPU and, for CUDA, the GPU's name."""
    cuda = _cuda() if str(torch_device).startswith("cuda") else None
    accelerator = cuda.get_device_name(torch_device) if cuda else None
    cpu = _cpu_model()
    label = f"{torch_device}: {accelerator}" if accelerator else f"{torch_device}: {cpu} ({os.cpu_count()} cores)"
    return {"label": label, "torch_device": str(torch_device), "cpu": cpu, "cpu_count": os.cpu_count(),
            "accelerator": accelerator, "platform": platform.platform()}


class _PeakSampler:
    """Highest RSS of this process seen while the context runs (a sampling thread)."""

    def __init__(self):
        self._process = psutil.Process()
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.wait(_SAMPLE_S):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


class _Span:
    """One stage's wall and CPU time, from its start until `stop()` (a Meter's `start`)."""

    def __init__(self, meter, name):
        self._meter, self._name = meter, name
        self._wall, self._cpu = meter._clock(), meter._cpu_clock()

    def stop(self):
        wall, cpu = self._meter._clock() - self._wall, self._meter._cpu_clock() - self._cpu
        self._meter.update(self._name, wall, cpu)
        return wall


class _Call:
    """One predict() call being measured: `each` times a backend's one-image function image by image."""

    def __init__(self, clock):
        self._clock, self.per_image = clock, []

    def each(self, function):
        def timed(image):
            start = self._clock()
            mask = function(image)
            self.per_image.append(self._clock() - start)
            return mask
        return timed


class Meter:
    """Collects the cost of one run: every stage's wall and CPU time, each backend's per-image latency, memory
    peaks and masks served from its cache. Thread-compatible (a backend's `each` calls may run side by side).

    An accumulator (eval.accumulator): `update` adds one stage's times, `merge` adds a shard's Meter,
    `result` summarises.
    """

    def __init__(self, torch_device="cpu", clock=time.perf_counter, cpu_clock=time.process_time):
        self._device, self._clock, self._cpu_clock = torch_device, clock, cpu_clock
        self._stages = {}  # name: [wall s, CPU s, calls]
        self._latencies, self._averaged, self._rss, self._accelerator, self._cache = {}, set(), {}, {}, {}
        self._described = None  # where the first measurement ran (a shard's container, for a sharded run)

    def update(self, stage, wall_s, cpu_s):
        """Add one timed span of `stage`."""
        totals = self._stages.setdefault(stage, [0.0, 0.0, 0])
        totals[0] += wall_s
        totals[1] += cpu_s
        totals[2] += 1

    def start(self, stage):
        """A running span of `stage`; its `stop()` adds it (for a stage that ends in another function)."""
        return _Span(self, stage)

    @contextlib.contextmanager
    def stage(self, name):
        """Time the block as one span of stage `name`."""
        span = self.start(name)
        try:
            yield
        finally:
            span.stop()

    def served(self, backend, hits, misses, rejected):
        """Count one cached predict() call: masks served from the cache, computed, and entries rejected."""
        counts = self._cache.setdefault(backend, {"hits": 0, "misses": 0, "rejected": 0})
        for field, value in (("hits", hits), ("misses", misses), ("rejected", rejected)):
            counts[field] += value

    @contextlib.contextmanager
    def measure(self, backend, n_images):
        """Time one predict() call of `backend` on `n_images` images (stage `predict/<backend>`).

        Yields a call whose `each(function)` wraps the backend's one-image function: when every image went
        through it, latency is each image's own wall time; otherwise the call's wall time over its images,
        labelled a batch average.
        """
        cuda = _cuda()
        if cuda:
            cuda.reset_peak_memory_stats()
        call = _Call(self._clock)
        with _PeakSampler() as sampler:
            span = self.start(f"predict/{backend}")
            yield call
            if cuda:
                cuda.synchronize()
            elapsed = span.stop()
        if len(call.per_image) == n_images:
            self._latencies.setdefault(backend, []).extend(call.per_image)
        else:
            self._latencies.setdefault(backend, []).extend([elapsed / n_images] * n_images)
            self._averaged.add(backend)
        self._rss[backend] = max(self._rss.get(backend, 0), sampler.peak)
        if cuda:
            self._accelerator[backend] = max(self._accelerator.get(backend, 0), cuda.max_memory_allocated())
        if self._described is None:
            self._described = device_description(self._device)

    def merge(self, other):
        """Add another Meter's measurements (a shard's) to this one."""
        self._described = self._described or other._described
        for stage, (wall, cpu, calls) in other._stages.items():
            totals = self._stages.setdefault(stage, [0.0, 0.0, 0])
            totals[0], totals[1], totals[2] = totals[0] + wall, totals[1] + cpu, totals[2] + calls
        for backend, values in other._latencies.items():
            self._latencies.setdefault(backend, []).extend(values)
        self._averaged |= other._averaged
        for backend, counts in other._cache.items():
            self.served(backend, **counts)
        for mine, theirs in ((self._rss, other._rss), (self._accelerator, other._accelerator)):
            for backend, peak in theirs.items():
                mine[backend] = max(mine.get(backend, 0), peak)
        return self

    def _backend(self, backend):
        values = np.asarray(self._latencies.get(backend, []), dtype=float) * 1000.0
        latency = ({"median": round(float(np.median(values)), 3), "p90": round(float(np.percentile(values, 90)), 3),
                    "mean": round(float(values.mean()), 3)} if values.size else None)
        accelerator = self._accelerator.get(backend)
        cache = self._cache.get(backend)
        return {"images_timed": int(values.size), "images_from_cache": cache["hits"] if cache else 0,
                "cache": cache, "latency_ms": latency,
                "latency_measured": None if not values.size else
                "batch_average" if backend in self._averaged else "per_image",
                "peak_memory_mb": {"rss": round(self._rss.get(backend, 0) / _MB, 1),
                                   "accelerator": None if accelerator is None else round(accelerator / _MB, 1)}}

    def result(self):
        """{"stages": {name: {wall_s, cpu_s, calls}}, "backends": {backend: {images_timed, images_from_cache,
        cache: {hits, misses, rejected} or None, latency_ms: {median, p90, mean}, latency_measured,
        peak_memory_mb: {rss, accelerator}}}}; a backend appears when it was timed or asked of its cache."""
        stages = {name: {"wall_s": round(wall, 4), "cpu_s": round(cpu, 4), "calls": calls}
                  for name, (wall, cpu, calls) in sorted(self._stages.items())}
        names = sorted(set(self._latencies) | set(self._rss) | set(self._cache))
        return {"stages": stages, "backends": {backend: self._backend(backend) for backend in names}}

    def document(self, run_key):
        """timings.json's content: which run, on which device, and the summary."""
        return {"schema": SCHEMA, "run_key": run_key, "device": self._described or device_description(self._device),
                **self.result(), "method": METHOD}

    def json(self, run_key):
        return (json.dumps(self.document(run_key), indent=2, sort_keys=True) + "\n").encode()


def stage(meter, name):
    """`meter.stage(name)`, or nothing when no meter times the run."""
    return contextlib.nullcontext() if meter is None else meter.stage(name)
