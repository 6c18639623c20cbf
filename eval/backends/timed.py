"""Timing in front of any backend (eval.timings.Meter): what is measured never changes what is computed.

A backend that infers one photo per call (it has `predict_one`, and `predict` runs it side by side through
`each_image`) is timed photo by photo, with the same parallelism as untimed; any other is timed per batch.
"""

from eval.backends.base import Backend


class TimedBackend(Backend):
    def __init__(self, inner, meter):
        self._inner, self._meter = inner, meter
        self.name = inner.name

    def provenance(self):
        return self._inner.provenance()

    def predict(self, images):
        with self._meter.measure(self.name, len(images)) as call:
            one = getattr(self._inner, "predict_one", None)
            if one is None:
                return self._inner.predict(images)
            return self._inner.each_image(call.each(one), images)
