"""The one interface every backend implements, so a new backend is one new file (and its eval.roles line)."""

import abc
import hashlib
import json


class Backend(abc.ABC):
    """Turns photos into binary foreground masks at the photos' own resolution."""

    #: Key of this backend in the metrics table (`source_backend`): its role's name (eval.roles).
    name: str

    @classmethod
    def for_run(cls, options, inputs):
        """This backend as a run's `options` (eval.options.GateOptions) configure it, built from its pinned
        `inputs` (eval.roles.ModelInputs), or None when the run has no part for it (no incumbent named)."""
        raise NotImplementedError(f"{cls.__name__} does not say how a run builds it")

    @abc.abstractmethod
    def provenance(self):
        """JSON-ready dict of everything that changes this backend's output (versions, digests, settings)."""

    @abc.abstractmethod
    def predict(self, images):
        """Masks for a batch of (H, W, 3) uint8 RGB arrays: a list of (H, W) bool arrays, same order."""

    def fingerprint(self):
        """Digest of the provenance: equal fingerprints promise equal masks for equal pixels."""
        return hashlib.sha256(json.dumps(self.provenance(), sort_keys=True).encode()).hexdigest()
