"""Cost of serving: each backend's per-image inference latency and peak memory on this machine.

Written to timings.json beside the report, never into metrics.json or report.md: these numbers depend
on the machine and its load, and the decision record must stay byte-reproducible. Latency is a batch's
wall time divided by its images (the way the gate runs inference); masks served from the baseline cache
are not timed. Peak memory is the process's resident set sampled every few milliseconds while the
backend runs (so it includes what is already loaded), and the accelerator's peak allocation when the
backend ran on CUDA.
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

SCHEMA = "pottery-gate-timings/v1"
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


class Meter:
    """Collects per-image latencies and memory peaks per backend name; thread-compatible, not thread-safe.

    An accumulator (eval.accumulator): `measure` is its update, `merge` adds a shard's Meter, `result` summarises.
    """

    def __init__(self, torch_device="cpu", clock=time.perf_counter):
        self._device, self._clock = torch_device, clock
        self._latencies, self._rss, self._accelerator = {}, {}, {}
        self._described = None  # where the first measurement ran (a shard's container, for a sharded run)

    @contextlib.contextmanager
    def measure(self, backend, n_images):
        """Time one predict() call of `backend` on `n_images` images."""
        cuda = _cuda()
        if cuda:
            cuda.reset_peak_memory_stats()
        with _PeakSampler() as sampler:
            start = self._clock()
            yield
            if cuda:
                cuda.synchronize()
            elapsed = self._clock() - start
        if n_images:
            self._latencies.setdefault(backend, []).extend([elapsed / n_images] * n_images)
        self._rss[backend] = max(self._rss.get(backend, 0), sampler.peak)
        if cuda:
            self._accelerator[backend] = max(self._accelerator.get(backend, 0), cuda.max_memory_allocated())
        if self._described is None:
            self._described = device_description(self._device)

    def merge(self, other):
        """Add another Meter's measurements (a shard's) to this one."""
        self._described = self._described or other._described
        for backend, values in other._latencies.items():
            self._latencies.setdefault(backend, []).extend(values)
        for mine, theirs in ((self._rss, other._rss), (self._accelerator, other._accelerator)):
            for backend, peak in theirs.items():
                mine[backend] = max(mine.get(backend, 0), peak)

    def result(self):
        """{backend: {images_timed, latency_ms: {median, p90, mean}, peak_memory_mb: {rss, accelerator}}}."""
        found = {}
        for backend in sorted(set(self._latencies) | set(self._rss)):
            values = np.asarray(self._latencies.get(backend, []), dtype=float) * 1000.0
            latency = ({"median": round(float(np.median(values)), 3), "p90": round(float(np.percentile(values, 90)), 3),
                        "mean": round(float(values.mean()), 3)} if values.size else None)
            accelerator = self._accelerator.get(backend)
            found[backend] = {"images_timed": int(values.size), "latency_ms": latency, "peak_memory_mb": {
                "rss": round(self._rss.get(backend, 0) / _MB, 1),
                "accelerator": None if accelerator is None else round(accelerator / _MB, 1)}}
        return found

    def document(self, run_key):
        """timings.json's content: which run, on which device, and the summary."""
        return {"schema": SCHEMA, "run_key": run_key, "device": self._described or device_description(self._device),
                "backends": self.result(),
                "method": "latency = batch wall time / images in the batch (cache hits not timed); peak RSS of "
                          "the gate process sampled every 5 ms while the backend ran"}

    def json(self, run_key):
        return (json.dumps(self.document(run_key), indent=2, sort_keys=True) + "\n").encode()
