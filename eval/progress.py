"""Progress lines on stderr for long runs: count, rate and ETA per corpus."""

import sys
import time

from eval import sanitise


class Progress:
    def __init__(self, quiet=False, stream=sys.stderr, clock=time.monotonic):
        self._quiet, self._stream, self._clock = quiet, stream, clock

    def log(self, message):
        if not self._quiet:
            print(f"[gate] {sanitise.text(message)}", file=self._stream, flush=True)

    def start(self, label, total):
        self._label, self._total, self._done, self._t0 = label, total, 0, self._clock()
        self.log(f"{label}: {total} image(s)")

    def advance(self, count):
        self._done += count
        elapsed = max(self._clock() - self._t0, 1e-9)
        rate = self._done / elapsed
        eta = (self._total - self._done) / rate if rate else 0.0
        self.log(f"{self._label}: {self._done}/{self._total} ({rate:.2f} img/s, ETA {eta:.0f}s)")
