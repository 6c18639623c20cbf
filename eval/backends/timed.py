"""Timing in front of any backend (eval.timings.Meter): what is measured never changes what is computed."""

from eval.backends.base import Backend


class TimedBackend(Backend):
    def __init__(self, inner, meter):
        self._inner, self._meter = inner, meter
        self.name = inner.name

    def provenance(self):
        return self._inner.provenance()

    def predict(self, images):
        with self._meter.measure(self.name, len(images)):
            return self._inner.predict(images)
